"""`dars publish`: the refusals, the dry run, the upload calls (through an injected
Hub client that records them) and a fake token that must appear nowhere.

The publishable build is real and tiny: two llama.cpp configurations of the gemma-3-270m
GGUF, built once per run and shared with the real end-to-end test (conftest's `real_built`;
those tests are marked slow, like the other real-model builds); the refusal of a simulated
build uses the simulated build that conftest.py shares (`sim_built`). No request
leaves the machine: the injected client records calls, and the one run of the real
`HfApi` (in a subprocess) has HF_ENDPOINT pointing at a local HTTP server.
"""

import http.server
import json
import logging
import secrets
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from dars.core.errors import (
    FailedValidationReportError,
    HubTagExistsError,
    ManifestMismatchError,
    RepoIdMismatchError,
    SimulatedBuildError,
    StalePublishError,
)
from dars.publishing import hub as publish
from tests.factories import Built

pytest.importorskip("llama_cpp")


def kwargs(b: Built, **over) -> dict:
    kw = dict(
        publish_dir=str(b.root / "publish"),
        repo_id=b.params()["card"]["repo_id"],
        validation=str(b.root / "reports" / "validation.json"),
        lock=str(b.root / "dvc.lock"),
    )
    return {**kw, **over}


class RecordingHub:
    """Stands in for `huggingface_hub.HfApi`: records every call, contacts nothing."""

    def __init__(self, tags: tuple[str, ...] = ()) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.tags = list(tags)
        self.uploaded: list[str] = []

    def create_repo(self, repo_id, **kw):
        self.calls.append(("create_repo", {"repo_id": repo_id, **kw}))
        return f"https://huggingface.co/datasets/{repo_id}"

    def list_repo_refs(self, repo_id, **kw):
        self.calls.append(("list_repo_refs", {"repo_id": repo_id, **kw}))
        return SimpleNamespace(tags=[SimpleNamespace(name=t) for t in self.tags])

    def upload_folder(self, **kw):
        self.calls.append(("upload_folder", kw))
        folder = Path(kw["folder_path"])
        self.uploaded = sorted(
            p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()
        )
        return SimpleNamespace(oid="0123abcd" * 5)

    def create_tag(self, repo_id, **kw):
        self.calls.append(("create_tag", {"repo_id": repo_id, **kw}))
        self.tags.append(kw["tag"])


@pytest.fixture
def real(real_built: Built) -> Built:
    """A publishable build: the real gemma-3-270m (llama.cpp), tiny; shared by the run
    (conftest's `real_built`), so a test that changes it works on a copy."""
    return real_built


@pytest.fixture
def simulated(sim_built: Built) -> Built:
    return sim_built


@pytest.mark.slow  # the real gemma-3-270m build
@pytest.mark.model
@pytest.mark.dvc
def test_dry_run_lists_every_file_and_contacts_nothing(real, capsys):
    hub = RecordingHub()
    plan = publish.run(**kwargs(real, dry_run=True), api=hub)
    assert hub.calls == []
    manifest = json.loads((real.root / "publish" / "MANIFEST.json").read_text())
    files = sorted(
        p.relative_to(real.root / "publish").as_posix()
        for p in (real.root / "publish").rglob("*")
        if p.is_file()
    )
    assert [f for f, _ in plan.files] == files
    out = capsys.readouterr().out
    for rel in files:
        size = (real.root / "publish" / rel).stat().st_size
        assert f"{size:>12}  {rel}" in out
    assert plan.tag == real.params()["dataset_version"] == manifest["dataset_version"]
    assert f"datasets/{real.params()['card']['repo_id']}" in out and repr(plan.tag) in out


@pytest.mark.slow  # the real gemma-3-270m build
@pytest.mark.model
@pytest.mark.dvc
def test_upload_creates_repo_uploads_folder_and_tags_the_commit(real):
    hub = RecordingHub()
    plan = publish.run(**kwargs(real, private=True), api=hub)
    names = [c[0] for c in hub.calls]
    assert names == ["create_repo", "list_repo_refs", "upload_folder", "create_tag"]
    repo_id = real.params()["card"]["repo_id"]
    assert hub.calls[0][1] == {
        "repo_id": repo_id,
        "repo_type": "dataset",
        "private": True,
        "exist_ok": True,
    }
    up = hub.calls[2][1]
    assert up["repo_type"] == "dataset" and Path(up["folder_path"]) == real.root / "publish"
    assert hub.uploaded == [f for f, _ in plan.files]
    tag = hub.calls[3][1]
    assert tag["tag"] == real.params()["dataset_version"] and tag["revision"] == "0123abcd" * 5
    # the same version again: the tag exists, nothing is uploaded
    with pytest.raises(HubTagExistsError, match="already exists.*dataset_version"):
        publish.run(**kwargs(real), api=hub)
    assert [c[0] for c in hub.calls[4:]] == ["create_repo", "list_repo_refs"]
    # --revision overrides the tag
    hub2 = RecordingHub(tags=(tag["tag"],))
    publish.run(**kwargs(real, revision="v-rc1"), api=hub2)
    assert hub2.calls[-1][1]["tag"] == "v-rc1"


def test_refuses_a_simulated_build(simulated, capsys):
    from dars import cli

    hub = RecordingHub()
    with pytest.raises(SimulatedBuildError, match="simulated backend.*labels/"):
        publish.run(**kwargs(simulated), api=hub)
    assert hub.calls == []
    argv = ["publish", "--repo-id", simulated.params()["card"]["repo_id"], "--dry-run"]
    argv += [
        "--publish-dir",
        str(simulated.root / "publish"),
        "--lock",
        str(simulated.root / "dvc.lock"),
    ]
    argv += ["--validation", str(simulated.root / "reports" / "validation.json")]
    assert cli.main(argv) == 1
    assert "refusing to publish: the build used the simulated backend" in capsys.readouterr().err


@pytest.mark.slow  # the real gemma-3-270m build
@pytest.mark.model
@pytest.mark.dvc
def test_refuses_a_failed_validation_report(real, tmp_path):
    c = real.copy(tmp_path / "c")
    report = c.root / "reports" / "validation.json"
    data = json.loads(report.read_text())
    report.write_text(json.dumps({**data, "success": False, "failed": ["outcomes[x]: score"]}))
    with pytest.raises(FailedValidationReportError, match=r"success=False.*outcomes\[x\]"):
        publish.run(**kwargs(c, dry_run=True))


@pytest.mark.slow  # the real gemma-3-270m build
@pytest.mark.model
@pytest.mark.dvc
def test_refuses_a_stale_or_edited_publish_folder(real, tmp_path):
    c = real.copy(tmp_path / "c")
    publish.run(**kwargs(c, dry_run=True))  # fresh: accepted

    # a param the card reads changed, `dvc repro` not run
    p = c.params()
    p["dataset_version"] = "0.2.0"
    c.write_params(p)
    with pytest.raises(StalePublishError, match="stale against.*dvc status card"):
        publish.run(**kwargs(c, dry_run=True))

    # an upstream stage rerun on its own: dvc.lock records new labels, publish/ has old ones
    p["aggregate"]["prior_alpha"] = 1.0  # every label's alpha changes
    c.write_params(p)
    c.dvc("repro", "--single-item", "aggregate")
    with pytest.raises(StalePublishError, match="data/labels.parquet"):
        publish.run(**kwargs(c, dry_run=True))

    # rebuilt: publishable again, and the new dataset_version is the tag
    ran = c.dvc("repro").stdout
    assert "Running stage 'card'" in ran
    hub = RecordingHub(tags=("0.1.0",))
    plan = publish.run(**kwargs(c), api=hub)
    assert plan.tag == "0.2.0" and hub.calls[-1][1]["tag"] == "0.2.0"
    assert "(v0.2.0)" in (c.root / "publish" / "README.md").read_text()

    # a hand edit inside publish/
    readme = c.root / "publish" / "README.md"
    readme.write_text(readme.read_text() + "\nedited\n")
    with pytest.raises(ManifestMismatchError, match="README.md: sha256 differs"):
        publish.run(**kwargs(c, dry_run=True))


@pytest.mark.slow  # the real gemma-3-270m build
@pytest.mark.model
@pytest.mark.dvc
def test_refuses_another_repo_id_and_needs_a_token(real, tmp_path):
    with pytest.raises(RepoIdMismatchError, match="someone/else.*card.repo_id"):
        publish.run(**kwargs(real, repo_id="someone/else", dry_run=True))
    # a copy of publish/ elsewhere is not what dvc.lock describes
    shutil.copytree(real.root / "publish", tmp_path / "copy")
    with pytest.raises(StalePublishError, match="is not an output of stage 'card'"):
        publish.run(**kwargs(real, publish_dir=str(tmp_path / "copy"), dry_run=True))
    # no token anywhere (a fresh HF_HOME, no HF_TOKEN): fails before any request
    env = {k: v for k, v in real.env.items() if k not in ("HF_TOKEN", "HF_TOKEN_PATH")}
    env |= {"HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": "http://127.0.0.1:9"}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "dars",
            "publish",
            "--repo-id",
            real.params()["card"]["repo_id"],
        ],
        cwd=real.root,
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1 and "no Hugging Face token found" in r.stderr, r.stderr


class _HubStub(http.server.BaseHTTPRequestHandler):
    """A local server in place of huggingface.co: records headers, answers 401."""

    seen: list[dict] = []

    def _reply(self) -> None:
        self.seen.append({"path": self.path, "authorization": self.headers.get("authorization")})
        body = json.dumps({"error": "Invalid credentials in Authorization header"}).encode()
        self.send_response(401)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_HEAD = _reply

    def log_message(self, *args) -> None:
        pass


def files_containing(root: Path, needle: bytes) -> list[str]:
    return [
        str(p)
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink() and needle in p.read_bytes()
    ]


@pytest.mark.slow  # the real gemma-3-270m build
@pytest.mark.model
@pytest.mark.dvc
def test_a_fake_token_appears_in_no_output_log_or_file(real, tmp_path, monkeypatch, capfd, caplog):
    from huggingface_hub.utils import logging as hf_logging

    c = real.copy(tmp_path / "c")
    token = "hf_" + secrets.token_hex(20)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HubStub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    env = {
        "HF_TOKEN": token,
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_ENDPOINT": endpoint,
        "HF_HUB_VERBOSITY": "debug",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        # the upload below must reach the stub even where the environment is offline
        "HF_HUB_OFFLINE": "0",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    caplog.set_level(logging.DEBUG)
    hf_logging.set_verbosity_debug()
    _HubStub.seen = []
    try:
        # in process: a dry run, then an upload through the recording client
        publish.run(**kwargs(c, dry_run=True))
        hub = RecordingHub()
        publish.run(**kwargs(c), api=hub)
        # the console command in a subprocess (huggingface_hub reads HF_ENDPOINT when it
        # is imported): a dry run contacts no server; an upload builds the real HfApi,
        # which takes the token from HF_TOKEN and sends it to the stub, which says 401
        cli_out = []
        for extra in (["--dry-run"], []):
            r = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "dars",
                    "publish",
                    "--repo-id",
                    c.params()["card"]["repo_id"],
                    *extra,
                ],
                cwd=c.root,
                env={**c.env, **env},
                capture_output=True,
                text=True,
            )
            cli_out.append(r.stdout + r.stderr)
            assert r.returncode == (0 if extra else 1), r.stdout + r.stderr
            if extra:
                assert _HubStub.seen == []
        assert _HubStub.seen and _HubStub.seen[0]["authorization"] == f"Bearer {token}"
        assert "dry run" in cli_out[0]
        assert "the Hub request for dataset" in cli_out[1] and "401" in cli_out[1]
    finally:
        hf_logging.set_verbosity_warning()
        server.shutdown()
    captured = capfd.readouterr()
    texts = {
        "stdout": captured.out,
        "stderr": captured.err,
        "logs": caplog.text,
        "cli": "\n".join(cli_out),
        "recorded calls": repr(hub.calls),
    }
    assert all(token not in t for t in texts.values()), [k for k, t in texts.items() if token in t]
    # every file the test's repo and HF_HOME hold (a control file proves the scan works)
    control = tmp_path / "control.txt"
    control.write_text(f"x{token}x")
    assert files_containing(tmp_path, token.encode()) == [str(control)]
