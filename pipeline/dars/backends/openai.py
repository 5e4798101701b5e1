"""Any OpenAI-compatible server: `/v1/completions` or `/v1/chat/completions`.

Works against a remote vLLM server (`vllm serve`), llama-cpp-python's own server
(`python -m llama_cpp.server`), or a hosted API. Per model configuration in params.yaml:

- `base_url` (e.g. `http://127.0.0.1:8000/v1`), `endpoint` (`completions` | `chat`),
  `served_model` (the `model` field sent; empty = omitted, for one-model servers);
- bounded concurrency (`max_concurrency` requests in flight, across the variants of one
  call) over one pooled aiohttp session;
- retries of 429, 5xx, timeouts and dropped connections, up to `http_max_retries`, with
  exponential backoff and full jitter (`backoff_base_s` * 2**attempt, capped at
  `backoff_max_s`; a `Retry-After` header is honoured within the cap); a per-request
  timeout `request_timeout_s`;
- a request that still fails becomes a `status=error` row with the last HTTP status
  (never dropped, never a wrong answer); other 4xx (e.g. a prompt longer than the
  context) fail that sample at once; 401/403 stop the run (`AuthenticationError`);
- the API key is read from the environment variable named by `api_key_env`. It is only
  ever put in the `Authorization` header: never logged, never in an error message or a
  row (anything the server echoes back is redacted);
- `seed` is sent per sample; usage tokens come from the server's `usage` and give the
  cost per sample through the configuration's price table (`price_per_1k_prompt`,
  `price_per_1k_completion`, applied by the sample stage).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from dataclasses import dataclass
from typing import Any

from dars.backends.base import BaseBackend, GenRequest, GenResult
from dars.core.errors import AuthenticationError, MissingCredentialError, MissingExtraError
from dars.core.params import ModelConfig

log = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({408, 409, 425, 429})  # plus every 5xx
_SNIPPET = 200


@dataclass
class HttpGenResult(GenResult):
    """A result that also records how many HTTP attempts it took."""

    attempts: int = 1


def endpoint_path(endpoint: str) -> str:
    return "chat/completions" if endpoint == "chat" else "completions"


def request_body(req: GenRequest, *, endpoint: str, served_model: str) -> dict[str, Any]:
    """The JSON body of one sample's request (pure)."""
    body: dict[str, Any] = {
        "max_tokens": req.max_tokens,
        "temperature": req.temperature,
        "top_p": req.top_p,
        "seed": req.seed,
        "n": 1,
        "stream": False,
    }
    if req.stop:
        body["stop"] = list(req.stop)
    if served_model:
        body["model"] = served_model
    if endpoint == "chat":
        body["messages"] = [{"role": "user", "content": req.prompt}]
    else:
        body["prompt"] = req.prompt
    return body


def parse_response(payload: dict[str, Any], *, endpoint: str) -> tuple[str, str, int, int]:
    """(text, finish_reason, prompt_tokens, completion_tokens); KeyError/TypeError if malformed."""
    choice = payload["choices"][0]
    text = choice["message"]["content"] if endpoint == "chat" else choice["text"]
    usage = payload.get("usage") or {}
    if "prompt_tokens" not in usage or "completion_tokens" not in usage:
        raise KeyError("usage.prompt_tokens / usage.completion_tokens (needed for the cost)")
    return (
        "" if text is None else str(text),
        str(choice.get("finish_reason") or "unknown"),
        int(usage["prompt_tokens"]),
        int(usage["completion_tokens"]),
    )


def is_retryable(status: int) -> bool:
    return status in RETRYABLE_STATUSES or 500 <= status <= 599


def backoff_delay(
    *,
    attempt: int,
    base_s: float,
    max_s: float,
    rng: random.Random,
    retry_after: str | None = None,
) -> float:
    """Full-jitter exponential backoff: uniform(0, min(max_s, base_s * 2**(attempt-1))).

    A numeric `Retry-After` (seconds) raises the delay to at least that, within `max_s`.
    """
    delay = rng.uniform(0.0, min(max_s, base_s * 2 ** (attempt - 1)))
    if retry_after:
        try:
            delay = max(delay, min(max_s, float(retry_after)))
        except ValueError:
            pass  # an HTTP-date Retry-After: keep the jittered delay
    return delay


def read_api_key(env_name: str, *, model: str) -> str | None:
    if not env_name:
        return None
    key = os.environ.get(env_name)
    if not key:
        raise MissingCredentialError(
            f"Model configuration {model!r} reads its API key from the environment variable "
            f"{env_name!r} (models.{model}.api_key_env), which is not set; export it first"
        )
    return key


class OpenAIBackend(BaseBackend):
    name = "openai"

    def __init__(self, config: ModelConfig) -> None:
        try:
            import aiohttp
        except ImportError as exc:
            raise MissingExtraError(
                "the openai backend needs aiohttp: pip install 'dars[openai]'"
            ) from exc
        self._aiohttp = aiohttp
        self.config = config
        self.max_concurrency = config.max_concurrency
        self.revision = (
            config.revision
            if config.revision not in ("unknown", "")
            else f"unpinned:{config.served_model or 'default'}@{config.base_url}"
        )
        self._url = config.base_url.rstrip("/") + "/" + endpoint_path(config.endpoint)
        self.__key = read_api_key(config.api_key_env, model=config.name)
        self._rng = random.Random()
        self._loop = asyncio.new_event_loop()
        self._session: Any = None

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAIBackend(model={self.config.name!r}, url={self._url!r})"

    def _redact(self, text: str) -> str:
        return text.replace(self.__key, "***") if self.__key else text

    def _headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json"}
        if self.__key:
            h["Authorization"] = f"Bearer {self.__key}"
        return h

    # -- public interface -------------------------------------------------------------
    def generate_variant(self, requests: list[GenRequest]) -> list[GenResult]:
        return self.generate_variants([requests])[0]

    def generate_variants(self, groups: list[list[GenRequest]]) -> list[list[GenResult]]:
        """All samples of several variants, at most `max_concurrency` requests in flight."""
        flat = [r for g in groups for r in g]
        results = self._loop.run_until_complete(self._gather(flat))
        out: list[list[GenResult]] = []
        i = 0
        for g in groups:
            out.append(list(results[i : i + len(g)]))
            i += len(g)
        return out

    def close(self) -> None:
        if self._session is not None:
            self._loop.run_until_complete(self._session.close())
            self._session = None
        self._loop.close()

    # -- internals --------------------------------------------------------------------
    async def _gather(self, reqs: list[GenRequest]) -> list[HttpGenResult]:
        if self._session is None:
            self._session = self._aiohttp.ClientSession(
                connector=self._aiohttp.TCPConnector(limit=self.max_concurrency)
            )
        sem = asyncio.Semaphore(self.max_concurrency)
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(self._one(r, sem)) for r in reqs]
        except* AuthenticationError as eg:
            raise eg.exceptions[0] from None
        return [t.result() for t in tasks]

    async def _post(self, body: dict[str, Any], sem: asyncio.Semaphore) -> tuple[int, str, Any]:
        """(status, text, retry_after); status 0 for a timeout or a transport error."""
        aiohttp = self._aiohttp
        timeout = aiohttp.ClientTimeout(total=self.config.request_timeout_s)
        async with sem:
            try:
                async with self._session.post(
                    self._url, json=body, headers=self._headers(), timeout=timeout
                ) as resp:
                    return resp.status, await resp.text(), resp.headers.get("Retry-After")
            except TimeoutError:
                return 0, f"timeout after {self.config.request_timeout_s}s", None
            except aiohttp.ClientError as exc:
                return 0, f"{type(exc).__name__}: {exc}", None

    async def _one(self, req: GenRequest, sem: asyncio.Semaphore) -> HttpGenResult:
        cfg = self.config
        body = request_body(req, endpoint=cfg.endpoint, served_model=cfg.served_model)
        t0 = time.perf_counter()
        last = ""
        attempts = cfg.http_max_retries + 1
        for attempt in range(1, attempts + 1):
            status, text, retry_after = await self._post(body, sem)
            if status == 200:
                try:
                    done, finish, pt, ct = parse_response(json.loads(text), endpoint=cfg.endpoint)
                except (ValueError, KeyError, IndexError, TypeError) as exc:
                    last = f"malformed response ({type(exc).__name__}: {exc}): {text[:_SNIPPET]}"
                else:
                    return HttpGenResult(
                        completion=done,
                        prompt_tokens=pt,
                        completion_tokens=ct,
                        finish_reason=finish,
                        latency_s=time.perf_counter() - t0,
                        attempts=attempt,
                    )
            elif status in (401, 403):
                raise AuthenticationError(
                    f"{self._url} answered HTTP {status} for model configuration "
                    f"{cfg.name!r}: check the key in the environment variable "
                    f"{cfg.api_key_env or '(none configured: set api_key_env)'!r}"
                )
            elif status and not is_retryable(status):
                return self._failed(req, f"HTTP {status}: {text[:_SNIPPET]}", t0, attempt)
            else:
                last = f"HTTP {status}: {text[:_SNIPPET]}" if status else text
            if attempt < attempts:
                log.debug("retrying %s sample %s (%s)", req.query_id, req.sample_id, status)
                await asyncio.sleep(
                    backoff_delay(
                        attempt=attempt,
                        base_s=cfg.backoff_base_s,
                        max_s=cfg.backoff_max_s,
                        rng=self._rng,
                        retry_after=retry_after,
                    )
                )
        return self._failed(req, f"gave up after {attempts} attempts; last: {last}", t0, attempts)

    def _failed(self, req: GenRequest, message: str, t0: float, attempts: int) -> HttpGenResult:
        return HttpGenResult(
            completion=None,
            prompt_tokens=0,
            completion_tokens=0,
            finish_reason="error",
            latency_s=time.perf_counter() - t0,
            status="error",
            error=self._redact(message),
            attempts=attempts,
        )
