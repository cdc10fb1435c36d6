"""Vectorized grouped helpers of the run path against straightforward per-group references."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from doseatlas.metrics.compute import dominant_reason

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
