"""Engine failures of a work unit: retry the failed samples one by one, then error rows.

A sample that still fails after `sample.max_retries` retries becomes a row with
status="error" (never a wrong answer).
"""

from __future__ import annotations

from dars.backends.base import Backend, GenRequest, GenResult
from dars.core.errors import BackendError


def backend_attempts(result: GenResult) -> int:
    """Attempts a backend made itself (the openai backend's HTTP retries), else 1."""
    return int(getattr(result, "attempts", 1))


def error_result(err: BaseException) -> GenResult:
    return GenResult(
        completion=None,
        prompt_tokens=0,
        completion_tokens=0,
        finish_reason="error",
        latency_s=0.0,
        status="error",
        error=str(err),
    )


def generate_with_retries(
    backend: Backend, requests: list[GenRequest], max_retries: int
) -> tuple[list[GenResult], list[int]]:
    """Run a variant; on engine failure, retry the failed samples one by one."""
    try:
        results = backend.generate_variant(requests)
        return results, [backend_attempts(r) for r in results]
    except BackendError as first:
        return retry_one_by_one(backend, requests, max_retries, first)


def retry_one_by_one(
    backend: Backend, requests: list[GenRequest], max_retries: int, first: BackendError
) -> tuple[list[GenResult], list[int]]:
    results: list[GenResult] = []
    attempts: list[int] = []
    for req in requests:
        err: BackendError = first
        for attempt in range(1, max_retries + 1):
            try:
                results.append(backend.generate_variant([req])[0])
                attempts.append(attempt + 1)
                break
            except BackendError as exc:
                err = exc
        else:
            results.append(error_result(err))
            attempts.append(max_retries + 1)
    return results, attempts
