"""Work units: one accepted variant of one query for one model (N samples, one shard).

`plan_units` lists a model's units in the fixed output order (query_id, variant_id),
with the rendered prompt and the checkpoint shard path of each.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dars.core.errors import InputDataError
from dars.core.params import ModelConfig, SampleConfig
from dars.prompting import format as prompting
from dars.prompting.few_shot import few_shot_examples
from dars.sampling.shards import shard_key


def work_units(queries: pd.DataFrame, variants: pd.DataFrame) -> pd.DataFrame:
    """The accepted variants joined to their query's grader, reference (and task), sorted."""
    acc = variants[variants["accepted"].astype(bool)]
    units = acc.merge(
        queries[["query_id", "grader", "reference"] + (["task"] if "task" in queries else [])],
        on="query_id",
        how="left",
        validate="many_to_one",
        indicator=True,
    )
    orphan = units[units["_merge"] != "both"]
    if len(orphan):
        raise InputDataError(
            f"{len(orphan)} variants reference unknown query_ids, e.g. "
            f"{orphan['query_id'].head(3).tolist()}; every variant's query_id must be in queries"
        )
    return units.drop(columns="_merge").sort_values(["query_id", "variant_id"], kind="stable")


def render_prompt(*, config: ModelConfig, message: str, grader: str) -> str:
    """The text the engine sees for a variant's message under the model's prompting."""
    return prompting.render(
        message=message,
        grader=grader,
        prompting=config.prompting,
        examples=(
            few_shot_examples(grader)[: config.shots or None]
            if config.prompting == "few_shot"
            else []  # zero_shot and chat use no examples (math/f1 have none)
        ),
    )


@dataclass(frozen=True)
class WorkUnit:
    """One variant of one query for one model: N samples, one checkpoint shard."""

    query_id: str
    variant_id: int
    prompt: str  # the rendered text sent to the engine
    grader: str
    reference: str
    shard: Path
    task: str | None = None  # picks a per-task max_tokens

    def as_row(self) -> dict[str, Any]:
        return {**asdict(self), "shard": str(self.shard)}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> WorkUnit:
        return cls(**{**row, "variant_id": int(row["variant_id"]), "shard": Path(row["shard"])})


def plan_units(
    *,
    config: ModelConfig,
    sample: SampleConfig,
    queries: pd.DataFrame,
    variants: pd.DataFrame,
    checkpoint_dir: Path,
) -> list[WorkUnit]:
    """Every work unit of one model, in the fixed output order (query_id, variant_id)."""
    shard_dir = checkpoint_dir / config.name
    plan = []
    for u in work_units(queries, variants).itertuples(index=False):
        text = render_prompt(config=config, message=u.prompt, grader=u.grader)
        key = shard_key(
            config=config,
            sample=sample,
            query_id=u.query_id,
            variant_id=int(u.variant_id),
            prompt=text,
        )
        plan.append(
            WorkUnit(
                query_id=u.query_id,
                variant_id=int(u.variant_id),
                prompt=text,
                grader=u.grader,
                reference=u.reference,
                shard=shard_dir / f"{key}.parquet",
                task=getattr(u, "task", None),
            )
        )
    return plan
