"""Group codes computed once (doseatlas._codes, sorted numbering) and the reductions on them against pandas / numpy references."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from doseatlas import schemas as S
from doseatlas._codes import (
    first_code_rows,
    key_codes,
    n_distinct,
    ordered_codes,
    pair_codes,
    sorted_key_codes,
)
from doseatlas._stats import group_summary, group_value_order, summary_by_code
from doseatlas.spatial import nanmedian

ROWS = st.lists(
    st.tuples(
        st.sampled_from(["x", "y", "z", None]),
        st.sampled_from([1.0, 2.0, -0.0, 0.0, np.nan]),
        st.sampled_from([0.5, 0.25, 1e-3, np.inf, np.nan]),
    ),
    min_size=1,
    max_size=40,
)


def _table(rows) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=["a", "b", "v"])
    table["a"] = table["a"].astype(object)
    return table


@settings(max_examples=30, deadline=None)
@given(rows=ROWS)
def test_key_codes_are_pandas_sorted_grouping(rows):
    table = _table(rows)
    codes, keys = key_codes(table, ["a", "b"])
    grouped = table.groupby(["a", "b"], dropna=False, sort=True)
    np.testing.assert_array_equal(codes, grouped.ngroup().to_numpy())
    pd.testing.assert_frame_equal(keys, grouped.size().reset_index()[["a", "b"]])


@settings(max_examples=40, deadline=None)
@given(rows=ROWS, text=st.sampled_from([object, "str"]))
def test_sorted_key_codes_are_key_codes(rows, text):
    table = _table(rows)
    table["a"] = table["a"].astype(text)
    codes, keys = sorted_key_codes(table, ["a", "b"])
    expected_codes, expected_keys = key_codes(table, ["a", "b"])
    np.testing.assert_array_equal(codes, expected_codes)
    pd.testing.assert_frame_equal(keys, expected_keys, check_exact=True)


@settings(max_examples=30, deadline=None)
@given(rows=ROWS, method=st.sampled_from(["mean", "median", "trimmed_mean", "std", "sum"]))
def test_summary_by_code_is_group_summary_to_the_bit(rows, method):
    table = _table(rows).dropna(subset=["v"])
    if not len(table):
        return
    codes, keys = key_codes(table, ["a", "b"])
    got = summary_by_code(codes, table["v"].to_numpy(float), len(keys), method=method)
    expected = group_summary(table, ["a", "b"], "v", method=method).to_numpy()
    assert np.array_equal(got.view(np.int64), expected.view(np.int64)) or np.array_equal(
        got, expected, equal_nan=True
    )


@settings(max_examples=30, deadline=None)
@given(
    codes=st.lists(st.integers(0, 3), min_size=1, max_size=40),
    seed=st.integers(0, 2**16),
    method=st.sampled_from(["mean", "median", "trimmed_mean", "std", "sum"]),
)
def test_summary_by_code_sums_in_the_lexsort_order(codes, seed, method):
    """The two stable sorts of summary_by_code order the values as np.lexsort((values, codes)) did: the same
    sums to the bit (ties, signed zeros and huge values that make the summation order matter)."""
    rng = np.random.default_rng(seed)
    values = rng.choice([1e16, -1e16, 1.0, 3.0, -0.0, 0.0, 0.1], size=len(codes))
    codes = np.asarray(codes)
    order = np.lexsort((values, codes))
    reference = summary_by_code(np.sort(codes), values[order], 4, method=method)  # already in that order
    got = summary_by_code(codes, values, 4, method=method)
    assert np.array_equal(got.view(np.int64), reference.view(np.int64))


@settings(max_examples=60, deadline=None)
@given(
    codes=st.lists(st.integers(0, 5), min_size=0, max_size=60),
    seed=st.integers(0, 2**16),
    wide=st.booleans(),
)
def test_group_value_order_is_lexsort(codes, seed, wide):
    """Ties, signed zeros, infinities and NaN ordered as np.lexsort orders them (one wide group: the other path)."""
    rng = np.random.default_rng(seed)
    codes = np.asarray(codes + ([6] * 70 if wide else []), dtype=np.int64)
    values = rng.choice([np.nan, np.inf, -np.inf, -0.0, 0.0, 1.0, 2.5], size=len(codes))
    got = group_value_order(codes, values, 8)
    np.testing.assert_array_equal(got, np.lexsort((values, codes)))


@settings(max_examples=30, deadline=None)
@given(rows=ROWS)
def test_pair_codes_n_distinct_and_first_rows(rows):
    table = _table(rows)
    codes, keys = key_codes(table, ["a"])
    pair, pair_group, pair_value = pair_codes(codes, table["b"].to_numpy(float))
    grouped = table.assign(_g=codes).groupby(["_g", "b"], dropna=False, sort=True)
    np.testing.assert_array_equal(pair, grouped.ngroup().to_numpy())
    index = grouped.size().index
    np.testing.assert_array_equal(pair_group, index.get_level_values("_g").to_numpy())
    np.testing.assert_array_equal(pair_value, index.get_level_values("b").to_numpy(float))
    expected = table.groupby("a", dropna=False, sort=True)["v"].nunique().to_numpy()
    np.testing.assert_array_equal(n_distinct(codes, table["v"].to_numpy(float), len(keys)), expected)
    first = table.drop_duplicates(["a"]).index.to_numpy()
    np.testing.assert_array_equal(first_code_rows(codes), first)


@settings(max_examples=30, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 5), st.integers(1, 6), st.integers(1, 7)),
    seed=st.integers(0, 2**16),
    missing=st.floats(0, 1),
)
def test_nanmedian_is_numpys(shape, seed, missing):
    rng = np.random.default_rng(seed)
    values = np.round(rng.normal(size=shape), int(rng.integers(0, 3)))
    values[rng.random(shape) < missing] = np.nan
    values[rng.random(shape) < 0.05] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for axis in (0, 1, 2, (1, 2)):
            np.testing.assert_array_equal(nanmedian(values, axis=axis), np.nanmedian(values, axis=axis))


def test_metrics_come_sorted_by_their_key():
    """compute_metrics orders its rows from key and metric ranks: the order sort_values gives."""
    from doseatlas.metrics import compute_metrics
    from doseatlas.normalize import normalize
    from doseatlas.pipeline import FitOptions, fit_all_scales
    from doseatlas.simulate import SimulationConfig, simulate
    from doseatlas.validate import validate_wells

    wells = simulate(SimulationConfig(n_cell_lines=3, n_drugs=3), seed=1).wells
    wells = wells.assign(**{S.SOURCE_FILE: "sim.csv", S.SOURCE_LINE: np.arange(len(wells))})
    responses = normalize(validate_wells(wells).clean)
    metrics = compute_metrics(responses, fit_all_scales(responses, options=FitOptions()))
    assert len(metrics)
    expected = metrics.sort_values([*S.CURVE_KEY, S.METRIC], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(metrics, expected)


def test_ordered_codes_renumbers_before_overflow_and_keeps_groupby_order():
    # six columns of 5,000 values each: their codes folded into one int64 would pass 2**62 without renumbering
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"c{i}": rng.integers(0, 5000, 20_000).astype(float) for i in range(6)})
    frame.loc[::7, "c2"] = np.nan
    frame["t"] = rng.choice(np.array(["a", "b", None], dtype=object), len(frame))
    expected = frame.groupby(list(frame.columns), sort=True, dropna=False).ngroup().to_numpy()
    factorized = [pd.factorize(frame[c], sort=True) for c in frame.columns]
    got = ordered_codes([(codes, len(uniques)) for codes, uniques in factorized], len(frame))
    np.testing.assert_array_equal(got, expected)
