"""Plateau metrics and the near-plateau rule read the plateau's own interval (issue 14; metrics/plateau.py),
and the time-zero terms of the plate controls (metrics/uncertainty.control_terms)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import least_squares

from doseatlas import schemas as S
from doseatlas.metrics import uncertainty as U
from doseatlas.metrics.plateau import near_plateau, plateau_half_width

PARAMS = ("top", "bottom", "log10_ec50", "hill")


def _heteroscedastic_curve(*, bottom: float = 0.1, seed: int = 6) -> pd.DataFrame:
    """One fitted curve (true parameters taken as the fit) whose replicate noise is large at the top and
    small at the plateau: the fit's uniform ``s^2 (J'J)^-1`` overstates the plateau's standard error."""
    rng = np.random.default_rng(seed)
    x = np.repeat(np.linspace(-9.0, -5.0, 9), 3)
    truth, _ = U.sigmoid_jacobian(x, 1.0, bottom, -7.5, 1.5)
    y = truth * np.exp(rng.normal(0.0, 0.15, len(x)))  # multiplicative noise
    fit = least_squares(lambda q: U.sigmoid_jacobian(x, *q)[0] - y, [1.0, bottom, -7.5, 1.5])
    p = dict(zip(PARAMS, fit.x, strict=True))
    fitted, jac = U.sigmoid_jacobian(x, *(np.full(len(x), p[k]) for k in PARAMS))
    n = len(x)
    s2 = float(((y - fitted) ** 2).sum()) / (n - 4)
    cov = s2 * np.linalg.inv(jac.T @ jac)
    row = {
        **p,
        "selected": "sigmoid",
        "conc_min": 1e-9,
        "conc_max": 1e-5,
        "n_points": n,
        "n_doses": 9,
        "flat_value": np.nan,
        "replicate_sd": 0.01,
        "n_replicates": 3,
    }
    row.update({f"cov_{a}_{b}": cov[i, j] for i, a in enumerate(PARAMS) for j, b in enumerate(PARAMS)})
    curves = pd.DataFrame([row])
    terms = U.sandwich(np.zeros(n, dtype=np.int64), x, y, curves, offset=np.zeros(1)).columns()
    return pd.concat([curves, pd.DataFrame(terms)], axis=1)


def test_near_plateau_reads_the_plateau_interval_the_metric_reports():
    """The status rule and the reported plateau interval use one variance (noise model and misfit): the half
    width of the rule is that of uncertainty.plateau_bounds about the fit's own interval."""
    from doseatlas._stats import t975

    curves = _heteroscedastic_curve()
    own = t975(np.array([27.0 - 4.0]))[0] * np.sqrt(curves["cov_bottom_bottom"].to_numpy(float))
    b = curves["bottom"].to_numpy(float)
    lower, upper = U.plateau_bounds(curves, b, b - own, b + own)
    assert plateau_half_width(curves) == pytest.approx(upper - b)
    assert plateau_half_width(curves) == pytest.approx(b - lower)
    # heteroscedastic noise: the noise model's plateau interval is much narrower than the uniform one
    assert plateau_half_width(curves)[0] < 0.5 * own[0]


def test_a_level_outside_the_noise_model_plateau_interval_keeps_its_closed_interval():
    """Level 0.04 above the plateau: inside the uniform-covariance band (main: the crossing was opened to
    infinity), outside the plateau's noise-model interval: the crossing's interval stays closed."""
    curves = _heteroscedastic_curve().assign(_mean_min=0.3)  # no dose mean reaches either level
    bottom = curves["bottom"].to_numpy(float)
    uniform = 2.07 * np.sqrt(curves["cov_bottom_bottom"].to_numpy(float))
    assert uniform[0] > 0.04 > plateau_half_width(curves)[0]
    got = pd.DataFrame({S.STATUS: ["estimated"], S.VALUE: [1e-6], S.LOWER: [5e-7], S.UPPER: [2e-6]})
    out = near_plateau(float(bottom[0] + 0.04), got, curves, bottom + 0.04)
    assert np.isfinite(out[S.UPPER].iloc[0])
    level = bottom + 0.2 * plateau_half_width(curves)  # inside the plateau's interval: opened above
    assert near_plateau(float(level[0]), got, curves, level)[S.UPPER].iloc[0] == np.inf


def _control_rows(*, time_zero_scope: str, gains: np.ndarray, n_zero: int = 24) -> pd.DataFrame:
    """Responses of one curve on three plates whose vehicle summaries differ by ``gains`` (log)."""
    rows = []
    for p, g in enumerate(gains):
        rows.append(
            {
                S.DATASET: "d",
                S.CELL_LINE: "c",
                S.PERTURBATION_TYPE: "drug",
                S.PERTURBAGEN: "x",
                S.READOUT: "atp",
                S.TIME_H: 72.0,
                S.PLATE: f"p{p}",
                S.VEHICLE_SIGNAL: 1000.0 * np.exp(g),
                S.VEHICLE_SPREAD: 50.0 * np.exp(g),
                S.N_VEHICLE: 6,
                S.N_TIME_ZERO: n_zero,
                S.TIME_ZERO_SIGNAL: 200.0,  # one summary pooled over the cell line's time-zero plates
                "time_zero_scope": time_zero_scope,
            }
        )
    return S.with_series(pd.DataFrame(rows))


def test_a_pooled_time_zero_summary_is_not_averaged_over_the_plates():
    """The three plates share one time-zero summary of 24 wells: its relative variance is cv^2 1.2 / 24
    (main divided it by the 3 plates once more)."""
    terms = U.control_terms(_control_rows(time_zero_scope="dataset", gains=np.zeros(3)))
    assert terms[U.VAR_0].iloc[0] == pytest.approx(0.05**2 * 1.2 / 24)


def test_plate_gain_enters_the_time_zero_variance_when_time_zero_is_on_other_plates():
    """Vehicle summaries 10 % apart between plates (far beyond their sampling error): a time zero read on other
    plates carries that scale difference; a time zero on the treated plate does not."""
    gains = np.array([-0.1, 0.0, 0.1])
    apart = U.control_terms(_control_rows(time_zero_scope="dataset", gains=gains))[U.VAR_0].iloc[0]
    same = U.control_terms(_control_rows(time_zero_scope="plate", gains=gains))[U.VAR_0].iloc[0]
    sampling = 0.05**2 * 1.2 / 6
    between = np.var(gains, ddof=1) - sampling  # the gain variance beyond the summaries' sampling
    assert same == pytest.approx(0.05**2 * 1.2 / 24)
    assert apart == pytest.approx(same + 2.0 * between / 3.0)


@pytest.mark.slow
def test_grinf_covers_on_the_simulators_default_set_up():
    """The simulator's default data set (seeding CV 0.1, plate gain SD 0.05, time zero on plates of its own),
    5 % noise, seeds 20-22, n = 324-335: grinf 0.954 / 0.958 (refuse / shrink); main 0.914 / 0.925 (the pooled
    time-zero summary's variance divided by the plates, no plate-gain term)."""
    from conftest import script_module

    table = script_module("interval_coverage").coverage_table(
        seeds=(20, 21, 22), cvs=(0.05,), n_cell_lines=12, seeding_cv=0.1, plate_gain_sd=0.05
    )
    grinf = table[table["metric"] == "grinf"]
    assert (grinf["n"] >= 300).all(), grinf
    assert grinf["coverage"].between(0.93, 0.975).all(), grinf
