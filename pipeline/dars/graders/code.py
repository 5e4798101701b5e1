"""HumanEval-style code: run the completion against the task's tests in the sandbox.

The query row's `prompt` is the original prompt (imports, helpers, signature, docstring);
`reference` is JSON {"test": <test code defining check()>, "entry_point": <name>}.

A chat model's completion is read as: the first ```python (or bare ```) fenced block,
else the whole text. If that code defines `def <entry_point>(` at the top level, the
program is the prompt followed by that code (the new definition replaces the stub, and
the prompt still supplies imports and helper functions the tests may call, as in
HumanEval/38 and /50); otherwise the code is a body continuing the prompt. Then come the
tests and `check(<entry_point>)`.

Grading integrity. A fresh 128-bit random nonce per run is the pass marker. It is not
in the program's source or constants: a harness prelude, which runs before any model
code, reads it from stdin, closes stdin and keeps it in a closure. After `check()`
returns, the harness flushes stdout, writes the nonce with `os.write` (so a patched
`print` or `sys.stdout` cannot fake or swallow it) and leaves with `os._exit(0)` (so no
atexit hook or lingering thread can print after it). The program passes only if it
exits 0 AND its last stdout line is that nonce, so an early `sys.exit(0)`/`os._exit(0)`,
a redefined `check`, patched builtins or a printed guess do not pass. The harness also
refuses to run or to pass the tests while a trace or profile hook is installed (a
hook can skip assertions) or when assertions are disabled (a re-exec with `-O`); that is
reported as `sandbox_violation`. Stdin (fd 0) is closed after the nonce is read, so a
program cannot rewind it and re-run itself to read the nonce again.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
from dataclasses import dataclass
from typing import Any

from dars.core.errors import MissingExtraError
from dars.graders import sandbox
from dars.graders.base import GRADERS, GradeConfig, GradeResult, error_result, unparsable_result

_FENCE = re.compile(r"```[ \t]*(?P<lang>[\w+.-]*)[^\n]*\n(?P<code>.*?)(?:```|\Z)", re.DOTALL)
_PYTHON_TAGS = ("python", "python3", "py")
_DETAIL_CHARS = 300


@dataclass(frozen=True)
class CodeReference:
    test: str
    entry_point: str


HARNESS_RC = 97  # exit status of the harness when it finds it has been tampered with
HARNESS_TAG = "DARS harness:"
# Runs before any model code: takes the nonce from stdin and keeps it out of reach of
# plain name lookups (only in closures), with its own references to what it uses.
PRELUDE = f"""\
def _dars_harness():
    import os, sys
    nonce = sys.stdin.readline().strip()
    sys.stdin.close()
    os.close(0)  # nothing can rewind stdin and re-run the program to read it again
    gettrace, getprofile, write, exit_ = sys.gettrace, sys.getprofile, os.write, os._exit
    stdout = sys.stdout

    def untraced(when):
        if gettrace() is not None or getprofile() is not None:
            write(2, b"\\n{HARNESS_TAG} a trace or profile hook is installed " + when + b"\\n")
            exit_({HARNESS_RC})
        if sys.flags.optimize:
            write(2, b"\\n{HARNESS_TAG} assertions are disabled (-O) " + when + b"\\n")
            exit_({HARNESS_RC})

    def before():
        untraced(b"before the tests")

    def done():
        untraced(b"after the tests")
        for stream in (stdout, sys.stdout):
            try:
                stream.flush()
            except Exception:
                pass
        write(1, ("\\n" + nonce + "\\n").encode())
        exit_(0)

    return before, done


_dars_before, _dars_done = _dars_harness()
del _dars_harness

"""


@dataclass(frozen=True)
class Program:
    source: str
    nonce: str
    mode: str  # how the completion was read, e.g. "def:fenced" or "body:raw"


def parse_reference(reference: str) -> CodeReference | str:
    """The parsed reference, or a message saying what is wrong with it."""
    try:
        data = json.loads(reference)
    except json.JSONDecodeError as exc:
        return f"reference is not JSON ({exc.msg} at char {exc.pos})"
    if not isinstance(data, dict):
        return f"reference JSON is a {type(data).__name__}, not an object"
    missing = [
        k
        for k in ("test", "entry_point")
        if not isinstance(data.get(k), str) or not data[k].strip()
    ]
    if missing:
        return f"reference JSON lacks non-empty string field(s) {missing}; has {sorted(data)}"
    if not data["entry_point"].isidentifier():
        return f"reference entry_point {data['entry_point']!r} is not a Python identifier"
    return CodeReference(test=data["test"], entry_point=data["entry_point"])


def extract_code(completion: str) -> tuple[str, str]:
    """(code, source): the first python-tagged fenced block, else the first bare one,
    else the whole completion."""
    blocks = list(_FENCE.finditer(completion))
    for wanted in (_PYTHON_TAGS, ("",)):
        for block in blocks:
            if block["lang"].lower() in wanted:
                return block["code"], "fenced"
    return completion, "raw"


def defines(code: str, name: str) -> bool:
    return re.search(rf"^(?:async\s+)?def\s+{re.escape(name)}\s*\(", code, re.MULTILINE) is not None


def build_program(*, prompt: str, completion: str, ref: CodeReference, nonce: str) -> Program:
    code, source = extract_code(completion)
    if defines(code, ref.entry_point):
        definition = code.strip("\n")
        body, kind = f"{prompt.rstrip()}\n\n\n{definition}\n", "def"
    else:
        body, kind = f"{prompt}{code}\n", "body"
    tail = f"\n\n{ref.test}\n\n_dars_before()\ncheck({ref.entry_point})\n_dars_done()\n"
    return Program(source=PRELUDE + body + tail, nonce=nonce, mode=f"{kind}:{source}")


def passed(result: sandbox.SandboxResult, nonce: str) -> bool:
    lines = result.stdout.rstrip("\r\n").splitlines()
    return result.returncode == 0 and bool(lines) and lines[-1].strip() == nonce


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:_DETAIL_CHARS] if lines else ""


def outcome(result: sandbox.SandboxResult, program: Program) -> GradeResult:
    note = "" if result.network_isolated else "; network NOT isolated"
    if result.timed_out:
        return GradeResult(
            score=0.0,
            parsed=program.mode,
            grade_status="timeout",
            detail=f"killed after {result.duration_s:.1f}s{note}",
        )
    if result.returncode == HARNESS_RC and HARNESS_TAG in result.stderr:
        return GradeResult(
            score=0.0,
            parsed=program.mode,
            grade_status="sandbox_violation",
            detail=f"harness tampering: {_last_line(result.stderr)}{note}",
        )
    if passed(result, program.nonce):
        return GradeResult(
            score=1.0,
            parsed=program.mode,
            grade_status="ok",
            detail=f"passed in {result.duration_s:.2f}s{note}",
        )
    if result.killed_reason is not None:
        return GradeResult(
            score=0.0,
            parsed=program.mode,
            grade_status="sandbox_violation",
            detail=f"{result.killed_reason}: {_last_line(result.stderr)}{note}",
        )
    if result.returncode == 0:
        why = "exited 0 without reaching the end of the tests (no pass marker)"
    else:
        why = f"exit {result.returncode}: {_last_line(result.stderr)}"
    return GradeResult(score=0.0, parsed=program.mode, grade_status="ok", detail=why + note)


class CodeGrader:
    name = "code"
    higher_is_better = True
    waits_on_subprocess = True  # each program runs in the sandbox

    def check(self, prompt: str, reference: str) -> tuple[str, str] | None:
        """A reference without tests or entry point, or an entry point that the prompt
        does not define (the program could never call it), can never be graded."""
        ref = parse_reference(reference)
        if isinstance(ref, str):
            return ("bad_reference", "reference")
        if not defines(prompt, ref.entry_point):
            return ("entry_point_not_in_prompt", "entry_point")
        return None

    def grade(
        self, completion: str, reference: str, query_row: dict[str, Any], config: GradeConfig
    ) -> GradeResult:
        ref = parse_reference(reference)
        if isinstance(ref, str):
            return error_result(ref)
        prompt = query_row.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            return error_result("query row has no 'prompt' (the HumanEval prompt) to run against")
        if not completion.strip():
            return unparsable_result("empty completion")
        program = build_program(
            prompt=prompt, completion=completion, ref=ref, nonce=secrets.token_hex(16)
        )
        try:
            result = sandbox.run_untrusted(
                program.source,
                timeout_s=config.code_timeout_s,
                memory_mb=config.memory_mb,
                max_processes=config.max_processes,
                max_file_mb=config.max_file_mb,
                max_output_bytes=config.max_output_bytes,
                stdin=(program.nonce + "\n").encode(),
            )
        except (OSError, subprocess.SubprocessError, MissingExtraError) as exc:
            return error_result(f"sandbox could not run the program: {exc}")
        return outcome(result, program)


GRADERS.register(CodeGrader.name)(CodeGrader())
