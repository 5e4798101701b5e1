"""Work units: one accepted variant of one query for one model (N samples, one shard).

`plan_units` lists a model's units in the fixed output order (query_id, variant_id),
with the rendered prompt and the checkpoint shard path of each.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from dars.backends import UnitGroups, backend_class
from dars.core.errors import InputDataError
from dars.core.params import ModelConfig, SampleConfig
from dars.prompting import format as prompting
from dars.prompting.few_shot import few_shot_examples
from dars.sampling.shards import group_key, grouped_shard_key, shard_key, shard_path


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
    group: int = -1  # the fixed group decoded and checkpointed together (-1: none)

    def as_row(self) -> dict[str, Any]:
        return {**asdict(self), "shard": str(self.shard)}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> WorkUnit:
        return cls(
            **{
                **row,
                "variant_id": int(row["variant_id"]),
                "group": int(row.get("group", -1)),
                "shard": Path(row["shard"]),
            }
        )


def unit_groups(config: ModelConfig, sample: SampleConfig) -> UnitGroups | None:
    """How the model's backend groups units when it decodes several together (the
    llama.cpp scheduler), else None (each unit is generated on its own)."""
    return backend_class(config.backend).unit_groups(config, sample.n)


def grouped(units: list[WorkUnit]) -> list[list[WorkUnit]]:
    """`units` split into their groups, in order (a unit without a group is its own)."""
    out: list[list[WorkUnit]] = []
    for u in units:
        if out and u.group >= 0 and out[-1][0].group == u.group:
            out[-1].append(u)
        else:
            out.append([u])
    return out


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
    keys = []
    for u in work_units(queries, variants).itertuples(index=False):
        text = render_prompt(config=config, message=u.prompt, grader=u.grader)
        key = shard_key(
            config=config,
            sample=sample,
            query_id=u.query_id,
            variant_id=int(u.variant_id),
            prompt=text,
        )
        keys.append(key)
        plan.append(
            WorkUnit(
                query_id=u.query_id,
                variant_id=int(u.variant_id),
                prompt=text,
                grader=u.grader,
                reference=u.reference,
                shard=shard_path(shard_dir, key),
                task=getattr(u, "task", None),
            )
        )
    groups = unit_groups(config, sample)
    if groups is None:
        return plan
    # Units decoded together: a sample's text can depend on its batch (llama.cpp's batched
    # kernels are not batch-invariant), so a shard's name also hashes its group's members
    # and the slot count. A shard is then reused only by the same group, and a rerun or a
    # resume gives the same bytes as an uninterrupted run.
    size = groups.size
    out = []
    for g0 in range(0, len(plan), size):
        members = keys[g0 : g0 + size]
        tag = group_key(members, slots=groups.slots)
        for u, key in zip(plan[g0 : g0 + size], members, strict=True):
            name = grouped_shard_key(key, group=tag)
            out.append(replace(u, shard=shard_path(shard_dir, name), group=g0 // size))
    return out
