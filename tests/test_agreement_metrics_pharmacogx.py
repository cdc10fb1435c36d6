"""Metric-level agreement with PharmacoGx 3.7.5 on GDSCsmall (IC50, AAC); see docs/validation.md.

PharmacoGx: 3-parameter Hill on log10 dose with the top fixed at 100 %, IC50 in µM (ours M), AAC in percent
(ours: AAC = 1 - auc). Compared with its ``*_notrunc`` recomputation. The comparison lives in ``scripts/validate.py``.
"""

from __future__ import annotations

import pytest

from conftest import external_dir, validate_module

# issue 5 targets for IC50 with our default bounds (ll3 only): rank agreement and median |Δlog10| where both
# estimate it inside the tested range (measured: Spearman 0.9994, median 4e-4, n 414)
SPEARMAN_MIN = 0.98
IC50_MEDIAN_TOL = 0.05
# with PharmacoGx's own parameter box the same least-squares problem is solved (measured: median 4e-9,
# Spearman 0.99993): allow optimizer stopping differences only
IC50_MEDIAN_TOL_SAME_BOUNDS = 1e-4
# AAC on curves we fit as sigmoid (a flat call changes AAC by definition; measured median 1e-9, Spearman 0.9997)
AAC_MEDIAN_TOL = 1e-3
# censoring status: only our F-test flat calls differ (PharmacoGx has no model selection; measured 0.979)
STATUS_MIN = 0.95


V = validate_module()
_CACHE: dict = {}


def _rows(*, bounds: bool) -> dict:
    if bounds not in _CACHE:
        external_dir("pharmacogx_small_psets")
        merged = V.pharmacogx_compare(bounds=bounds)
        _CACHE[bounds] = (merged, {r["metric"]: r for r in V.pharmacogx_rows(merged)})
    return _CACHE[bounds]


def test_ic50_meets_the_issue_targets_with_default_bounds():
    merged, rows = _rows(bounds=False)
    assert len(merged) == 972 and merged["ic50_status"].notna().all()
    row = rows["IC50 (log10 µM), both inside range"]
    assert row["n"] >= 350, row
    assert row["spearman"] >= SPEARMAN_MIN, row
    assert row["median_abs_diff"] <= IC50_MEDIAN_TOL, row


@pytest.mark.parametrize("bounds", [False, True])
def test_aac_matches_on_sigmoid_fits(bounds):
    _, rows = _rows(bounds=bounds)
    row = rows["AAC (fraction), our sigmoid fits"]
    assert row["n"] >= 500, row
    assert row["spearman"] >= SPEARMAN_MIN, row
    assert row["median_abs_diff"] <= AAC_MEDIAN_TOL, row


def test_ic50_with_pharmacogx_bounds_is_the_same_fit():
    _, rows = _rows(bounds=True)
    row = rows["IC50 (log10 µM), both inside range"]
    assert row["n"] >= 350 and row["spearman"] >= SPEARMAN_MIN, row
    assert row["median_abs_diff"] <= IC50_MEDIAN_TOL_SAME_BOUNDS, row


def test_ic50_censoring_differs_only_by_flat_calls():
    merged, rows = _rows(bounds=True)
    assert rows["ic50 status (censoring)"]["status_agreement"] >= STATUS_MIN
    differ = merged["ic50_status"] != merged["ic50_expected"]
    assert (merged.loc[differ, "selected"] == "flat").all()
