"""run_joint_codes: the same grouping as joint_codes (rows of one table and of two tables together), computed on the
rows that start a run; run_starts holds the first row of every key."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from doseatlas._codes import joint_codes, run_joint_codes, run_starts

ROWS = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", None, "é"]),
        st.sampled_from([1.0, -0.0, 0.0, np.nan]),
        st.sampled_from(["x", None, pd.NA]),
    ),
    max_size=30,
)


def _table(rows: list, runs: int, text: str) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=["k", "d", "o"]).astype({"k": object, "o": object})
    table = table.loc[table.index.repeat(runs)].reset_index(
        drop=True
    )  # runs of one key, as in a sorted table
    if text == "str":
        table["k"] = table["k"].astype(pd.StringDtype(na_value=np.nan))
    return table


def _same_grouping(a: np.ndarray, b: np.ndarray) -> None:
    """The two numberings put the rows in the same groups."""
    pairs = np.unique(np.c_[a, b], axis=0) if len(a) else np.zeros((0, 2))
    assert len(pairs) == len(np.unique(a)) == len(np.unique(b))


@settings(max_examples=80, deadline=None)
@given(one=ROWS, two=ROWS, runs=st.integers(1, 4), text=st.sampled_from(["object", "str"]))
def test_run_joint_codes_group_as_joint_codes(one, two, runs, text):
    tables = [_table(one, runs, text), _table(two, 1, "object")]
    key = ["k", "d", "o"]
    expected, n_expected = joint_codes(tables, [key, key])
    got, n = run_joint_codes(tables, [key, key])
    assert n == n_expected
    _same_grouping(np.concatenate(got), np.concatenate(expected))
    first = np.unique(expected[0], return_index=True)[1]
    assert np.isin(first, run_starts(tables[0], key)).all()  # the first row of every key starts a run
