import pandas as pd
import pytest

from dars.core.errors import ParamsError
from dars.stages.split import assign_splits, split_settings

FR = {"train": 0.6, "validation": 0.2, "test": 0.2}


def queries(n_a: int, n_b: int) -> pd.DataFrame:
    ids = [f"a{i}" for i in range(n_a)] + [f"b{i}" for i in range(n_b)]
    return pd.DataFrame({"query_id": ids, "task": ["A"] * n_a + ["B"] * n_b})


def test_split_is_deterministic_grouped_and_stratified():
    q = queries(50, 10)
    s1 = assign_splits(queries=q, seed=0, fractions=FR)
    s2 = assign_splits(queries=q.sample(frac=1, random_state=3), seed=0, fractions=FR)
    pd.testing.assert_frame_equal(s1, s2)
    assert s1["query_id"].is_unique and len(s1) == 60
    counts = s1.groupby(["task", "split"]).size()
    assert counts[("A", "train")] == 30 and counts[("A", "test")] == 10
    assert counts[("B", "train")] == 6 and counts[("B", "validation")] == 2


def test_other_seed_gives_other_split():
    q = queries(40, 0)
    a = assign_splits(queries=q, seed=0, fractions=FR)
    b = assign_splits(queries=q, seed=1, fractions=FR)
    assert not a["split"].equals(b["split"])


def test_bad_fractions_are_rejected():
    with pytest.raises(ParamsError, match="sum to 1"):
        split_settings({"split": {"fractions": {"train": 0.5, "validation": 0.2, "test": 0.2}}})
    with pytest.raises(ParamsError, match="must map exactly"):
        split_settings({"split": {"fractions": {"train": 1.0}}})


def test_train_per_task_fixes_the_train_count_and_the_rest_is_test():
    """The DARS preset: 200 train queries per dataset, the rest test (here 5 per task)."""
    from dars.stages.split import train_per_task

    q = queries(12, 8)
    only_test = {"train": 0.0, "validation": 0.0, "test": 1.0}
    s = assign_splits(queries=q, seed=0, fractions=only_test, train_per_task=5)
    counts = s.groupby(["task", "split"]).size().to_dict()
    assert counts == {("A", "train"): 5, ("A", "test"): 7, ("B", "train"): 5, ("B", "test"): 3}
    # the train queries are the first 5 of each task in the seeded order: adding queries
    # to a task does not move an old train query out of train
    more = assign_splits(queries=queries(20, 8), seed=0, fractions=only_test, train_per_task=5)
    old_train = set(s.loc[s["split"] == "train", "query_id"])
    new_train = set(more.loc[more["split"] == "train", "query_id"])
    assert len(old_train & new_train) >= 5  # task B unchanged; A may gain earlier-ranked ids
    # the held-out rest is cut validation:test by the fractions' ratio
    half = assign_splits(
        queries=q,
        seed=0,
        fractions={"train": 0.5, "validation": 0.5, "test": 0.5},
        train_per_task=4,
    )
    assert half.groupby(["task", "split"]).size()[("A", "validation")] == 4
    assert train_per_task({"split": {"train_per_task": 200}}) == 200
    assert train_per_task({"split": {}}) is None
    with pytest.raises(ParamsError, match=r"'split.train_per_task' = 0 is out of range"):
        train_per_task({"split": {"train_per_task": 0}})


def test_train_per_task_fails_when_a_task_would_have_no_held_out_query():
    from dars.core.errors import InputDataError

    with pytest.raises(InputDataError, match=r"no held-out query for tasks \{'B': 8\}"):
        assign_splits(
            queries=queries(12, 8),
            seed=0,
            fractions={"train": 0.0, "validation": 0.0, "test": 1.0},
            train_per_task=8,
        )
    with pytest.raises(ParamsError, match="validation \\+ test must be > 0"):
        assign_splits(
            queries=queries(12, 8),
            seed=0,
            fractions={"train": 1.0, "validation": 0.0, "test": 0.0},
            train_per_task=2,
        )
