"""A research instrument with known ground truth: NOT a model.

Each (query, model, variant) has a true success probability

    p = sigmoid(ability_m - difficulty_q + variant_effect_qv + interaction_qm)

with difficulty, variant effect and interaction drawn from params (`simulator.*`,
seeded by ids so they do not depend on run order). A sample succeeds with probability
p; the completion is then the reference answer (for code: the canonical solution), and
otherwise a wrong one, so the real graders score it. Every row carries
`backend="simulated"` and its `true_p`; publishing refuses simulated builds.
"""

from __future__ import annotations

import hashlib
import json
import math
import time

import numpy as np

from dars.backends.base import BaseBackend, GenRequest, GenResult
from dars.core.params import ModelConfig, ParamsSource, SimulatorParams, section

SIM_REVISION = "simulated"


SimulatorSettings = SimulatorParams  # the `simulator` section of params.yaml


def simulator_settings(params: ParamsSource) -> SimulatorSettings:
    return section(params, "simulator")


def _normal(*key: object) -> float:
    h = hashlib.sha256("|".join(map(str, key)).encode()).digest()
    return float(np.random.default_rng(int.from_bytes(h[:8], "little")).standard_normal())


def true_probability(
    settings: SimulatorSettings, *, model: str, ability: float, query_id: str, variant_id: int
) -> float:
    s = settings
    logit = (
        ability
        - s.query_sd * _normal(s.seed, "q", query_id)
        + s.variant_sd * _normal(s.seed, "v", query_id, variant_id)
        + s.interaction_sd * _normal(s.seed, "qm", query_id, model)
    )
    return 1.0 / (1.0 + math.exp(-logit))


def _wrong_answer(grader: str, reference: str) -> str:
    if grader == "numeric":
        try:
            return f"Answer: {float(reference) + 1:g}"
        except ValueError:
            return "Answer: 0"
    if grader == "choice":
        return "Answer: " + ("B" if reference.strip().upper() == "A" else "A")
    if grader == "code":
        return "    return None\n"
    if grader == "math":  # never equivalent to the reference
        return f"Final Answer: ({reference}) + 1"
    if grader == "f1":  # no token (and no number) of any gold span
        return "Answer: simulated wrong answer"
    return "simulated wrong answer"


def _gold_spans(reference: str) -> list[str]:
    """The first gold answer of an `f1` reference (see dars.graders.f1), as spans."""
    try:
        data = json.loads(reference)
    except json.JSONDecodeError:
        return [reference]
    if isinstance(data, dict):
        return [str(s) for s in data.get("spans") or []]
    if isinstance(data, list) and data:
        first = data[0]
        return [str(s) for s in first] if isinstance(first, list) else [str(first)]
    return [reference]


def _right_answer(grader: str, reference: str) -> str:
    if grader == "code":
        return str(json.loads(reference).get("canonical_solution", ""))
    if grader in ("numeric", "choice"):
        return f"Answer: {reference}"
    if grader == "math":
        return f"Final Answer: {reference}"
    if grader == "f1":
        return "Answer: " + " | ".join(_gold_spans(reference))
    return reference


class SimulatedBackend(BaseBackend):
    name = "simulated"
    revision = SIM_REVISION

    def __init__(self, config: ModelConfig, settings: SimulatorSettings) -> None:
        self.config = config
        self.settings = settings

    @classmethod
    def from_params(cls, config: ModelConfig, params: ParamsSource) -> SimulatedBackend:
        return cls(config, simulator_settings(params))

    def generate_variant(self, requests: list[GenRequest]) -> list[GenResult]:
        return [self._one(r) for r in requests]

    def _one(self, req: GenRequest) -> GenResult:
        t0 = time.perf_counter()
        if self.config.sim_latency_s:
            time.sleep(self.config.sim_latency_s)
        p = true_probability(
            self.settings,
            model=self.config.name,
            ability=self.config.sim_ability,
            query_id=req.query_id,
            variant_id=req.variant_id,
        )
        rng = np.random.default_rng(req.seed)
        u_err, u_ok = rng.random(2)
        prompt_tokens = len(req.prompt.split())
        if u_err < self.config.sim_error_rate:
            return GenResult(
                completion=None,
                prompt_tokens=prompt_tokens,
                completion_tokens=0,
                finish_reason="error",
                latency_s=time.perf_counter() - t0,
                status="error",
                error="simulated engine failure",
                true_p=p,
            )
        text = (_right_answer if u_ok < p else _wrong_answer)(req.grader, req.reference)
        return GenResult(
            completion=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=min(len(text.split()), req.max_tokens),
            finish_reason="stop",
            latency_s=time.perf_counter() - t0,
            true_p=p,
        )

    def close(self) -> None:
        return None
