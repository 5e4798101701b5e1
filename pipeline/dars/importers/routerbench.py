"""`dars import routerbench SRC.pkl --allow-pickle`: RouterBench's wide DataFrame.

Layout: a pickled pandas DataFrame with `sample_id`, `prompt`, `eval_name`,
`oracle_model_to_route_to` and, per model M, the columns `M` (the score),
`M|model_response` and `M|total_cost`. A model is every M that has all three.

Pickle runs code while it loads, so the file is only read with `allow_pickle=True`
(`--allow-pickle`): load only a file you trust, for example one whose sha256 you checked
against the release. Mapping:

- one observation per (query, model): variant 0, sample 0, so every label has n = 1
  (its mean is that one score and its std is 0; the card says so);
- task = `eval_name`; the query keeps `sample_id` as `source_id`; prompt = `prompt`
  (a list of turns is joined with blank lines);
- completion = `M|model_response`, cost = `M|total_cost`; token counts are not in the
  source and are 0; `oracle_model_to_route_to` is kept in a column of the outcomes;
- the split is the project's: deterministic, grouped by query, stratified by task.

Dropped, counted by reason with row and column: a duplicate `sample_id` (the later
rows), a missing prompt or eval_name, a missing score where a response exists (a pair
with neither is kept as a failed generation), and a score that is not a number in [0, 1].
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dars.core.errors import InputDataError
from dars.importers.workspace import OBS_COLUMNS, Drops, Imported

NAME = "routerbench"
REQUIRED = ("sample_id", "prompt", "eval_name")
RESPONSE, COST = "|model_response", "|total_cost"
EXTRA_COLUMNS = ["oracle_model_to_route_to"]


class PickleRefusedError(InputDataError):
    """A pickle was not loaded because --allow-pickle was not given."""


def load_frame(path: str | Path, *, allow_pickle: bool) -> pd.DataFrame:
    path = Path(path)
    if not allow_pickle:
        raise PickleRefusedError(
            f"refusing to load {str(path)!r}: RouterBench ships a pickle, and unpickling runs "
            "code from the file. Pass --allow-pickle only for a file you trust (for example "
            "one whose sha256 matches the release)"
        )
    if not path.is_file():
        raise InputDataError(f"routerbench source {str(path)!r} does not exist")
    try:
        df = pd.read_pickle(path)
    except Exception as exc:  # a broken pickle raises anything from its own code
        raise InputDataError(
            f"{str(path)!r} is not a readable pickle ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(df, pd.DataFrame):
        raise InputDataError(
            f"unknown layout in {str(path)!r}: it holds a {type(df).__name__}, not the "
            "RouterBench DataFrame"
        )
    return df


def model_columns(df: pd.DataFrame, *, name: str) -> list[str]:
    missing = [c for c in REQUIRED if c not in df.columns]
    models = sorted(
        c
        for c in df.columns
        if isinstance(c, str)
        and "|" not in c
        and f"{c}{RESPONSE}" in df.columns
        and f"{c}{COST}" in df.columns
    )
    if missing or not models:
        cols = [str(c) for c in df.columns[:12]]
        raise InputDataError(
            f"unknown layout in {name!r}: "
            + (f"missing columns {missing}; " if missing else "")
            + ("" if models else "no model columns M with M|model_response and M|total_cost; ")
            + f"it has columns {cols}{' ...' if len(df.columns) > 12 else ''}"
        )
    return models


def _prompt(value: Any) -> str | None:
    if isinstance(value, list | tuple | np.ndarray):
        parts = [str(v) for v in value if v is not None]
        return "\n\n".join(parts) if parts else None
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def read_routerbench(path: str | Path, *, allow_pickle: bool = False) -> Imported:
    path = Path(path)
    df = load_frame(path, allow_pickle=allow_pickle)
    name = path.name
    models = model_columns(df, name=name)
    drops = Drops()
    df = df.reset_index(drop=True)
    dup = df["sample_id"].astype(str).duplicated(keep="first").to_numpy()
    oracle = df["oracle_model_to_route_to"] if "oracle_model_to_route_to" in df else None
    rows = []
    for i in range(len(df)):
        sid = df["sample_id"].iloc[i]
        if dup[i]:
            drops.add("duplicate key", f"{name} row {i} (sample_id {sid!r})")
            continue
        prompt, task = _prompt(df["prompt"].iloc[i]), df["eval_name"].iloc[i]
        if prompt is None or _missing(task) or _missing(sid):
            what = "prompt" if prompt is None else ("eval_name" if _missing(task) else "sample_id")
            drops.add(f"missing {what}", f"{name} row {i}, column {what!r}")
            continue
        for m in models:
            where = f"{name} row {i}, column {m!r}"
            raw, resp, cost = df[m].iloc[i], df[f"{m}{RESPONSE}"].iloc[i], df[f"{m}{COST}"].iloc[i]
            if _missing(raw):
                if not _missing(resp):
                    drops.add("missing score", where)
                    continue
                score = None  # no response and no score: a failed generation
            else:
                try:
                    score = float(raw)
                except (TypeError, ValueError):
                    drops.add("score is not a number", where)
                    continue
                if not math.isfinite(score):
                    drops.add("score is not a number", where)
                    continue
                if not 0.0 <= score <= 1.0:
                    drops.add("score outside [0, 1]", where)
                    continue
            try:
                c = float(cost)
            except (TypeError, ValueError):
                c = float("nan")
            if not math.isfinite(c) or c < 0:
                drops.note("total_cost missing or negative in the source, set to 0")
                c = 0.0
            rows.append(
                {
                    "source_id": str(sid),
                    "task": str(task),
                    "query_prompt": prompt,
                    "variant_id": 0,
                    "variant_prompt": prompt,
                    "model": m,
                    "order": 0,
                    "completion": None if _missing(resp) else str(resp),
                    "prompt_tokens": 0,
                    "completion_tokens": 0,
                    "finish_reason": "unknown",
                    "cost": c,
                    "score": score,
                    "oracle_model_to_route_to": (
                        None if oracle is None or _missing(oracle.iloc[i]) else str(oracle.iloc[i])
                    ),
                }
            )
    drops.note("token counts not in the source, set to 0", len(rows))
    obs = pd.DataFrame(rows, columns=[*OBS_COLUMNS, *EXTRA_COLUMNS])
    return Imported(
        source=NAME,
        obs=obs,
        extra_columns=EXTRA_COLUMNS,
        splits=None,
        drops=drops,
        files=[path],
        license="unknown (see RouterBench)",
        source_metadata={"rows": int(len(df)), "models": models},
        card_note=(
            "Imported from RouterBench: one observation per (query, model), so every label "
            "has n = 1 (mean = that score, std = 0, single_shot = mean) and the intervals are "
            "the posterior of one observation. Distribution-aware supervision needs K x N "
            "observations per pair; on this data it reduces to single-shot supervision."
        ),
    )
