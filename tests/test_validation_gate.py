"""The one "validation passed" gate (`dars.validation.gate.require_passed`): strict, and
its error is one line naming the file."""

import json
from pathlib import Path

import pytest

from dars.core.errors import FailedValidationReportError, InputDataError, ValidationFailedError
from dars.validation.gate import require_passed


def _report(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "validation.json"
    path.write_text(json.dumps(data))
    return path


def test_a_passed_report_is_returned(tmp_path: Path) -> None:
    path = _report(tmp_path, {"success": True, "tables": {}})
    assert require_passed(path, refusing="aggregate labels") == {"success": True, "tables": {}}


@pytest.mark.parametrize("success", [False, None, "true", 1])
def test_anything_but_true_fails_naming_the_file(tmp_path: Path, success: object) -> None:
    path = _report(tmp_path, {"success": success, "failed": ["outcomes[m]: score"]})
    with pytest.raises(ValidationFailedError) as info:
        require_passed(path, refusing="aggregate labels")
    message = str(info.value)
    assert "\n" not in message
    assert repr(str(path)) in message and f"success={success!r}" in message
    assert message.startswith("refusing to aggregate labels:") and "outcomes[m]" in message


def test_a_missing_key_fails(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailedError, match="success=None"):
        require_passed(_report(tmp_path, {"tables": {}}), refusing="write the card")


def test_the_caller_picks_the_error_class(tmp_path: Path) -> None:
    path = _report(tmp_path, {"success": False})
    with pytest.raises(FailedValidationReportError, match="refusing to publish"):
        require_passed(path, refusing="publish", error=FailedValidationReportError)


def test_a_missing_or_broken_report_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputDataError, match="does not exist; run `dars validate`"):
        require_passed(tmp_path / "nope.json", refusing="publish")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(InputDataError, match=r"broken\.json.*not valid JSON"):
        require_passed(broken, refusing="publish")
