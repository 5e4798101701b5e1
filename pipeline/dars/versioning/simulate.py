"""Simulated dataset versions with known truth, for tests and benchmarks of `dars diff`.

The truth is the simulated backend's model (`dars.backends.simulated.true_probability`):
p[q, m, v] = sigmoid(ability_m - difficulty_q + variant_effect_qv + interaction_qm).
A version draws N binary scores per (query, model, variant) from it with its own seed;
two versions from the same truth differ only by sampling noise. `shift` adds a constant
to a model's logit (the same as changing its ability), so its labels change for real.
Never a published build: every version is labelled `backend=simulated`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dars.backends.simulated import SimulatorSettings, true_probability
from dars.core import schema
from dars.labels.intervals import beta_posterior
from dars.versioning.sources import LABEL_COLUMNS, Version


@dataclass(frozen=True)
class Truth:
    query_ids: list[str]
    tasks: list[str]
    models: list[str]
    logit: np.ndarray  # (queries, models, variants)
    splits: list[str]


def simulated_truth(
    *,
    n_queries: int,
    abilities: Mapping[str, float],
    k: int,
    settings: SimulatorSettings | None = None,
    tasks: tuple[str, ...] = ("arithmetic", "humaneval"),
) -> Truth:
    s = settings or SimulatorSettings()
    qids = [f"q{i:05d}" for i in range(n_queries)]
    models = list(abilities)
    p = np.array(
        [
            [
                [
                    true_probability(s, model=m, ability=abilities[m], query_id=q, variant_id=v)
                    for v in range(k)
                ]
                for m in models
            ]
            for q in qids
        ]
    )
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return Truth(
        query_ids=qids,
        tasks=[tasks[i % len(tasks)] for i in range(n_queries)],
        models=models,
        logit=np.log(p / (1 - p)),
        splits=[schema.SPLITS[i % len(schema.SPLITS)] for i in range(n_queries)],
    )


def simulated_version(
    truth: Truth,
    *,
    n: int,
    seed: int,
    shift: Mapping[str, float] | None = None,
    beta_risk: float = 0.2,
    name: str = "sim",
) -> Version:
    """One build: N binary scores per (query, model, variant), aggregated into labels."""
    logit = truth.logit.copy()
    for m, d in (shift or {}).items():
        logit[:, truth.models.index(m), :] += d
    p = 1.0 / (1.0 + np.exp(-logit))
    rng = np.random.default_rng(seed)
    wins = rng.binomial(n, p).sum(axis=2).astype("float64")  # (queries, models)
    count = np.full(wins.shape, float(n * p.shape[2]))
    mean = wins / count
    std = np.sqrt(mean * (1.0 - mean))
    alpha, beta = beta_posterior(wins, count)
    nq, nm = wins.shape
    qid = np.repeat(truth.query_ids, nm)
    model = np.tile(truth.models, nq)
    labels = pd.DataFrame(
        {
            "query_id": qid,
            "model": model,
            "n": count.ravel().astype("int64"),
            "mean": mean.ravel(),
            "std": std.ravel(),
            "alpha": alpha.ravel(),
            "beta": beta.ravel(),
            "utility": (mean - beta_risk * std).ravel(),
            "task": np.repeat(truth.tasks, nm),
        }
    )[[*LABEL_COLUMNS, "task"]]
    scores = pd.DataFrame(
        {
            "query_id": qid,
            "model": model,
            "count": count.ravel(),
            "sum": wins.ravel(),
            "sumsq": wins.ravel(),  # binary scores: s^2 = s
        }
    )
    return Version(
        spec=f"{name}-seed{seed}",
        kind="simulated",
        queries=pd.DataFrame({"query_id": truth.query_ids, "task": truth.tasks}),
        labels=labels,
        splits=pd.DataFrame({"query_id": truth.query_ids, "split": truth.splits}),
        scores=scores,
        generators={m: {"backend": ["simulated"]} for m in truth.models},
        dataset_version=name,
        contract_version=schema.CONTRACT_VERSION,
    )
