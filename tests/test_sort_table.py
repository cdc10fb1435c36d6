"""sort_table: the order of a stable sort_values from the sorted codes of the key columns; a table already in order
is recognized without sorting."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from doseatlas import schemas as S
from doseatlas.pipeline import _sort_order, sort_table

ROWS = st.lists(
    st.tuples(
        st.sampled_from(["x", "y", "Z", None]),
        st.sampled_from([1.0, 2.0, -0.0, 0.0, np.nan]),
        st.sampled_from(["a", "b", None]),
        st.integers(0, 3),
    ),
    min_size=2,
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(rows=ROWS, text=st.sampled_from([object, "str"]), presort=st.booleans())
def test_sort_order_is_the_stable_sort(rows, text, presort):
    by = [S.DATASET, S.DURATION_H, S.METRIC]
    table = pd.DataFrame(rows, columns=[*by, "payload"])
    for column in (S.DATASET, S.METRIC):
        table[column] = table[column].astype(text)
    if presort:  # sorted tables (the common case) as well as random ones
        table = table.sort_values(by, kind="stable", na_position="last").reset_index(drop=True)
    order = table[by].sort_values(by, kind="stable", na_position="last").index
    got = _sort_order(table, by)
    assert (got is None) == order.equals(pd.RangeIndex(len(table)))
    if got is not None:
        np.testing.assert_array_equal(got, order.to_numpy())
    expected = table.take(order.to_numpy()).reset_index(drop=True)
    pd.testing.assert_frame_equal(sort_table(table, "metrics"), expected, check_exact=True)
