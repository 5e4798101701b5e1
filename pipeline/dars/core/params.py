"""Load and validate params.yaml. Every bad value fails before any work starts,
with the key, the value and what would be valid."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dars.core.errors import ParamsError
from dars.core.registry import unknown_name_message

BACKENDS = ("llama_cpp", "simulated", "vllm", "openai")
PROMPTINGS = ("zero_shot", "few_shot")


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"Parameters file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ParamsError(f"Parameters file {str(path)!r} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ParamsError(f"Parameters file {str(path)!r} must hold a mapping at the top level")
    data["__file__"] = str(path)
    return data


def get(
    params: dict[str, Any], dotted: str, default: Any = ..., *, where: str | None = None
) -> Any:
    """`get(p, "sample.n")` -> value, or ParamsError naming the missing key and the file."""
    where = where or params.get("__file__", "params.yaml")
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            if default is not ...:
                return default
            raise ParamsError(f"Parameters '{dotted}' are missing from '{where}'")
        node = node[part]
    return node


def _num(
    value: Any,
    key: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    integer: bool = False,
    lo_open: bool = False,
) -> Any:
    kind = "an integer" if integer else "a number"
    ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
    bounds = []
    if lo is not None:
        bounds.append(f"> {lo}" if lo_open else f">= {lo}")
    if hi is not None:
        bounds.append(f"<= {hi}")
    allowed = " and ".join(bounds)
    if isinstance(value, bool) or not ok_type or (not integer and not math.isfinite(value)):
        what = f"{kind} {allowed}" if allowed else kind
        raise ParamsError(f"Parameter '{key}' = {value!r} is not {kind}; allowed: {what}")
    if (lo is not None and (value <= lo if lo_open else value < lo)) or (
        hi is not None and value > hi
    ):
        raise ParamsError(f"Parameter '{key}' = {value!r} is out of range; allowed: {allowed}")
    return value


@dataclass(frozen=True)
class ModelConfig:
    """One routing candidate: an engine plus a configuration (prompting, sampling, price)."""

    name: str
    backend: str
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 128
    prompting: str = "zero_shot"
    shots: int = 0  # few-shot examples to use; 0 = all available
    price_per_1k_prompt: float = 0.0
    price_per_1k_completion: float = 0.0
    model_path: str = "auto"
    revision: str = "unknown"
    n_ctx: int = 2048
    n_threads: int = 2
    stop: tuple[str, ...] = ()
    # simulated backend only: the model's ability on the logit scale
    sim_ability: float = 0.0
    sim_error_rate: float = 0.0
    sim_latency_s: float = 0.0  # simulated engine time per sample (for resumption tests)
    # engine settings (not part of the fingerprint: they do not change what is sampled)
    timeout_s: float = 120.0  # wall-clock limit per generation; past it: status=error
    max_num_seqs: int | None = None  # sequences decoded together (None: engine default)
    tensor_parallel_size: int = 1  # vllm: GPUs per engine
    gpu_memory_utilization: float = 0.9  # vllm: share of GPU memory for weights + KV cache
    # openai backend only: any OpenAI-compatible server (see pipeline/dars/backends/openai.py)
    base_url: str = ""  # e.g. http://127.0.0.1:8000/v1
    served_model: str = ""  # the `model` field sent to the server ("" = omit it)
    endpoint: str = "completions"  # completions | chat
    api_key_env: str = ""  # name of the environment variable holding the key ("" = none)
    max_concurrency: int = 4  # requests in flight at once
    request_timeout_s: float = 120.0  # per HTTP request
    http_max_retries: int = 4  # retries of one request on 429 / 5xx / timeout
    backoff_base_s: float = 0.5  # exponential backoff with full jitter
    backoff_max_s: float = 30.0
    extra: dict[str, Any] = field(default_factory=dict)

    def fingerprint_fields(self) -> dict[str, Any]:
        """Everything that changes what a generation is (not the price)."""
        return {
            "backend": self.backend,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "prompting": self.prompting,
            "shots": self.shots,
            "model_path": self.model_path,
            "revision": self.revision,
            "n_ctx": self.n_ctx,
            "stop": list(self.stop),
            "sim_ability": self.sim_ability,
            "sim_error_rate": self.sim_error_rate,
        } | self._openai_fingerprint()

    def _openai_fingerprint(self) -> dict[str, Any]:
        if self.backend != "openai":  # keeps the shard keys of other backends unchanged
            return {}
        return {
            "base_url": self.base_url,
            "served_model": self.served_model,
            "endpoint": self.endpoint,
        }


_MODEL_KEYS = {f for f in ModelConfig.__dataclass_fields__ if f not in ("name", "extra")}


def model_config(params: dict[str, Any], name: str) -> ModelConfig:
    """The named model's configuration. Every configuration under `models` is validated
    first, so `dars sample --model X` fails before sampling anything when any model of
    the build (whose other stages would fail later) is malformed."""
    models = get(params, "models")
    if not isinstance(models, dict) or not models:
        raise ParamsError("Parameter 'models' must be a non-empty mapping of name -> config")
    if name not in models:
        raise ParamsError(unknown_name_message("model configuration", name, sorted(models)))
    for other in models:
        if other != name:
            _model_config(models, other)
    return _model_config(models, name)


def _model_config(models: dict[str, Any], name: str) -> ModelConfig:
    raw = models[name]
    key = f"models.{name}"
    if not isinstance(raw, dict):
        raise ParamsError(f"Parameter '{key}' must be a mapping, got {raw!r}")
    backend = raw.get("backend")
    if backend not in BACKENDS:
        raise ParamsError(
            f"Parameter '{key}.backend' = {backend!r} is not a known backend; "
            f"allowed: {', '.join(BACKENDS)}"
        )
    prompting = raw.get("prompting", "zero_shot")
    if prompting not in PROMPTINGS:
        raise ParamsError(
            f"Parameter '{key}.prompting' = {prompting!r}; allowed: {', '.join(PROMPTINGS)}"
        )
    _num(raw.get("temperature", 0.7), f"{key}.temperature", lo=0.0)
    _num(raw.get("top_p", 0.95), f"{key}.top_p", lo=0.0, hi=1.0, lo_open=True)
    _num(raw.get("max_tokens", 128), f"{key}.max_tokens", lo=1, integer=True)
    _num(raw.get("price_per_1k_prompt", 0.0), f"{key}.price_per_1k_prompt", lo=0.0)
    _num(raw.get("price_per_1k_completion", 0.0), f"{key}.price_per_1k_completion", lo=0.0)
    _num(raw.get("sim_error_rate", 0.0), f"{key}.sim_error_rate", lo=0.0, hi=1.0)
    _num(raw.get("shots", 0), f"{key}.shots", lo=0, integer=True)
    _num(raw.get("sim_latency_s", 0.0), f"{key}.sim_latency_s", lo=0.0)
    _num(raw.get("n_ctx", 2048), f"{key}.n_ctx", lo=64, integer=True)
    _num(raw.get("n_threads", 2), f"{key}.n_threads", lo=1, integer=True)
    _num(raw.get("timeout_s", 120.0), f"{key}.timeout_s", lo=0.0, lo_open=True)
    if raw.get("max_num_seqs") is not None:
        _num(raw["max_num_seqs"], f"{key}.max_num_seqs", lo=1, integer=True)
    _num(raw.get("tensor_parallel_size", 1), f"{key}.tensor_parallel_size", lo=1, integer=True)
    _num(
        raw.get("gpu_memory_utilization", 0.9),
        f"{key}.gpu_memory_utilization",
        lo=0.0,
        hi=1.0,
        lo_open=True,
    )
    model_path = str(raw.get("model_path", "auto"))
    if backend == "llama_cpp" and model_path != "auto" and not Path(model_path).exists():
        raise ParamsError(
            f"Parameter '{key}.model_path' = {model_path!r} does not exist; give the path of "
            "a GGUF file, or 'auto' for the gemma-3-270m GGUF of the 'cpu' extra"
        )
    if backend == "openai":
        _check_openai(raw, key)
    if backend == "vllm" and (model_path == "auto" or raw.get("revision") in (None, "", "unknown")):
        raise ParamsError(
            f"Parameters '{key}.model_path' = {model_path!r} and '{key}.revision' = "
            f"{raw.get('revision')!r}: the vllm backend needs a Hugging Face model id (or a local "
            "model folder) and a pinned revision (a commit hash or tag)"
        )
    stop = raw.get("stop", [])
    if isinstance(stop, str):
        stop = [stop]
    known = {k: v for k, v in raw.items() if k in _MODEL_KEYS}
    known["stop"] = tuple(stop)
    known["model_path"] = model_path
    extra = {k: v for k, v in raw.items() if k not in _MODEL_KEYS}
    return ModelConfig(name=name, extra=extra, **known)


OPENAI_ENDPOINTS = ("completions", "chat")


def _check_openai(raw: dict[str, Any], key: str) -> None:
    """Validate the keys of an `openai` model configuration (no network, no key lookup)."""
    url = raw.get("base_url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ParamsError(
            f"Parameter '{key}.base_url' = {url!r}; the openai backend needs the server's "
            "base URL, e.g. 'http://127.0.0.1:8000/v1'"
        )
    endpoint = raw.get("endpoint", "completions")
    if endpoint not in OPENAI_ENDPOINTS:
        raise ParamsError(
            f"Parameter '{key}.endpoint' = {endpoint!r}; allowed: {', '.join(OPENAI_ENDPOINTS)}"
        )
    env = raw.get("api_key_env", "")
    if not isinstance(env, str) or (env and not env.replace("_", "a").isalnum()):
        raise ParamsError(
            f"Parameter '{key}.api_key_env' = {env!r} is not an environment variable name "
            "(letters, digits, '_'); put the NAME of the variable here, never the key itself"
        )
    _num(raw.get("max_concurrency", 4), f"{key}.max_concurrency", lo=1, integer=True)
    _num(raw.get("request_timeout_s", 120.0), f"{key}.request_timeout_s", lo=0.0, lo_open=True)
    _num(raw.get("http_max_retries", 4), f"{key}.http_max_retries", lo=0, integer=True)
    base = _num(raw.get("backoff_base_s", 0.5), f"{key}.backoff_base_s", lo=0.0)
    _num(raw.get("backoff_max_s", 30.0), f"{key}.backoff_max_s", lo=base)


def model_names(params: dict[str, Any]) -> list[str]:
    models = get(params, "models")
    if not isinstance(models, dict) or not models:
        raise ParamsError("Parameter 'models' must be a non-empty mapping of name -> config")
    return list(models)


@dataclass(frozen=True)
class SampleConfig:
    n: int
    seed: int
    max_retries: int


def sample_config(params: dict[str, Any]) -> SampleConfig:
    n = _num(get(params, "sample.n"), "sample.n", lo=1, integer=True)
    seed = _num(get(params, "sample.seed"), "sample.seed", lo=0, integer=True)
    retries = _num(get(params, "sample.max_retries", 1), "sample.max_retries", lo=0, integer=True)
    return SampleConfig(n=n, seed=seed, max_retries=retries)


def reformulate_k(params: dict[str, Any]) -> int:
    return int(_num(get(params, "reformulate.k"), "reformulate.k", lo=1, integer=True))


def check_all(params: dict[str, Any]) -> None:
    """Validate every section that exists: used by `dars check-params` and by tests."""
    if "models" in params:
        for name in model_names(params):
            model_config(params, name)
    if "sample" in params:
        sample_config(params)
    if "reformulate" in params:
        reformulate_k(params)
