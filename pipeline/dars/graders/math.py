"""MATH answers: the final answer, checked for equivalence with HF's `math-verify`.

Final answer of a completion, in this order:
1. the content of the last `\\boxed{...}` (or `\\fbox{...}`; braces matched);
2. else the rest of the line after the last `Final Answer:` or `The answer is` (or
   `Answer:`), without surrounding `$`, `**` or a final full stop.
A completion with neither is `unparsable` (a wrong answer, score 0).

Both the final answer and the reference are handed to `math_verify.parse` as
`$...$` LaTeX and compared by `math_verify.verify(gold, prediction)`: LaTeX and symbolic
equivalence (`\\frac{1}{2}` = `0.5` = `1/2`, `2\\sqrt3` = `\\sqrt{12}`), with tuples
ordered (`(3, -2)` != `(-2, 3)`) and interval ends told apart (`[0,1)` != `[0,1]`).
No LaTeX is parsed here.

Timeouts and threads. `math-verify` bounds its own work with `signal.alarm`, which only
works in a process's main thread, and the `grade` stage grades on a thread pool. So the
calls run in a helper process (`math_worker.py`, started as a plain script with the
same interpreter), one per grading thread (started on first use, reused,
and in its own main thread, where math-verify's alarms work). The grading thread waits
at most `grade.math_verify_timeout_s`; a helper that has not answered by then is killed
(and replaced on the next call) and the generation gets grade_status `timeout`
(score 0), as code that runs too long does. A helper that cannot start at all is our
failure: score null, grade_status `error`.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import tempfile
import threading
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from dars.graders.base import (
    GRADERS,
    GradeConfig,
    GradeResult,
    error_result,
    final_text,
    unparsable_result,
)

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_MARKER = re.compile(
    r"(?:\bfinal\s+answer\b|\bthe\s+answer\s+is\b|\banswer\s*:)\**\s*(?:is\b)?\s*:?\**[ \t]*"
    r"(?P<rest>[^\n]*)",
    re.IGNORECASE,
)
_MAX_ANSWER_CHARS = 1_000  # a longer "final answer" is not an answer
_START_TIMEOUT_S = 120.0  # starting the helper imports sympy and math-verify


def last_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{...}` (or `\\fbox{...}`), braces balanced."""
    found = None
    for match in _BOXED.finditer(text):
        depth, start = 1, match.end()
        for i in range(start, len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    found = text[start:i]
                    break
    return found.strip() if found is not None and found.strip() else None


def _clean(text: str) -> str:
    text = text.strip().strip("*").strip().rstrip(".").strip()
    for wrap in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if text.startswith(wrap[0]) and text.endswith(wrap[1]) and len(text) > 2 * len(wrap[0]):
            text = text[len(wrap[0]) : -len(wrap[1])].strip()
    return text.rstrip(".").strip()


def final_answer(completion: str) -> tuple[str, str] | None:
    """(answer text, rule) of a completion, or None."""
    boxed = last_boxed(completion)
    if boxed is not None:
        return boxed, "boxed"
    hits = [m for m in _MARKER.finditer(completion) if _clean(m["rest"])]
    if hits:
        return _clean(hits[-1]["rest"]), "answer marker"
    return None


# --- math-verify, in a helper process --------------------------------------------------

WORKER = Path(__file__).with_name("math_worker.py")


class HelperTimeout(Exception):
    """The helper did not answer in time (it has been killed)."""


class HelperError(Exception):
    """The helper could not start, died, or raised."""


class Helper:
    """One helper process, used by one thread at a time."""

    def __init__(self) -> None:
        self.proc: Any = None
        self.conn: Any = None
        self.stderr: Any = None

    def _start(self) -> None:
        mine, theirs = socket.socketpair()
        # stderr goes to a file, not a pipe: a helper that logs a lot never blocks on a
        # full pipe nobody reads, and a helper that fails to start can still say why
        stderr = tempfile.TemporaryFile()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-P", str(WORKER), str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        except OSError as exc:
            mine.close()
            stderr.close()
            raise HelperError(f"math-verify helper could not start: {exc}") from exc
        finally:
            theirs.close()
        conn = Connection(mine.detach())
        ready = conn.poll(_START_TIMEOUT_S)
        try:
            if not ready:
                raise HelperError(f"math-verify helper did not start in {_START_TIMEOUT_S:.0f}s")
            conn.recv()
        except (HelperError, EOFError, OSError) as exc:
            proc.kill()
            proc.wait()
            conn.close()
            stderr.seek(0)
            err = stderr.read().decode(errors="replace").strip().splitlines()
            stderr.close()
            why = err[-1] if err else f"exit code {proc.returncode}"
            raise HelperError(f"math-verify helper failed to start: {why}") from exc
        self.proc, self.conn, self.stderr = proc, conn, stderr

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.conn.close()
            self.stderr.close()
        self.proc = self.conn = self.stderr = None

    def call(self, name: str, *args: Any, timeout_s: float) -> Any:
        if self.proc is None or self.proc.poll() is not None:
            self.stop()
            self._start()
        try:
            self.conn.send((name, args))
            ready = self.conn.poll(timeout_s)
        except (OSError, BrokenPipeError) as exc:
            self.stop()
            raise HelperError(f"math-verify helper pipe failed: {exc}") from exc
        if not ready:
            self.stop()
            raise HelperTimeout(f"math-verify took longer than {timeout_s:g}s")
        try:
            status, value = self.conn.recv()
        except (EOFError, OSError) as exc:
            self.stop()
            raise HelperError("math-verify helper died during a call") from exc
        if status != "ok":
            raise HelperError(f"math-verify raised {value}")
        return value


_LOCAL = threading.local()


def helper() -> Helper:
    """This thread's helper process."""
    if getattr(_LOCAL, "helper", None) is None:
        _LOCAL.helper = Helper()
    return _LOCAL.helper


class MathGrader:
    name = "math"
    waits_on_subprocess = True  # math-verify runs in a helper process
    higher_is_better = True

    def check(self, prompt: str, reference: str) -> tuple[str, str] | None:
        """Why a query row can never be graded (reason, field), or None."""
        try:
            ok = helper().call("parses", reference, timeout_s=GradeConfig().math_timeout_s)
        except HelperTimeout:
            ok = False
        return None if ok else ("bad_reference", "reference")

    def grade(
        self, completion: str, reference: str, query_row: dict[str, Any], config: GradeConfig
    ) -> GradeResult:
        if not reference.strip():
            return error_result("reference is empty")
        got = final_answer(final_text(completion))
        if got is None:
            return unparsable_result("no \\boxed{} answer and no 'Final Answer:' line")
        answer, rule = got
        if len(answer) > _MAX_ANSWER_CHARS:
            return unparsable_result(f"final answer is {len(answer)} chars (> {_MAX_ANSWER_CHARS})")
        try:
            ok, gold, pred = helper().call(
                "verify", reference, answer, timeout_s=config.math_timeout_s
            )
        except HelperTimeout as exc:
            return GradeResult(score=0.0, parsed=answer, grade_status="timeout", detail=str(exc))
        except HelperError as exc:
            return error_result(str(exc))
        if gold is None:
            return error_result(f"math-verify cannot parse the reference {reference!r}")
        if pred is None:
            return unparsable_result(f"math-verify cannot parse the final answer {answer!r}")
        return GradeResult(
            score=1.0 if ok else 0.0,
            parsed=answer,
            grade_status="ok",
            detail=f"{rule}; parsed {pred} vs reference {gold}",
        )


GRADERS.register(MathGrader.name)(MathGrader())
