"""GDSC: our per-curve IC50 beside gdscIC50's NLME IC50 (the vignette's 50-cell-line x 3-drug fit); see
docs/validation.md. The NLME borrows strength across curves and forces every curve to 0: a difference of definition,
so these tests pin down that the gap is the one we document (curve family, then shrinkage), not an error of ours.
"""

from __future__ import annotations

import functools

import numpy as np

from conftest import external_dir, validate_module

V = validate_module()


@functools.cache
def _compared(model: str, policy: str):
    merged = V.gdsc_compare(subset=True, model=model, policy=policy)
    return merged, {r["metric"]: r for r in V.gdsc_rows(merged)}


def _rows(model: str, policy: str = "refuse"):
    external_dir(V.GDSC_FOLDER)
    return _compared(model, policy)


def test_every_gdsc_curve_has_our_curve_and_an_ic50_row():
    merged, _ = _rows("ll4")
    assert len(merged) == 150
    assert merged["ic50_status"].notna().all()


def test_with_gdscs_curve_family_the_per_curve_ic50_is_close_to_the_nlme():
    _, rows = _rows("ll2")
    row = rows["IC50 (ln µM), both inside range"]
    assert row["n"] >= 25
    assert row["median_abs_diff"] <= 0.15  # measured 0.09 ln units (the shrinkage of the mixed model)
    assert row["spearman"] >= 0.99


def test_the_default_fit_differs_from_the_nlme_by_its_curve_family():
    merged, rows = _rows("ll4")
    _, ll2 = _rows("ll2")
    ic50 = "IC50 (ln µM), both inside range"
    assert rows[ic50]["median_abs_diff"] > ll2[ic50]["median_abs_diff"]
    # where NLME estimates an IC50 inside the range but ours is censored, our fitted curve stays above 0.5:
    # the NLME curve reaches 0 by construction, ours keeps its bottom
    censored = merged["ic50_status"].eq("right_censored") & merged["ic50_expected"].eq("estimated")
    assert censored.any()
    assert rows["ic50 status (GDSC value beyond the range = censored)"]["status_agreement"] >= 0.9
    both = merged["ic50_status"].eq("estimated") & merged["ic50_expected"].eq("estimated")
    assert np.all(np.isfinite(merged.loc[both, "ic50_ln_um"]))


def test_the_shrink_policy_gives_every_gdsc_curve_a_value_like_the_nlme():
    merged, rows = _rows("ll2", "shrink")
    refused, _ = _rows("ll2")
    # main refused 12 poor_fit curves; their replicate means never cross 0.5, so they are right-censored now
    # (issue 14), as GDSC's value beyond the range says: the refusal policy refuses none of these 150
    assert refused["ic50_status"].eq("refused").sum() == 0
    assert merged["ic50_status"].ne("refused").all() and merged["auc"].notna().all()
    status = "ic50 status (GDSC value beyond the range = censored)"
    _, refuse_rows = _rows("ll2")
    assert (
        rows[status]["status_agreement"] >= 0.95
    )  # measured 0.96 (refusal policy: 0.96; 0.88 before issue 14)
    assert rows[status]["status_agreement"] >= refuse_rows[status]["status_agreement"]
    auc = "AUC (fraction of the tested range)"
    assert rows[auc]["n"] == 150
    assert rows[auc]["median_abs_diff"] < refuse_rows[auc]["median_abs_diff"]  # measured 0.017 vs 0.027
    in_range = rows["IC50 (ln µM), both inside range"]
    assert in_range["median_abs_diff"] <= 0.15 and in_range["spearman"] >= 0.98  # measured 0.09, 0.991
