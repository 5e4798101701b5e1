"""The sample stage on the simulated backend: seeds, error rows, resumption after SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from dars.backends.simulated import SimulatorSettings, true_probability
from dars.core import schema
from dars.core.params import model_config, sample_config
from dars.sampling.requests import plan_requests, sample_seed
from dars.sampling.uniform import sample_model
from tests.factories import SAMPLE_K as K  # noqa: E402
from tests.factories import SAMPLE_N as N  # noqa: E402
from tests.factories import SAMPLE_QUERIES as N_QUERIES  # noqa: E402
from tests.factories import sample_inputs as make_inputs  # noqa: E402


def write_params(tmp: Path, **model_overrides) -> Path:
    model = {
        "backend": "simulated",
        "sim_ability": 0.5,
        "max_tokens": 16,
        "price_per_1k_prompt": 1.0,
        "price_per_1k_completion": 2.0,
    }
    model.update(model_overrides)
    params = {
        "sample": {"n": N, "seed": 7, "max_retries": 1},
        "models": {"sim": model},
        "simulator": {"seed": 0, "query_sd": 2.0, "variant_sd": 0.5, "interaction_sd": 0.5},
    }
    path = tmp / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def run_cli(tmp: Path, out: str, ckpt: str = "ckpt") -> subprocess.Popen:
    q, v = tmp / "queries.parquet", tmp / "variants.parquet"
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dars",
            "sample",
            "--params",
            str(tmp / "params.yaml"),
            "--model",
            "sim",
            "--queries",
            str(q),
            "--variants",
            str(v),
            "--out",
            str(tmp / out),
            "--checkpoint-dir",
            str(tmp / ckpt),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_seeds_are_distinct_and_stable():
    seeds = {
        sample_seed(base_seed=1, model="m", query_id=f"q{q}", variant_id=v, sample_id=s)
        for q in range(20)
        for v in range(5)
        for s in range(5)
    }
    assert len(seeds) == 500
    assert sample_seed(
        base_seed=1, model="m", query_id="q1", variant_id=0, sample_id=0
    ) == sample_seed(base_seed=1, model="m", query_id="q1", variant_id=0, sample_id=0)


def test_planner_gives_n_requests_per_variant(tmp_path):
    params = yaml.safe_load(write_params(tmp_path).read_text())
    reqs = plan_requests(
        config=model_config(params, "sim"),
        sample=sample_config(params),
        query_id="q1",
        variant_id=2,
        prompt="p",
        grader="numeric",
        reference="3",
    )
    assert [r.sample_id for r in reqs] == list(range(N))
    assert len({r.seed for r in reqs}) == N and all(r.max_tokens == 16 for r in reqs)


def test_simulated_rows_are_labelled_and_follow_true_p(tmp_path):
    q, v = make_inputs(tmp_path, n_queries=30)
    params = yaml.safe_load(write_params(tmp_path).read_text())
    params["sample"]["n"] = 40
    table = sample_model(
        config=model_config(params, "sim"),
        sample=sample_config(params),
        params=params,
        queries=pd.read_parquet(q),
        variants=pd.read_parquet(v),
        checkpoint_dir=tmp_path / "ck",
        progress=False,
    )
    df = table.to_pandas()
    assert len(df) == 30 * K * 40
    assert set(df["backend"]) == {"simulated"} and set(df["revision"]) == {"simulated"}
    settings = SimulatorSettings(seed=0, query_sd=2.0, variant_sd=0.5, interaction_sd=0.5)
    p = true_probability(settings, model="sim", ability=0.5, query_id="q000", variant_id=1)
    assert df.query("query_id == 'q000' and variant_id == 1")["true_p"].iloc[0] == pytest.approx(p)
    # the simulator answers correctly at about the true rate
    df["correct"] = df["completion"] == "Answer: " + df["query_id"].str[1:].astype(int).add(
        1
    ).astype(str)
    rate = df.groupby(["query_id", "variant_id"]).agg(
        hit=("correct", "mean"), p=("true_p", "first")
    )
    assert (rate["hit"] - rate["p"]).abs().mean() < 0.08
    assert (df["cost"] > 0).all()


def test_engine_failures_are_error_rows_not_dropped(tmp_path):
    q, v = make_inputs(tmp_path)
    params = yaml.safe_load(write_params(tmp_path, sim_error_rate=0.3).read_text())
    table = sample_model(
        config=model_config(params, "sim"),
        sample=sample_config(params),
        params=params,
        queries=pd.read_parquet(q),
        variants=pd.read_parquet(v),
        checkpoint_dir=tmp_path / "ck",
        progress=False,
    ).to_pandas()
    assert len(table) == N_QUERIES * K * N
    err = table[table["status"] == "error"]
    assert 0 < len(err) < len(table)
    assert err["completion"].isna().all() and err["error"].notna().all()


def test_sigkill_then_resume_loses_and_duplicates_nothing(tmp_path):
    make_inputs(tmp_path)
    write_params(tmp_path, sim_latency_s=0.01)  # ~0.04 s per variant shard
    ref = run_cli(tmp_path, "reference.parquet", ckpt="ck_ref")
    assert ref.wait(timeout=120) == 0, ref.stderr.read().decode()

    shards = tmp_path / "ckpt" / "sim"
    kills = 0
    for stop_after in (3, 11, 20):  # kill at several points of one resumed build
        proc = run_cli(tmp_path, "out.parquet")
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None:
            if shards.exists() and len(list(shards.glob("*.parquet"))) >= stop_after:
                os.kill(proc.pid, signal.SIGKILL)
                kills += 1
                break
            time.sleep(0.005)
        proc.wait(timeout=30)
    assert kills >= 2, "the run finished before it could be killed; make shards slower"
    assert not (tmp_path / "out.parquet").exists()
    # a torn shard left by a crash is detected and redone, not read as data
    victim = sorted(shards.glob("*.parquet"))[0]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    # what a kill between the temporary write and its rename leaves (dars.core.io)
    fd, tmp = tempfile.mkstemp(prefix=f".{victim.name}.", suffix=".tmp", dir=shards)
    os.write(fd, b"PAR1 half-written")
    os.close(fd)
    proc = run_cli(tmp_path, "out.parquet")
    assert proc.wait(timeout=120) == 0, proc.stderr.read().decode()
    assert not Path(tmp).exists() and not list(shards.glob(".*.tmp"))
    out = pq.read_table(tmp_path / "out.parquet").to_pandas()
    ref_df = pq.read_table(tmp_path / "reference.parquet").to_pandas()
    keys = schema.KEYS["generations"]
    assert not out.duplicated(keys).any() and len(out) == N_QUERIES * K * N
    # wall-clock latency is in the run log, not the table: the output is byte-for-byte equal
    pd.testing.assert_frame_equal(out, ref_df)
    assert (tmp_path / "out.parquet").read_bytes() == (tmp_path / "reference.parquet").read_bytes()


def test_bad_model_name_lists_valid_ones(tmp_path):
    make_inputs(tmp_path)
    write_params(tmp_path)
    q, v = tmp_path / "queries.parquet", tmp_path / "variants.parquet"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "dars",
            "sample",
            "--params",
            str(tmp_path / "params.yaml"),
            "--model",
            "simm",
            "--queries",
            str(q),
            "--variants",
            str(v),
            "--out",
            str(tmp_path / "o.parquet"),
            "--checkpoint-dir",
            str(tmp_path / "ck"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1
    assert "Did you mean 'sim'?" in r.stderr and json.dumps("sim") in r.stderr.replace("'", '"')


def test_temporary_shard_files_of_a_killed_run_are_removed_on_resume(tmp_path):
    from dars.sampling.shards import remove_temp_files

    folder = tmp_path / "ckpt" / "sim"
    (folder / "adaptive-abc").mkdir(parents=True)
    left = [
        folder / ".0123abcd.parquet.k2j4_x.tmp",
        folder / "adaptive-abc" / ".r0000-ff.parquet.zz91.tmp",
    ]
    for p in left:
        p.write_bytes(b"PAR1 torn")
    keep = [folder / "0123abcd.parquet", folder / "notes.tmp"]
    for p in keep:
        p.write_bytes(b"x")
    assert remove_temp_files([folder, tmp_path / "missing"]) == 2
    assert not any(p.exists() for p in left) and all(p.exists() for p in keep)
