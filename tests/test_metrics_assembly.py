"""The metrics step's positional shortcuts against the pandas operations they replace."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from doseatlas import schemas as S
from doseatlas.metrics.compute import _merge_keys

TEXT = pd.StringDtype(na_value=np.nan)


def _keys(text_dtype) -> pd.DataFrame:
    keys = pd.DataFrame({k: ["a", "b", np.nan] for k in S.CURVE_KEY})
    keys[S.DURATION_H] = [72.0, 72.0, np.nan]
    keys[S.SEEDING_DENSITY] = np.nan
    for k in S.CURVE_KEY:
        if keys[k].dtype == object:
            keys[k] = keys[k].astype(text_dtype)
    return keys.assign(n_usable=[3, 0, 1])


@pytest.mark.parametrize("left", [object, TEXT])
@pytest.mark.parametrize("right", [object, TEXT])
@pytest.mark.parametrize("shuffle", [False, True])
def test_merge_keys_is_the_left_merge(left, right, shuffle):
    keys = _keys(left)
    table = _keys(right).drop(columns="n_usable").assign(top=[1.0, 2.0, 3.0], n_points=[9, 8, 7])
    table.index = [5, 6, 7]  # a filtered table: its index is not the keys'
    if shuffle:  # not in the keys' order: merged on the key
        table = table.iloc[[2, 0, 1]]
    got = _merge_keys(keys, table)
    expected = keys.merge(table, on=list(S.CURVE_KEY), how="left")
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_merge_keys_leaves_unmatched_keys_empty():
    keys = _keys(object)
    table = _keys(object).drop(columns="n_usable").assign(top=[1.0, 2.0, 3.0])
    table.loc[1, S.CELL_LINE] = "other"
    got = _merge_keys(keys, table)
    pd.testing.assert_frame_equal(got, keys.merge(table, on=list(S.CURVE_KEY), how="left"), check_exact=True)
    assert np.isnan(got["top"].iloc[1])
