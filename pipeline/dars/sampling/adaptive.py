"""Adaptive sampling (`sampling.strategy: adaptive`): spend generations where the
uncertainty is, instead of a fixed K x N per (query, model) pair.

The procedure, in rounds:

1. Every pair first gets `min_per_pair` samples.
2. After each round every pair's posterior is updated: a Beta posterior (Jeffreys prior
   Beta(0.5, 0.5)) when all its scores are 0/1, else a normal approximation
   mean +/- z * sd / sqrt(n). Failed generations (score null) count against the pair's
   cap and the budget, never as a wrong answer.
3. A pair stops, with its reason recorded, when
   - `max_per_pair`: it has the cap of generations;
   - `ci_width`: its credible interval is narrower than `target_ci_width`;
   - `decided` (only when several models are allocated jointly): it can no longer change
     which model is best for its query by more than `decision_margin` (its interval lies
     below the leader's lower bound + margin; the leader stops once no rival can);
   - `budget`: the build's budget (`budget` x number of pairs) is spent.
4. The next round gives `round_size` samples to each open pair, in priority order (pairs
   that can still change a routing decision first, then the widest intervals), until the
   budget is spent. Within a pair, samples rotate across the accepted variants (the
   variant with the fewest samples next, ties to the lower id), so every variant is
   sampled and the input-side variance is still estimated.

Sample ids are per variant 0, 1, 2, ... and seeds are `dars.sampling.requests.variant_seeds`, so
an adaptive build draws a subset of exactly the generations a uniform build would draw.

Scope. In the DVC pipeline each model is sampled by its own `sample@<model>` stage, which
cannot see the other models' posteriors; there the rule is per pair (`ci_width`, caps,
budget). The decision-aware rule (`decided`) runs when `adaptive_rounds` is given all
models' pairs at once, as `benchmarks/adaptive.py` does.

Resumption. Each round writes its generations as checkpoint shards and then a journal
file `round-NNNN.json` (the plan, the scores, every pair's state and stopping decision)
into `<checkpoint_dir>/<model>/adaptive-<key>/`, where `<key>` hashes everything that
determines the run. A restarted build replays the recorded rounds (reloading, or if
missing re-drawing with the same seeds, their shards) and continues from the first round
without a journal, so the allocation of a rebuild is the recorded one.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from dars.core import schema
from dars.core.errors import ParamsError
from dars.core.io import write_json, write_table
from dars.core.params import ModelConfig, ParamsSource, SampleConfig, SamplingParams, section

log = logging.getLogger(__name__)

PRIOR_ALPHA = PRIOR_BETA = 0.5  # Jeffreys
JOURNAL_FORMAT = 1
STOP_REASONS = ("max_per_pair", "ci_width", "decided", "budget")


# --------------------------------------------------------------------------- settings


AdaptiveSettings = SamplingParams  # the `sampling` section of params.yaml


def sampling_strategy(params: ParamsSource) -> str:
    return str(section(params, "sampling").strategy)


def adaptive_settings(params: ParamsSource) -> AdaptiveSettings:
    """The `sampling` section (every key has a default); bad values fail naming the key."""
    return section(params, "sampling")


# --------------------------------------------------------------------------- posterior


@dataclass
class PairState:
    """Running state of one (query, model) pair."""

    query_id: str
    model: str
    variants: tuple[int, ...]
    counts: dict[int, int] = field(default_factory=dict)  # generations drawn per variant
    n_valid: int = 0
    sum_s: float = 0.0
    sum_s2: float = 0.0
    binary: bool = True
    stop: str | None = None
    stop_round: int | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.query_id, self.model)

    @property
    def spent(self) -> int:
        return sum(self.counts.values())

    def add(self, scores: Iterable[float | None]) -> None:
        for s in scores:
            if s is None or (isinstance(s, float) and math.isnan(s)):
                continue  # a failed generation is not a wrong answer
            self.n_valid += 1
            self.sum_s += float(s)
            self.sum_s2 += float(s) ** 2
            self.binary = self.binary and float(s) in (0.0, 1.0)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["variants"] = list(self.variants)
        d["counts"] = {str(k): v for k, v in sorted(self.counts.items())}
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> PairState:
        d = dict(d)
        d["variants"] = tuple(d["variants"])
        d["counts"] = {int(k): int(v) for k, v in d["counts"].items()}
        return cls(**d)


def interval(state: PairState, *, ci: float) -> tuple[float, float, float]:
    """(posterior mean, low, high) of the pair's success probability / mean score."""
    return _interval(state.n_valid, state.sum_s, state.sum_s2, state.binary, ci)


@functools.lru_cache(maxsize=65536)
def _interval(
    n: int, s: float, sum_s2: float, binary: bool, ci: float
) -> tuple[float, float, float]:
    # scipy.stats costs about 0.6 s to import: only adaptive runs pay it, not every
    # `dars sample` process (this module is imported by the sample stage)
    from scipy import stats

    tail = (1.0 - ci) / 2.0
    if binary:
        a, b = PRIOR_ALPHA + s, PRIOR_BETA + n - s
        lo, hi = stats.beta.ppf([tail, 1.0 - tail], a, b)
        return a / (a + b), float(lo), float(hi)
    mean = s / n
    var = max(sum_s2 / n - mean**2, 0.0)
    # a floor on the spread keeps a few identical fractional scores from looking certain
    se = math.sqrt(max(var, 0.25 / n) / n)
    z = float(stats.norm.ppf(1.0 - tail))
    return mean, max(mean - z * se, 0.0), min(mean + z * se, 1.0)


def can_change_decision(
    states: Sequence[PairState], *, ci: float, margin: float
) -> dict[tuple[str, str], bool]:
    """For the pairs of ONE query (one per model): can each still change which model is
    best by more than `margin`? With a single model there is no decision to change."""
    if len(states) < 2:
        return {s.key: True for s in states}
    iv = {s.key: interval(s, ci=ci) for s in states}
    leader = max(states, key=lambda s: (iv[s.key][0], s.model)).key
    lead_lo = iv[leader][1]
    out = {k: v[2] > lead_lo + margin for k, v in iv.items() if k != leader}
    out[leader] = any(out.values())
    return out


# --------------------------------------------------------------------------- planning


def next_variants(state: PairState, m: int) -> list[tuple[int, int]]:
    """The next m (variant_id, sample_id) draws of a pair, rotating across its variants."""
    counts = {v: state.counts.get(v, 0) for v in state.variants}
    out = []
    for _ in range(m):
        v = min(state.variants, key=lambda x: (counts[x], x))
        out.append((v, counts[v]))
        counts[v] += 1
    return out


def decide(
    states: Sequence[PairState],
    *,
    settings: AdaptiveSettings,
    round_index: int,
) -> None:
    """Set `stop` on the pairs that are done after a round (all models of a query see
    each other when they are allocated jointly)."""
    by_query: dict[str, list[PairState]] = {}
    for s in states:
        by_query.setdefault(s.query_id, []).append(s)
    for group in by_query.values():
        change = can_change_decision(
            [s for s in group if s.n_valid > 0],
            ci=settings.ci,
            margin=settings.decision_margin,
        )
        for s in group:
            if s.stop is not None:
                continue
            reason = None
            if s.spent >= settings.max_per_pair:
                reason = "max_per_pair"
            elif s.spent >= settings.min_per_pair and s.n_valid > 0:
                _, lo, hi = interval(s, ci=settings.ci)
                if hi - lo <= settings.target_ci_width:
                    reason = "ci_width"
                elif not change.get(s.key, True):
                    reason = "decided"
            if reason:
                s.stop, s.stop_round = reason, round_index


def plan_round(
    states: Sequence[PairState],
    *,
    settings: AdaptiveSettings,
    budget_left: float,
    round_index: int,
) -> list[tuple[PairState, list[tuple[int, int]]]]:
    """The draws of the next round: `min_per_pair` for new pairs, then `round_size` for
    each open pair in priority order while the budget lasts. Pairs the budget cannot
    serve stop with reason `budget`."""
    open_ = [s for s in states if s.stop is None]
    change: dict[tuple[str, str], bool] = {}
    by_query: dict[str, list[PairState]] = {}
    for s in states:  # stopped pairs still compete with their final posterior
        by_query.setdefault(s.query_id, []).append(s)
    for group in by_query.values():
        change |= can_change_decision(
            [s for s in group if s.n_valid > 0], ci=settings.ci, margin=settings.decision_margin
        )

    def priority(s: PairState) -> tuple:
        if s.spent < settings.min_per_pair:
            return (0, 0.0, s.query_id, s.model)
        lo, hi = (interval(s, ci=settings.ci)[1:]) if s.n_valid else (0.0, 1.0)
        return (1 if change.get(s.key, True) else 2, -(hi - lo), s.query_id, s.model)

    plan = []
    for s in sorted(open_, key=priority):
        want = (
            settings.min_per_pair - s.spent
            if s.spent < settings.min_per_pair
            else min(settings.round_size, settings.max_per_pair - s.spent)
        )
        if s.spent >= settings.min_per_pair and budget_left < want:
            want = max(int(budget_left), 0)
        if want <= 0:
            s.stop, s.stop_round = "budget", round_index
            continue
        budget_left -= want
        plan.append((s, next_variants(s, want)))
    return plan


# --------------------------------------------------------------------------- driver

# draw(round_index, plan) -> scores per pair key, in the order of that pair's draws
DrawFn = Callable[[int, list[tuple[PairState, list[tuple[int, int]]]]], dict[Any, list[Any]]]


class Journal:
    """One JSON file per finished round: the plan, scores and every pair's state."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def path(self, r: int) -> Path:
        return self.folder / f"round-{r:04d}.json"

    def load(self, r: int) -> dict[str, Any] | None:
        p = self.path(r)
        if not p.exists():
            return None
        try:
            rec = json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            log.warning("torn adaptive journal %s (%s): redoing round %d", p, exc, r)
            return None
        if rec.get("format") != JOURNAL_FORMAT or rec.get("round") != r:
            log.warning("adaptive journal %s does not match: redoing round %d", p, r)
            return None
        return rec

    def save(self, r: int, record: dict[str, Any]) -> None:
        write_json({"format": JOURNAL_FORMAT, "round": r, **record}, self.path(r))


def adaptive_rounds(
    *,
    pairs: Sequence[tuple[str, str, Sequence[int]]],
    settings: AdaptiveSettings,
    draw: DrawFn,
    journal: Journal | None = None,
    replay: Callable[[int, list[tuple[str, str, int, int]]], None] | None = None,
) -> list[PairState]:
    """Run the rounds for `pairs` = (query_id, model, accepted variant ids) and return
    the final states (with their stopping decisions). A recorded round is replayed from
    `journal` (its draws handed to `replay`, not re-drawn by `draw`)."""
    states = [PairState(q, m, tuple(sorted(v))) for q, m, v in pairs]
    for s in states:
        if not s.variants:
            raise ParamsError(f"query {s.query_id!r} has no accepted variant to sample")
    by_key = {s.key: s for s in states}
    total_budget = math.inf if settings.budget is None else settings.budget * len(states)
    r = 0
    while True:
        rec = journal.load(r) if journal else None
        if rec is not None:
            draws = [tuple(d) for d in rec["draws"]]
            if replay:
                replay(r, draws)  # type: ignore[arg-type]
            for d in rec["states"]:
                st = PairState.from_json(d)
                by_key[st.key].__dict__.update(st.__dict__)
            r += 1
            continue
        spent = sum(s.spent for s in states)
        plan = plan_round(
            states, settings=settings, budget_left=total_budget - spent, round_index=r
        )
        if not plan:
            break
        scores = draw(r, plan)
        for s, d in plan:
            got = scores[s.key]
            if len(got) != len(d):
                raise ValueError(f"draw returned {len(got)} scores for {len(d)} draws of {s.key}")
            for v, _ in d:
                s.counts[v] = s.counts.get(v, 0) + 1
            s.add(got)
        decide(states, settings=settings, round_index=r)
        if journal:
            journal.save(
                r,
                {
                    "draws": [
                        [s.query_id, s.model, v, i, sc]
                        for s, d in plan
                        for (v, i), sc in zip(d, scores[s.key], strict=True)
                    ],
                    "states": [s.to_json() for s in states],
                    "stopped": {
                        f"{s.query_id}|{s.model}": s.stop for s in states if s.stop_round == r
                    },
                },
            )
        r += 1
    return states


def decisions_frame(states: Sequence[PairState], *, ci: float) -> pd.DataFrame:
    rows = []
    for s in states:
        mean, lo, hi = interval(s, ci=ci) if s.n_valid else (math.nan, 0.0, 1.0)
        rows.append(
            {
                "query_id": s.query_id,
                "model": s.model,
                "n_total": s.spent,
                "n_valid": s.n_valid,
                "posterior_mean": mean,
                "ci_low": lo,
                "ci_high": hi,
                "stop": s.stop,
                "stop_round": s.stop_round,
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- the stage


def run_key(
    *,
    config: ModelConfig,
    sample: SampleConfig,
    settings: AdaptiveSettings,
    units: Sequence[tuple[str, int, str]],
    grade_config: Any,
) -> str:
    """Hash of everything that determines an adaptive run of one model."""
    blob = json.dumps(
        {
            "format": JOURNAL_FORMAT,
            "model": config.name,
            "config": config.fingerprint_fields(),
            "seed": sample.seed,
            "settings": asdict(settings),
            "units": [list(u) for u in units],
            "grade": asdict(grade_config),
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _load_round_shard(path: Path, expected: list[tuple[int, int]]) -> pa.Table | None:
    if not path.exists():
        return None
    try:
        table = pq.read_table(path, schema=schema.SAMPLED)
    except (pa.ArrowInvalid, OSError, ValueError) as exc:
        log.warning("corrupt adaptive shard %s (%s): redrawing it", path, exc)
        return None
    d = table.select(["variant_id", "sample_id"]).to_pydict()
    if list(zip(d["variant_id"], d["sample_id"], strict=True)) != expected:
        log.warning("adaptive shard %s has unexpected keys: redrawing it", path)
        return None
    return table


def sample_model_adaptive(
    *,
    config: ModelConfig,
    sample: SampleConfig,
    params: ParamsSource,
    queries: pd.DataFrame,
    variants: pd.DataFrame,
    checkpoint_dir: Path,
    progress: bool = True,
    executor: str = "local",
    ray_options: dict[str, Any] | None = None,
) -> pa.Table:
    """The `sample` stage for `sampling.strategy: adaptive` (one model, per-pair rules).
    Rounds depend on each other's results, so it runs locally (no Ray executor).

    Generations are graded here with the query's grader (the same `grade` settings as the
    grade stage) only to decide where to sample next; the grade stage grades them again.
    """
    from dars.backends import build_backend
    from dars.graders import grade_one, sandbox
    from dars.graders.settings import grade_settings
    from dars.sampling.requests import plan_requests
    from dars.sampling.retries import generate_with_retries
    from dars.sampling.rows import rows_for
    from dars.sampling.shards import remove_temp_files, round_shard_path
    from dars.sampling.units import render_prompt, work_units

    if executor != "local":
        raise ParamsError(
            f"executor {executor!r} is not supported with 'sampling.strategy: adaptive' "
            "(each round depends on the last); use the local executor"
        )
    settings = adaptive_settings(params)
    grade_config, _ = grade_settings(params)
    units = work_units(queries, variants)
    if units.empty:
        return schema.SAMPLED.empty_table()
    texts: dict[tuple[str, int], str] = {}
    qrow: dict[str, dict[str, Any]] = {}
    for u in units.itertuples(index=False):
        texts[(u.query_id, int(u.variant_id))] = render_prompt(
            config=config, message=u.prompt, grader=u.grader
        )
    for row in queries.to_dict(orient="records"):
        qrow[row["query_id"]] = row
    key = run_key(
        config=config,
        sample=sample,
        settings=settings,
        units=[(q, v, t) for (q, v), t in sorted(texts.items())],
        grade_config=grade_config,
    )
    folder = checkpoint_dir / config.name / f"adaptive-{key}"
    journal = Journal(folder)
    remove_temp_files([folder])  # left by a kill during an atomic write
    pairs = [
        (q, config.name, sorted(int(v) for v in g["variant_id"]))
        for q, g in units.groupby("query_id", sort=True)
    ]
    if any(qrow[q]["grader"] == "code" for q, _, _ in pairs):
        sandbox.resolve_interpreter(drop_privileges=sandbox.drops_privileges())

    backend = None
    tables: list[pa.Table] = []
    bar = tqdm(
        total=len(pairs) * settings.max_per_pair,
        unit="gen",
        desc=f"sample {config.name} (adaptive)",
        disable=not progress,
        dynamic_ncols=True,
    )

    def generate(query_id: str, draws: list[tuple[int, int]]) -> pa.Table:
        nonlocal backend
        if backend is None:
            backend = build_backend(config, params)
        q = qrow[query_id]
        parts = []
        for v in sorted({v for v, _ in draws}):
            ids = [i for vv, i in draws if vv == v]
            reqs = plan_requests(
                config=config,
                sample=SampleConfig(n=max(ids) + 1, seed=sample.seed, max_retries=0),
                query_id=query_id,
                variant_id=v,
                prompt=texts[(query_id, v)],
                grader=q["grader"],
                reference=q["reference"],
                task=q.get("task"),
            )
            reqs = [reqs[i] for i in ids]
            results, attempts = generate_with_retries(backend, reqs, sample.max_retries)
            parts.append(
                rows_for(
                    config=config,
                    backend=backend,
                    requests=reqs,
                    results=results,
                    attempts=attempts,
                )
            )
        return pa.concat_tables(parts)

    def shard(r: int, query_id: str, draws: list[tuple[int, int]]) -> pa.Table:
        expected = sorted(draws)
        path = round_shard_path(folder, r, query_id)
        table = _load_round_shard(path, expected)
        if table is None:
            table = generate(query_id, expected)
            write_table(table, path)
        tables.append(table)
        bar.update(table.num_rows)
        return table

    def draw(r: int, plan: list[tuple[PairState, list[tuple[int, int]]]]) -> dict:
        out = {}
        for s, d in plan:
            table = shard(r, s.query_id, d)
            rows = {(row["variant_id"], row["sample_id"]): row for row in table.to_pylist()}
            scores = []
            for v, i in d:
                res = grade_one(rows[(v, i)], qrow[s.query_id], grade_config)
                scores.append(res.score)
            out[s.key] = scores
        return out

    def replay(r: int, draws: list[tuple[str, str, int, int]]) -> None:
        by_query: dict[str, list[tuple[int, int]]] = {}
        for q, _, v, i, *_ in draws:
            by_query.setdefault(q, []).append((int(v), int(i)))
        for q, d in sorted(by_query.items()):
            shard(r, q, d)

    try:
        states = adaptive_rounds(
            pairs=pairs, settings=settings, draw=draw, journal=journal, replay=replay
        )
    finally:
        bar.close()
        if backend is not None:
            backend.close()
    dec = decisions_frame(states, ci=settings.ci)
    write_json(
        {
            "model": config.name,
            "settings": asdict(settings),
            "generations": int(dec["n_total"].sum()),
            "uniform_equivalent": int(sum(len(v) for _, _, v in pairs) * sample.n),
            "stopped": dec["stop"].value_counts().sort_index().to_dict(),
            "pairs": dec.to_dict(orient="records"),
        },
        folder / "decisions.json",
    )
    table = pa.concat_tables(tables)
    order = pc.sort_indices(
        table, [("query_id", "ascending"), ("variant_id", "ascending"), ("sample_id", "ascending")]
    )
    return table.take(order)
