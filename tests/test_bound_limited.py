"""Bounds that bind (issue 14, item 6): a fit held to a parameter bound is never called estimated silently."""

from __future__ import annotations

import numpy as np
import pandas as pd

from doseatlas import schemas as S
from doseatlas.fit.table import AT_BOUND, at_bound
from doseatlas.metrics.flags import flag_metrics, has_flag


def _responses(levels):
    from doseatlas.normalize import normalize
    from doseatlas.validate import validate_wells

    from wells import frame, plate

    doses = [0.01 * 3**i for i in range(len(levels))]
    noise = [0.01, -0.01, 0.0, 0.012, -0.008, 0.005, -0.004, 0.009, -0.011]
    rows = []
    for rep in range(3):
        treated = {
            d: 100.0 * (level + noise[(i + 3 * rep) % 9]) + 10.0
            for i, (d, level) in enumerate(zip(doses, levels, strict=True))
        }
        rows += plate(treated=treated, vehicle=[109.0, 110.0, 111.0], plate_id=f"p{rep}")
    return normalize(validate_wells(frame(rows)).clean)


def _run(levels):
    from doseatlas.metrics import compute_metrics
    from doseatlas.pipeline import FitOptions, fit_all_scales

    responses = _responses(levels)
    curves = fit_all_scales(responses, options=FitOptions())
    metrics = compute_metrics(responses, curves)
    flagged = flag_metrics(
        metrics, responses=responses, plates=pd.DataFrame(), dependence=pd.DataFrame(), curves=curves
    )
    return curves, flagged


def test_a_step_between_two_doses_holds_the_hill_on_its_bound_and_flags_the_estimates():
    """Viability 1.0 up to the 4th dose and 0.2 from the 5th: the steepest curve the bounds allow (hill 10)."""
    curves, metrics = _run([1.0, 1.0, 1.0, 1.0, 0.2, 0.2, 0.2, 0.2])
    rv = curves[curves[S.SCALE] == S.RELATIVE_VIABILITY].iloc[0]
    assert "hill" in rv[AT_BOUND].split(";"), rv[["hill", AT_BOUND]]
    ic50 = metrics.set_index(S.METRIC).loc["ic50"]
    if ic50[S.STATUS] == "estimated":
        assert has_flag(pd.Series([ic50[S.FLAGS]]), "bound_limited").iloc[0]
    estimated = metrics[(metrics[S.CURVE_ID] == rv[S.CURVE_ID]) & (metrics[S.STATUS] == "estimated")]
    fitted = estimated[~estimated[S.METRIC].isin(["emax", "gr_aoc", "grmax"])]
    assert len(fitted) and has_flag(fitted[S.FLAGS], "bound_limited").all(), fitted[[S.METRIC, S.FLAGS]]


def test_a_smooth_curve_inside_its_bounds_is_not_flagged():
    x = np.log10([0.01 * 3**i for i in range(8)])
    curves, metrics = _run(list(0.1 + 0.9 / (1 + 10 ** (1.0 * (x - np.log10(0.5))))))
    rv = curves[curves[S.SCALE] == S.RELATIVE_VIABILITY].iloc[0]
    assert rv[AT_BOUND] == ""
    assert not has_flag(metrics[metrics[S.CURVE_ID] == rv[S.CURVE_ID]][S.FLAGS], "bound_limited").any()


def test_at_bound_names_each_binding_parameter():
    x = np.tile(np.linspace(-9, -5, 9), (2, 1))
    y = np.tile(np.linspace(1, 0, 9), (2, 1))
    params = np.array([[1.0, 0.0, -7.0, 10.0], [1.0, 0.0, -7.0, 1.0]])
    got = at_bound(x, y, params, model="ll4", overrides={"log10_ec50": (-7.0, -3.0)})
    assert list(got) == ["log10_ec50;hill", "log10_ec50"]
