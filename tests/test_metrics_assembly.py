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


@pytest.mark.parametrize("shuffle", [False, True])
def test_misfit_join_by_position_is_the_merge(shuffle):
    """uncertainty._joined_by_position (the pure-error terms beside the curves of each scale) gives the merge on
    the curve key and scale, and declines (None: the caller merges) when the curves are not in the keys' order."""
    from doseatlas.metrics.uncertainty import _joined_by_position

    keys = _keys(TEXT).drop(columns="n_usable")
    pe = pd.concat(
        [
            keys.assign(**{S.SCALE: scale, "_ss_pe": [1.0, 2.0, 3.0 + i]})
            for i, scale in enumerate(["gr", "rv"])
        ],
        ignore_index=True,
    )
    curves = pd.concat(
        [
            _keys(object).drop(columns="n_usable").assign(**{S.SCALE: s, "rss": 1.0})
            for s in ["rv", "pg", "gr"]
        ],
        ignore_index=True,
    )
    if shuffle:
        curves = curves.iloc[[1, 0, 2, 3, 4, 5, 6, 7, 8]].reset_index(drop=True)
    got = _joined_by_position(curves, pe, 3)
    if shuffle:
        assert got is None
        return
    expected = curves.merge(pe, on=[*S.CURVE_KEY, S.SCALE], how="left")
    np.testing.assert_array_equal(got["_ss_pe"].to_numpy(), expected["_ss_pe"].to_numpy())
    assert got["_ss_pe"].isna().sum() == 3  # the scale without pure-error terms
