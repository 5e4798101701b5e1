"""`make install`'s installer (pipeline/dars/core/install.py): pip's settings handed to uv
as the same options, and pip doing the install whenever uv cannot do it the same way."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from typing import Any

import pytest

from dars.core import install

# `pip config list` as printed on this kind of machine (files plus PIP_* variables)
LISTING = """:env:.cert='/etc/ssl/certs/ca-certificates.crt'
:env:.default-timeout='180'
:env:.disable-pip-version-check='1'
:env:.find-links='/opt/wheels'
global.cert='/etc/ssl/certs/ca-certificates.crt'
global.constraint='/etc/xdg/pip/constraints.txt'
global.extra-index-url='file:///opt/pypi/simple file:///opt/pypi-more/simple'
global.find-links='/opt/other-wheels'
download.proxy='http://proxy:3128'
"""


def test_pip_config_merges_sections_in_pips_order() -> None:
    config = install.parse_pip_config(LISTING)
    assert config["find-links"] == "/opt/wheels"  # PIP_FIND_LINKS beats the global file
    assert config["constraint"] == "/etc/xdg/pip/constraints.txt"
    assert config["extra-index-url"] == "file:///opt/pypi/simple file:///opt/pypi-more/simple"
    assert "proxy" not in config  # a `download` section does not apply to `pip install`
    assert install.parse_pip_config("") == {}
    both = "global.index-url='https://a/simple'\ninstall.index-url='https://b/simple'\n"
    assert install.parse_pip_config(both)["index-url"] == "https://b/simple"


def test_every_setting_becomes_the_same_uv_option() -> None:
    flags, env = install.uv_options(install.parse_pip_config(LISTING))
    pairs = list(zip(flags[::2], flags[1::2], strict=True))
    assert ("--index-strategy", "unsafe-best-match") in pairs  # pip's best-across-indexes
    assert ("--constraint", "/etc/xdg/pip/constraints.txt") in pairs
    assert ("--find-links", "/opt/wheels") in pairs
    assert [v for k, v in pairs if k == "--extra-index-url"] == [
        "file:///opt/pypi/simple", "file:///opt/pypi-more/simple"]  # fmt: skip
    assert env == {"SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt"}
    flags, _ = install.uv_options({"no-index": "true", "trusted-host": "h1 h2"})
    assert "--no-index" in flags
    assert flags.count("--allow-insecure-host") == 2
    assert install.uv_options({}) == (["--index-strategy", "unsafe-best-match"], {})


def test_a_setting_uv_cannot_take_sends_the_install_to_pip() -> None:
    with pytest.raises(install.Fallback, match=r"pip setting proxy='http://p:1' has no uv"):
        install.uv_options({"proxy": "http://p:1"})


class Recorder:
    """Stands in for subprocess.run: records each command, fails those named in `fail`."""

    def __init__(self, listing: str, fail: Sequence[str] = ()) -> None:
        self.listing, self.fail = listing, fail
        self.calls: list[list[str]] = []

    def __call__(self, command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append(command)
        text = " ".join(command)
        code = 1 if any(word in text for word in self.fail) else 0
        if code and kwargs.get("check"):
            raise subprocess.CalledProcessError(code, command)
        out = self.listing if "config list" in text else ""
        return subprocess.CompletedProcess(command, code, out, "")


@pytest.mark.parametrize(
    ("listing", "fail", "environ", "used"),
    [
        (LISTING, (), {}, "uv"),
        (LISTING, ("uv pip install",), {}, "pip"),  # uv could not resolve or install
        (LISTING, ("uv==",), {}, "pip"),  # uv itself could not be installed
        (LISTING, ("config list",), {}, "pip"),
        ("global.proxy='http://p:1'\n", (), {}, "pip"),  # no translation
        (LISTING, (), {"DARS_INSTALLER": "pip"}, "pip"),
    ],
)
def test_pip_installs_whenever_uv_cannot(monkeypatch: pytest.MonkeyPatch, listing: str,
                                         fail: Sequence[str], environ: dict[str, str],
                                         used: str) -> None:  # fmt: skip
    run = Recorder(listing, fail)
    monkeypatch.setattr(install.subprocess, "run", run)
    assert install.install(["-e", ".[cpu]"], python="/venv/bin/python", environ=environ) == used
    last = run.calls[-1]
    if used == "uv":
        assert last[:4] == ["/venv/bin/uv", "pip", "install", "--python"]
    else:
        assert last == ["/venv/bin/python", "-m", "pip", "install", "--no-compile", "-e", ".[cpu]"]
    assert last[-2:] == ["-e", ".[cpu]"]


def test_a_pip_failure_is_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(install.subprocess, "run", Recorder(LISTING, ("install",)))
    with pytest.raises(subprocess.CalledProcessError):
        install.install(["nothing"], python="/venv/bin/python", environ={})


def test_no_arguments_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert install.main([]) == 2
    assert "usage: python pipeline/dars/core/install.py" in capsys.readouterr().err
