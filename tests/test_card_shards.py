"""The card writes every config as sharded Parquet (`<split>-NNNNN-of-NNNNN.parquet`), and
`datasets.load_dataset(folder, config, split=...)` reads every shard of every config and
split through the card header's `configs:` globs."""

from __future__ import annotations

from pathlib import Path

import datasets
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dars.core import schema
from dars.core.errors import InputDataError
from dars.publishing import card, shards

N_QUERIES = 40
MODELS = ("m1", "m0")


def _tables() -> dict[str, pd.DataFrame]:
    qids = [f"q{i:03d}" for i in range(N_QUERIES)]
    queries = pd.DataFrame(
        {
            "query_id": qids[::-1],  # unsorted on purpose: shards are sorted by key
            "task": "arith",
            "prompt": [f"What is {i}? " + "x" * 50 for i in range(N_QUERIES)],
            "reference": "1",
            "grader": "numeric",
            "source": "test",
            "license": "mit",
            "metadata": "{}",
        }
    )
    labels = pd.DataFrame([{"query_id": q, "model": m} for m in MODELS for q in qids]).assign(
        task="arith", n=5, n_total=5, n_error=0, n_variants=1, mean=0.4, std=0.2
    )
    for col in schema.names(schema.LABELS):
        if col not in labels:
            labels[col] = 0.1 if schema.LABELS.field(col).type == pa.float64() else "x"
    gens = pd.DataFrame(
        [
            {"query_id": q, "variant_id": v, "model": m, "sample_id": s}
            for m in MODELS
            for q in qids
            for v in range(2)
            for s in range(2)
        ]
    ).assign(seed=1, completion="#### 1", prompt_tokens=3, completion_tokens=2)
    gens = gens.assign(
        finish_reason="stop",
        status="ok",
        error=None,
        latency_s=0.1,
        backend="simulated",
        revision="r",
        cost=0.001,
        attempts=1,
        true_p=0.5,
    )
    outcomes = gens.assign(score=1.0, parsed="1", grade_status="ok", grade_detail=None)
    variants = pd.DataFrame(
        [{"query_id": q, "variant_id": v} for q in qids for v in range(2)]
    ).assign(prompt="p", method="template", accepted=True, reject_reason=None)
    return {
        "queries": queries,
        "variants": variants[schema.names(schema.VARIANTS)],
        "labels": labels[schema.names(schema.LABELS)],
        "generations": gens[schema.names(schema.GENERATIONS)],
        "outcomes": outcomes[schema.names(schema.OUTCOMES)],
    }


def _write(df: pd.DataFrame, path: Path, sch: pa.Schema) -> Path:
    pq.write_table(pa.Table.from_pandas(df, schema=sch, preserve_index=False), path)
    return path


@pytest.fixture()
def published(tmp_path: Path) -> dict:
    tables = _tables()
    src = tmp_path / "src"
    src.mkdir()
    qids = sorted(tables["queries"]["query_id"])
    split_of = {q: schema.SPLITS[i % 3] for i, q in enumerate(qids)}
    splits = _write(
        pd.DataFrame({"query_id": list(split_of), "split": list(split_of.values())}),
        src / "splits.parquet",
        pa.schema([("query_id", pa.string()), ("split", pa.string())]),
    )
    contract = {
        "queries": schema.QUERIES,
        "variants": schema.VARIANTS,
        "labels": schema.LABELS,
        "generations": schema.GENERATIONS,
        "outcomes": schema.OUTCOMES,
    }
    paths = {}
    for c, df in tables.items():
        if c in ("generations", "outcomes"):  # one file per model, as the stages write them
            paths[c] = [
                _write(df[df["model"] == m], src / f"{c}-{m}.parquet", contract[c]) for m in MODELS
            ]
        else:
            paths[c] = [_write(df, src / f"{c}.parquet", contract[c])]
    out = tmp_path / "publish"
    written, feats, rows, sizes = {}, {}, {}, {}
    for c in card.CONFIGS:
        sch, written[c] = shards.write_config(
            config=c,
            paths=paths[c],
            splits_path=splits,
            out_dir=out,
            max_shard_bytes=1,  # every batch closes its shard
            batch_rows=16,
        )
        feats[c] = datasets.Features.from_arrow_schema(sch)
        rows[c] = {s: written[c][s].rows for s in schema.SPLITS}
        sizes[c] = {s: written[c][s].bytes for s in schema.SPLITS}
    header = card.card_header(
        settings={"license": "mit", "pretty_name": "t", "task_categories": [], "tags": []},
        features=feats,
        split_rows=rows,
        split_bytes=sizes,
    )
    (out / "README.md").write_text(f"---\n{header}\n---\n# test\n")
    return {"out": out, "tables": tables, "split_of": split_of, "written": written}


def test_every_config_and_split_loads_from_its_shards(published: dict) -> None:
    out, tables, split_of = published["out"], published["tables"], published["split_of"]
    n_shards = 0
    for c in card.CONFIGS:
        keys = schema.KEYS[c]
        for s in schema.SPLITS:
            files = published["written"][c][s].files
            n = len(files)
            assert n >= 1 and [f.name for f in files] == [
                shards.shard_name(s, i, n) for i in range(n)
            ]
            n_shards += n
            got = datasets.load_dataset(str(out), c, split=s).to_pandas()
            src = tables[c]
            want = src[src["query_id"].map(split_of) == s].sort_values(keys)
            assert len(got) == len(want) == published["written"][c][s].rows
            # all shards read, in key order, every row exactly once
            assert got[keys].values.tolist() == want[keys].values.tolist()
            assert list(got.columns) == list(src.columns)
    assert n_shards > 3 * len(card.CONFIGS)  # several shards per split, not one file
    assert not list(out.rglob("*.part"))


def test_card_header_declares_shard_globs(published: dict) -> None:
    text = (published["out"] / "README.md").read_text()
    for c in card.CONFIGS:
        for s in schema.SPLITS:
            assert f"path: {c}/{s}-*.parquet" in text


def test_rows_of_an_unassigned_query_fail(tmp_path: Path) -> None:
    q = _tables()["queries"]
    src = _write(q, tmp_path / "q.parquet", schema.QUERIES)
    splits = _write(
        pd.DataFrame({"query_id": ["q000"], "split": ["train"]}),
        tmp_path / "s.parquet",
        pa.schema([("query_id", pa.string()), ("split", pa.string())]),
    )
    with pytest.raises(InputDataError, match="does not assign.*q001"):
        shards.write_config(
            config="queries",
            paths=[src],
            splits_path=splits,
            out_dir=tmp_path / "out",
            max_shard_bytes=10**9,
        )
