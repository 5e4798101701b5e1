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
