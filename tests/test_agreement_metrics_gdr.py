"""Metric-level agreement with gDR (gDRcore 1.11 ``Metrics.csv`` in gDRtestData); see docs/validation.md.

The comparison (gDR's conventions: mean controls, top fixed at 1, gDR's parameter box, its F-test df, GR from
the division time) lives in ``scripts/validate.py`` so that the tests and the validation page measure the same thing.
"""

from __future__ import annotations

import functools

import pytest

from conftest import external_dir, validate_module

V = validate_module()
# IC50 / GR50 |Δlog10| where both estimate inside the range: the same least squares in the same box, so what is
# left is optimizer stopping and gDR's 4-decimal rounding of the inputs (measured: medians 2e-5 - 6e-5)
LOG10_MEDIAN_TOL = 2e-4


@functools.cache
def _run(name: str):
    return V.gdr_run(name)


@functools.cache
def _compared(name: str, kind: str):
    merged = V.gdr_compare(name, kind, result=_run(name))
    return merged, {r["metric"]: r for r in V.gdr_rows(merged, kind)}


def _rows(name: str, kind: str):
    external_dir("gdrtestdata")
    return _compared(name, kind)


@pytest.mark.parametrize(("name", "kind", "x50"), [("synthetic_small_no_noise", "RV", "IC50"),
                                                   ("synthetic_small_no_noise", "GR", "GR50"),
                                                   ("prism_gdc8025", "RV", "IC50")])  # fmt: skip
def test_crossing_agrees_where_both_estimate_it(name, kind, x50):
    _, rows = _rows(name, kind)
    row = rows[f"{x50} (log10 µM), both inside range"]
    assert row["n"] >= 50
    assert row["median_abs_diff"] <= LOG10_MEDIAN_TOL
    assert row["spearman"] >= 0.999


@pytest.mark.parametrize(("name", "kind", "x50", "share"), [("synthetic_small_no_noise", "RV", "IC50", 0.99),
                                                            ("synthetic_small_no_noise", "GR", "GR50", 0.99),
                                                            ("prism_gdc8025", "RV", "IC50", 0.995)])  # fmt: skip
def test_censoring_status_matches_gdr_infinities(name, kind, x50, share):
    _, rows = _rows(name, kind)
    assert rows[f"{x50} status (censoring, ±Inf)"]["status_agreement"] >= share


def test_prism_fit_parameters_agree_in_gdrs_box():
    _, rows = _rows("prism_gdc8025", "RV")
    for metric in ("EC50 (log10 µM), both sigmoid", "h, both sigmoid", "x_inf vs Einf"):
        assert rows[metric]["median_abs_diff"] <= 1e-3, metric
    assert rows["F-test p-value (log10), both sigmoid, both p > 1e-10"]["median_abs_diff"] <= 1e-2
    assert rows["flat / sigmoid call"]["status_agreement"] >= 0.98


def test_where_gdr_keeps_the_flat_model_our_sigmoid_fits_better():
    _, rows = _rows("prism_gdc8025", "RV")
    row = rows["gDR flat, ours sigmoid: our sigmoid RSS <= gDR's"]
    assert row["n"] >= 1 and row["status_agreement"] == 1.0


@pytest.mark.parametrize("name", ["synthetic_small_no_noise", "prism_gdc8025"])
def test_xmax_is_gdrs_min_of_the_two_top_dose_means(name):
    _, rows = _rows(name, "RV")
    assert rows["x_max vs min of two top-dose means"]["max_abs_diff"] <= 1e-4  # gDR rounds to 4 decimals


def test_prism_without_time_zero_has_no_gr_on_either_side():
    external_dir("gdrtestdata")
    result = _run("prism_gdc8025")
    gr50 = result.metrics[result.metrics["metric"] == "gr50"]
    assert len(gr50) == 774
    assert (gr50["status"] == "refused").all() and (gr50["reason"] == "no_time_zero").all()
