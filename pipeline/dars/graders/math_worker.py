"""The helper process of the `math` grader: math-verify calls, in a main thread.

Run as a script (`python -P math_worker.py <fd>`; `-P` keeps this folder, whose
`math.py` would shadow the standard library, off `sys.path`), not imported as part of
the package, so it starts with nothing but the standard library and math-verify and
never re-runs the caller's `__main__`. It answers pickled requests `(name, args)` on
the connection whose file descriptor it is given, until that connection closes.
math-verify's own timeouts (`signal.alarm`) work here because each call runs in this
process's main thread.
"""

from __future__ import annotations

import logging
import socket
import sys
from multiprocessing.connection import Connection
from typing import Any

INNER_TIMEOUT_S = 5  # math-verify's own alarm, per parse and per comparison


def as_latex(answer: str) -> str:
    """An answer (LaTeX or plain) as math-verify's parse reads it: inside `$...$`."""
    answer = answer.strip()
    return answer if answer.startswith("$") else f"${answer}$"


def verify_texts(gold: str, prediction: str) -> tuple[bool | None, str | None, str | None]:
    """(equivalent, parsed gold, parsed prediction) of two answer texts by math-verify;
    a side that does not parse is None (and so is `equivalent`)."""
    from math_verify import parse, verify

    gold_parsed = parse(as_latex(gold), parsing_timeout=INNER_TIMEOUT_S)
    pred_parsed = parse(as_latex(prediction), parsing_timeout=INNER_TIMEOUT_S)
    gold_text = str(gold_parsed[0]) if gold_parsed else None
    pred_text = str(pred_parsed[0]) if pred_parsed else None
    if not gold_parsed or not pred_parsed:
        return None, gold_text, pred_text
    ok = verify(gold_parsed, pred_parsed, timeout_seconds=INNER_TIMEOUT_S)
    return bool(ok), gold_text, pred_text


def parses(text: str) -> bool:
    from math_verify import parse

    return bool(parse(as_latex(text), parsing_timeout=INNER_TIMEOUT_S))


CALLS: dict[str, Any] = {"verify": verify_texts, "parses": parses}


def serve(fd: int) -> None:
    logging.basicConfig(level=logging.ERROR)
    conn = Connection(socket.socket(fileno=fd).detach())
    verify_texts("1", "1")  # import and warm up before "ready": fail here if missing,
    # and keep the first real call's time within its timeout
    conn.send(("ready", None))
    while True:
        try:
            name, args = conn.recv()
        except (EOFError, OSError):
            return
        try:
            conn.send(("ok", CALLS[name](*args)))
        except Exception as exc:  # noqa: BLE001 - reported to the caller, who decides
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


if __name__ == "__main__":
    serve(int(sys.argv[1]))
