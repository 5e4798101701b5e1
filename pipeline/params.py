"""Load and validate params.yaml. Every bad value fails before any work starts,
with the key, the value and what would be valid."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import ParamsError
from pipeline.registry import unknown_name_message

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
    if isinstance(value, bool) or not ok_type:
        raise ParamsError(f"Parameter '{key}' = {value!r} is not {kind}")
    if lo is not None and (value <= lo if lo_open else value < lo):
        bound = f"> {lo}" if lo_open else f">= {lo}"
        rng = f"{bound}" + (f" and <= {hi}" if hi is not None else "")
        raise ParamsError(f"Parameter '{key}' = {value!r} is out of range; allowed: {rng}")
    if hi is not None and value > hi:
        raise ParamsError(f"Parameter '{key}' = {value!r} is out of range; allowed: <= {hi}")
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
        }


_MODEL_KEYS = {f for f in ModelConfig.__dataclass_fields__ if f not in ("name", "extra")}


def model_config(params: dict[str, Any], name: str) -> ModelConfig:
    models = get(params, "models")
    if not isinstance(models, dict) or not models:
        raise ParamsError("Parameter 'models' must be a non-empty mapping of name -> config")
    if name not in models:
        raise ParamsError(unknown_name_message("model configuration", name, sorted(models)))
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
    model_path = str(raw.get("model_path", "auto"))
    if backend == "llama_cpp" and model_path != "auto" and not Path(model_path).exists():
        raise ParamsError(
            f"Parameter '{key}.model_path' = {model_path!r} does not exist; give the path of "
            "a GGUF file, or 'auto' for the gemma-3-270m GGUF of the 'cpu' extra"
        )
    stop = raw.get("stop", [])
    if isinstance(stop, str):
        stop = [stop]
    known = {k: v for k, v in raw.items() if k in _MODEL_KEYS}
    known["stop"] = tuple(stop)
    known["model_path"] = model_path
    extra = {k: v for k, v in raw.items() if k not in _MODEL_KEYS}
    return ModelConfig(name=name, extra=extra, **known)


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
