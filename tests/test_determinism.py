"""Deterministic outputs: wall-clock fields live in run logs (.dars/runs/), not in the
DVC-tracked tables, and saved routers are byte-reproducible, so two clean builds give
the same dvc.lock."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline

from dars.core import runlog, schema
from dars.core.io import canonical_skops
from dars.core.skops_io import skops_io
from dars.routers.io import load_router, save_router

sio = skops_io()  # skops.io, without torch (as the stages import it)

TEXTS = ["apple banana", "banana cherry", "cherry dates", "apple dates"]


def fitted() -> dict:
    y = np.random.default_rng(0).random((4, 2))
    pipe = make_pipeline(TfidfVectorizer(), Ridge()).fit(TEXTS, y)
    return {"pipeline": pipe, "models": ["a", "b"], "cost_estimate": np.ones(2), "y": y}


def test_skops_bytes_differ_raw_but_not_canonical() -> None:
    a, b = fitted(), fitted()
    assert sio.dumps(a) != sio.dumps(b)  # memory addresses and zip times: the problem
    assert canonical_skops(sio.dumps(a)) == canonical_skops(sio.dumps(b))


def test_saved_router_is_reproducible_and_loads(tmp_path: Path) -> None:
    d1 = save_router(fitted(), tmp_path / "a.skops")
    d2 = save_router(fitted(), tmp_path / "b.skops")
    assert d1 == d2
    assert (tmp_path / "a.skops").read_bytes() == (tmp_path / "b.skops").read_bytes()
    obj = load_router(tmp_path / "a.skops")
    np.testing.assert_allclose(obj["pipeline"].predict(TEXTS), fitted()["pipeline"].predict(TEXTS))
    zf = zipfile.ZipFile(io.BytesIO((tmp_path / "a.skops").read_bytes()))
    assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


SAVE_ONE = """
import sys
sys.path.insert(0, {tests!r})
from test_determinism import fitted
from dars.routers.io import save_router
save_router(fitted(), __import__("pathlib").Path(sys.argv[1]))
"""


def test_saved_router_is_the_same_from_two_processes(tmp_path: Path) -> None:
    """Memory addresses differ between processes (sklearn caches id(stop_words))."""
    code = SAVE_ONE.format(tests=str(Path(__file__).parent))
    for name in ("a", "b"):
        subprocess.run([sys.executable, "-c", code, str(tmp_path / name)], check=True)
    a, b = (tmp_path / "a").read_bytes(), (tmp_path / "b").read_bytes()
    assert a == b
    tree = zipfile.ZipFile(io.BytesIO(a)).read("schema.json").decode()
    assert not re.search(r"\d{10,}", tree), "a memory address is left in schema.json"


def sampled_rows(latency: list[float]) -> pa.Table:
    n = len(latency)
    cols = {name: [None] * n for name in schema.names(schema.SAMPLED)}
    cols |= {
        "query_id": [f"q{i}" for i in range(n)],
        "variant_id": [0] * n,
        "model": ["m"] * n,
        "sample_id": list(range(n)),
        "seed": list(range(n)),
        "status": ["ok"] * n,
        "latency_s": latency,
    }
    return pa.Table.from_pydict(cols, schema=schema.SAMPLED)


def test_sample_output_has_no_wall_clock_and_the_run_log_has_it(tmp_path: Path) -> None:
    out = tmp_path / "gens.parquet"
    runlog.write_sampled(
        sampled_rows([0.5, 0.25, 1.0]), out, stage="sample", name="m", root=tmp_path / "runs"
    )
    table = pq.read_table(out)
    assert table.schema.equals(schema.GENERATIONS)
    assert "latency_s" not in table.column_names
    log = json.loads((tmp_path / "runs" / "sample" / "m.json").read_text())
    assert log["latency"]["rows"] == 3 and log["latency"]["total_s"] == 1.75
    assert log["latency"]["max_s"] == 1.0 and len(log["loadavg"]) == 3
    per_row = pq.read_table(tmp_path / "runs" / "sample" / "m.latency.parquet")
    assert per_row.column("latency_s").to_pylist() == [0.5, 0.25, 1.0]
    # a second run with other timings writes the same tracked bytes
    first = out.read_bytes()
    runlog.write_sampled(
        sampled_rows([9.0, 8.0, 7.0]), out, stage="sample", name="m", root=tmp_path / "runs"
    )
    assert out.read_bytes() == first


def test_no_tracked_table_schema_holds_a_wall_clock_field() -> None:
    clock = {name for name, _ in schema.WALL_CLOCK}
    for tracked in (schema.GENERATIONS, schema.OUTCOMES, schema.LABELS):
        assert clock.isdisjoint(schema.names(tracked))


def test_lock_holds_only_stages_of_dvc_yaml() -> None:
    """No stale entries (e.g. foreach items of models that params.yaml dropped)."""
    repo = Path(__file__).resolve().parents[1]
    dvc_yaml = yaml.safe_load((repo / "dvc.yaml").read_text())
    models = yaml.safe_load((repo / "params.yaml").read_text())["models"]
    expected = set()
    for name, stage in dvc_yaml["stages"].items():
        if "foreach" in stage:
            expected |= {f"{name}@{m}" for m in models}
        else:
            expected.add(name)
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert set(lock["stages"]) <= expected, set(lock["stages"]) - expected


@pytest.mark.slow
@pytest.mark.dvc
def test_two_clean_builds_give_the_same_lock(sim_full_built, tmp_path: Path) -> None:
    """The shared full simulated build (every default router) and a second clean build of
    the same params in a new repo."""
    from tests.factories import DvcRepo

    repo = DvcRepo(tmp_path / "two", sim_full_built.params())
    repo.dvc("repro")
    assert (repo.root / ".dars" / "runs" / "sample" / "sim-strong.json").exists()
    first = (sim_full_built.root / "dvc.lock").read_text()
    assert first == (repo.root / "dvc.lock").read_text()
