"""Vectorized grouped helpers of the run path against straightforward per-group references."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from doseatlas.metrics.compute import dominant_reason
from doseatlas.normalize import robust_spread
from doseatlas.qc import _formats_of, parse_wells

NO_RESPONSES = "no_responses"


def _reference(reasons: pd.Series) -> str:
    """The per-group Python function the vectorized version replaces (value_counts order)."""
    counts = reasons.dropna().value_counts()
    return str(counts.index[0]) if len(counts) else NO_RESPONSES


def _check(table: pd.DataFrame) -> None:
    grouped = table.groupby(["a", "b"], dropna=False)
    expected = grouped["reason"].agg(_reference)
    got = dominant_reason(grouped, "reason")
    pd.testing.assert_series_equal(got, expected, check_dtype=False, check_names=False)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["x", "y", None]),
            st.integers(0, 3),
            st.sampled_from(["too_few_doses", "masked", "qc_failed", None]),
        ),
        min_size=1,
        max_size=60,
    )
)
def test_dominant_reason_matches_value_counts(rows):
    """Random small groups with many ties and missing keys and reasons: same value as the reference."""
    table = pd.DataFrame(rows, columns=["a", "b", "reason"])
    _check(table)


def test_dominant_reason_ties_and_empty_groups_large():
    rng = np.random.default_rng(7)
    n = 20_000
    table = pd.DataFrame(
        {
            "a": rng.integers(0, 50, n),
            "b": rng.choice(["p", "q"], n),
            "reason": rng.choice(np.array(["r1", "r2", "r3", None], dtype=object), n, p=[0.3, 0.3, 0.1, 0.3]),
        }
    )
    table.loc[table["a"] == 3, "reason"] = None  # groups with no reason at all
    _check(table)
    assert (dominant_reason(table.groupby(["a", "b"], dropna=False), "reason").loc[3] == NO_RESPONSES).all()


def test_dominant_reason_tie_goes_to_first_seen():
    table = pd.DataFrame(
        {"a": ["x"] * 4, "b": [0] * 4, "reason": ["qc_failed", "masked", "masked", "qc_failed"]}
    )
    assert dominant_reason(table.groupby(["a", "b"]), "reason").iloc[0] == "qc_failed"


def _spread_reference(values: pd.Series) -> float:
    """The per-group Python function :func:`doseatlas.normalize.robust_spread` replaces."""
    return float(stats.median_abs_deviation(values, scale="normal")) if len(values) > 1 else np.nan


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["p1", "p2", None]),
            st.integers(0, 2),
            st.one_of(st.sampled_from([1.0, 2.0, 2.0, 5.5]), st.floats(-1e6, 1e6, allow_nan=False)),
        ),
        min_size=1,
        max_size=50,
    )
)
def test_robust_spread_bit_for_bit(rows):
    """Odd and even groups, repeated values (ties), single-value groups, missing keys: identical bits."""
    table = pd.DataFrame(rows, columns=["a", "b", "v"])
    grouped = table.groupby(["a", "b"], dropna=False)["v"]
    expected = grouped.agg(_spread_reference)
    got = robust_spread(grouped)
    np.testing.assert_array_equal(got.to_numpy(), expected.to_numpy())
    assert got.index.equals(expected.index)


def test_robust_spread_nan_in_group():
    table = pd.DataFrame({"a": [0, 0, 0, 1, 1], "v": [1.0, np.nan, 3.0, 2.0, 4.0]})
    grouped = table.groupby("a")["v"]
    np.testing.assert_array_equal(
        robust_spread(grouped).to_numpy(), grouped.agg(_spread_reference).to_numpy()
    )


def _well_reference(name: object) -> tuple[float, float]:
    """Per-value parse of a well name (what :func:`doseatlas.qc.parse_wells` did row by row)."""
    import re

    m = re.match(r"^([A-Za-z]{1,2})0*(\d{1,2})$", str(name).strip())
    if m is None:
        return np.nan, np.nan
    row = 0
    for char in m.group(1).upper():
        row = row * 26 + (ord(char) - ord("A") + 1)
    return float(row), float(m.group(2))


def test_parse_wells_parses_each_distinct_name_once_same_values():
    rng = np.random.default_rng(1)
    names = np.array(
        ["A01", " b7 ", "AF48", "Z99", "x1", None, np.nan, "A001", "aa02", 5, "", "AG50"], dtype=object
    )
    wells = pd.Series(rng.choice(names, 3000), index=rng.permutation(3000))
    got = parse_wells(wells)
    expected = np.array([_well_reference(w) for w in wells])
    np.testing.assert_array_equal(got[["row", "col"]].to_numpy(), expected)
    assert got.index.equals(wells.index)


def test_plate_formats_vectorized():
    extent = pd.DataFrame(
        {"rows": [1, 8, 9, 16, 17, 32, 33, np.nan, 8], "cols": [1, 12, 12, 24, 24, 48, 1, 1, 13]}
    )
    dims = _formats_of(extent)
    np.testing.assert_array_equal(dims["nr"], [8, 8, 16, 16, 32, 32, np.nan, np.nan, 16])
    np.testing.assert_array_equal(dims["nc"], [12, 12, 24, 24, 48, 48, np.nan, np.nan, 24])
