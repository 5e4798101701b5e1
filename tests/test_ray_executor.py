"""`dars sample --executor ray`: a local Ray cluster on CPU (2 CPUs, 2 workers), the real
llama.cpp engine (gemma-3-270m), compared row by row with the local executor, and
resumed from the same checkpoint shards."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from dars import cli
from dars.core import schema
from dars.core.errors import ParamsError
from dars.core.params import model_config, sample_config
from dars.sampling.uniform import sample_model
from dars.sampling.units import plan_units
from tests import factories

ray = pytest.importorskip("ray")
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context"),
    pytest.mark.model,
    pytest.mark.server,
]
pytest.importorskip("ray.data")
pytest.importorskip("llama_cpp")

N = 2


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def inputs(tmp: Path, n_queries: int = 3, k: int = 2) -> tuple[pd.DataFrame, pd.DataFrame]:
    q = factories.queries(
        n_queries,
        ids=lambda i: f"q{i}",
        prompt=lambda i: f"Tom has {i + 2} apples and buys {i + 3} more. How many?",
        reference=lambda i: str(2 * i + 5),
    )
    v = factories.variants(q, k, rewrite=lambda j, p: p if j == 0 else f"Solve: {p}")
    factories.write_inputs(tmp, q, v)
    return q, v


def llama_params(backend: str = "llama_cpp") -> dict:
    model = {
        "backend": backend,
        "model_path": "auto",
        "max_tokens": 8,
        "temperature": 0.8,
        "top_p": 0.95,
        "n_threads": 1,
        "n_ctx": 512,
        "max_num_seqs": 3,
        "group_units": 2,  # 3 fixed groups of 2 units, each decoded together
    }
    if backend == "simulated":
        model = {"backend": "simulated", "sim_ability": 0.3}
    return {
        "sample": {"n": N, "seed": 3, "max_retries": 1},
        "models": {"m": model},
        "simulator": {"seed": 0, "query_sd": 1.0, "variant_sd": 0.5, "interaction_sd": 0.5},
    }


def run(params: dict, q, v, ckpt: Path, executor: str) -> pd.DataFrame:
    return sample_model(
        config=model_config(params, "m"),
        sample=sample_config(params),
        params=params,
        queries=q,
        variants=v,
        checkpoint_dir=ckpt,
        progress=False,
        executor=executor,
        ray_options={"workers": 2},
    ).to_pandas()


KEY_SEED = ["query_id", "variant_id", "model", "sample_id", "seed"]


def test_ray_rows_match_local_and_resume_from_the_same_shards(ray_cluster, tmp_path):
    q, v = inputs(tmp_path)
    params = llama_params()
    local = run(params, q, v, tmp_path / "ck_local", "local")
    dist = run(params, q, v, tmp_path / "ck_ray", "ray")

    assert len(dist) == 3 * 2 * N and not dist.duplicated(schema.KEYS["generations"]).any()
    pd.testing.assert_frame_equal(dist[KEY_SEED], local[KEY_SEED])  # same keys and seeds
    assert (dist["status"] == "ok").all() and set(dist["backend"]) == {"llama_cpp"}
    # llama.cpp on CPU with the same thread count is deterministic per seed
    pd.testing.assert_frame_equal(dist.drop(columns="latency_s"), local.drop(columns="latency_s"))

    # the two executors write the same shard names
    names = {p.name for p in (tmp_path / "ck_ray" / "m").glob("*.parquet")}
    assert names == {p.name for p in (tmp_path / "ck_local" / "m").glob("*.parquet")}

    # lose a group's shards and tear one shard of another: a Ray rerun redoes those two
    # groups whole (a group is decoded together) and keeps the third
    units = plan_units(
        config=model_config(params, "m"),
        sample=sample_config(params),
        queries=q,
        variants=v,
        checkpoint_dir=tmp_path / "ck_ray",
    )
    assert [u.group for u in units] == [0, 0, 1, 1, 2, 2]
    gone, torn, kept = units[0:2], units[3], units[4:]
    for u in gone:
        u.shard.unlink()
    torn.shard.write_bytes(torn.shard.read_bytes()[:100])
    before = {u.shard: u.shard.stat().st_mtime_ns for u in kept}
    again = run(params, q, v, tmp_path / "ck_ray", "ray")
    assert {u.shard: u.shard.stat().st_mtime_ns for u in kept} == before  # not redone
    pd.testing.assert_frame_equal(again.drop(columns="latency_s"), dist.drop(columns="latency_s"))

    # and the local executor resumes from shards the Ray run wrote, redoing nothing
    resumed = run(params, q, v, tmp_path / "ck_ray", "local")
    pd.testing.assert_frame_equal(resumed, again)


def test_cli_executor_ray(ray_cluster, tmp_path):
    inputs(tmp_path, n_queries=4)
    import yaml

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(llama_params("simulated")))
    args = [
        "sample",
        "--params",
        str(tmp_path / "params.yaml"),
        "--model",
        "m",
        "--queries",
        str(tmp_path / "queries.parquet"),
        "--variants",
        str(tmp_path / "variants.parquet"),
        "--checkpoint-dir",
        str(tmp_path / "ck"),
    ]
    assert (
        cli.main(
            [
                *args,
                "--out",
                str(tmp_path / "ray.parquet"),
                "--executor",
                "ray",
                "--ray-workers",
                "2",
            ]
        )
        == 0
    )
    assert (
        cli.main(
            [
                *args,
                "--out",
                str(tmp_path / "local.parquet"),
                "--checkpoint-dir",
                str(tmp_path / "ck_local"),
            ]
        )
        == 0
    )
    a = pd.read_parquet(tmp_path / "ray.parquet")  # no wall-clock columns in the output
    b = pd.read_parquet(tmp_path / "local.parquet")
    assert len(a) == 4 * 2 * N
    pd.testing.assert_frame_equal(a, b)


def test_bad_worker_count_fails_before_starting_anything(tmp_path):
    q, v = inputs(tmp_path, n_queries=1, k=1)
    params = llama_params("simulated")
    with pytest.raises(ParamsError, match="--ray-workers = 0"):
        sample_model(
            config=model_config(params, "m"),
            sample=sample_config(params),
            params=params,
            queries=q,
            variants=v,
            checkpoint_dir=tmp_path / "ck",
            progress=False,
            executor="ray",
            ray_options={"workers": 0},
        )
    with pytest.raises(ParamsError, match="allowed: local, ray"):
        run(params, q, v, tmp_path / "ck", "dask")
