"""Batched curve-fitting engine: statuses, selection, intervals, simulated recovery, the curves table."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import OptimizeWarning, curve_fit

from doseatlas import schemas as S
from doseatlas.errors import ConfigError, FitError
from doseatlas.fit import STATUS_CODES, curves_columns, f_test_pvalue, fit_batch, fit_curves

DOSES = np.repeat(np.linspace(-9.0, -5.0, 9), 2)


def _ll4(x, top, bottom, e, h):
    return bottom + (top - bottom) / (1.0 + 10.0 ** (h * (x - e)))


def _simulate(n, rng, *, sd=0.05):
    truth = np.column_stack(
        [
            rng.normal(1, 0.03, n),
            rng.uniform(0, 0.4, n),
            rng.uniform(-8.5, -5.5, n),
            np.exp(rng.normal(0, 0.3, n)),
        ]
    )
    x = np.tile(DOSES, (n, 1))
    y = _ll4(x, *truth.T[:, :, None]) + rng.normal(0, sd, x.shape)
    return x, y, truth


def test_exact_curve_is_recovered_and_decreasing_curve_has_positive_hill():
    x = DOSES[None, :]
    y = _ll4(x, 1.0, 0.1, -7.0, 1.5)
    fit = fit_batch(x, y)
    assert fit.status_names()[0] == "converged"
    assert fit.params[0] == pytest.approx([1.0, 0.1, -7.0, 1.5], abs=1e-6)
    assert fit.selected_names()[0] == "sigmoid"


def test_statuses_one_row_per_curve_never_dropped():
    x = np.tile(DOSES, (5, 1))
    y = _ll4(x, 1.0, 0.2, -7.0, 1.0) + np.random.default_rng(0).normal(0, 0.02, x.shape)
    y[1] = 0.8 + np.random.default_rng(1).normal(0, 0.02, x.shape[1])  # flat
    y[2, 3:] = np.nan  # 3 points < 4 parameters
    y[3, 5] = np.inf  # bad input
    x[4, :] = -7.0  # one dose only: ec50 and hill not identifiable
    fit = fit_batch(x, y)
    assert len(fit) == 5
    assert list(fit.status_names()[:4]) == ["converged", "flat", "too_few_points", "non_finite"]
    assert fit.status_names()[4] in ("singular", "flat")
    assert fit.n_points.tolist() == [18, 18, 3, 18, 18]
    assert np.isnan(fit.params[2]).all() and np.isnan(fit.params[3]).all()
    assert set(STATUS_CODES) >= {"converged", "flat", "max_iter", "too_few_points", "non_finite", "singular"}


def test_dose_zero_points_sit_on_the_top_asymptote():
    x = np.concatenate([[-np.inf] * 3, DOSES])[None, :]
    y = _ll4(x, 1.0, 0.1, -7.0, 1.5)
    y[0, :3] = 1.0
    fit = fit_batch(x, y)
    assert fit.params[0] == pytest.approx([1.0, 0.1, -7.0, 1.5], abs=1e-6)
    assert fit.n_points[0] == 21


def test_models_fix_their_parameters_and_respect_bounds():
    rng = np.random.default_rng(2)
    x, y, _ = _simulate(50, rng)
    for model, fixed in (("ll3", {0: 1.0}), ("ll2", {0: 1.0, 1: 0.0}), ("gr_sigmoid", {0: 1.0})):
        fit = fit_batch(x, y, model=model)
        for j, v in fixed.items():
            assert np.all(fit.params[:, j] == v)
            assert np.isnan(fit.stderr[:, j]).all()
        assert np.all(fit.params[:, 3] >= 0.1)
    fit = fit_batch(x, y * 0.5 - 0.9, model="gr_sigmoid")
    assert np.all(fit.params[:, 1] >= -1.0) and np.all(fit.params[:, 3] <= 5.0)


def test_f_test_matches_scipy_and_grmetrics_df_is_more_permissive():
    from scipy import stats

    rss_sig, rss_flat, n = np.array([0.5, 2.0]), np.array([1.0, 2.1]), np.array([18, 18])
    f = ((rss_flat - rss_sig) / 3) / (rss_sig / 14)
    assert f_test_pvalue(rss_sig, rss_flat, n, 4) == pytest.approx(stats.f.sf(f, 3, 14))
    rng = np.random.default_rng(11)  # the compiled incomplete beta against scipy, down to tiny p-values
    rss_sig = np.exp(rng.normal(0, 2, 2000))
    rss_flat = rss_sig * (1 + np.exp(rng.normal(0, 3, 2000)))
    n = rng.integers(5, 80, 2000)
    for p in (2, 3, 4):
        f = ((rss_flat - rss_sig) / (p - 1)) / (rss_sig / (n - p))
        np.testing.assert_allclose(
            f_test_pvalue(rss_sig, rss_flat, n, p), stats.f.sf(f, p - 1, n - p), rtol=1e-9
        )
    assert np.all(
        f_test_pvalue(rss_sig, rss_flat, n, 4, ftest_df="grmetrics") < f_test_pvalue(rss_sig, rss_flat, n, 4)
    )
    assert f_test_pvalue(np.array([2.0]), np.array([1.0]), np.array([18]), 4)[0] == 1.0


def test_aic_selection_and_option_errors():
    rng = np.random.default_rng(3)
    x, y, _ = _simulate(20, rng)
    assert (fit_batch(x, y, selection="aic").selected_names() == "sigmoid").mean() > 0.5
    with pytest.raises(ConfigError):
        fit_batch(x, y, selection="bic")
    with pytest.raises(ConfigError):
        fit_batch(x, y, model="ll7")
    with pytest.raises(FitError):
        fit_batch(x, y[:, :3])


def test_wald_intervals_cover_the_truth_about_95_percent():
    rng = np.random.default_rng(4)
    x, y, truth = _simulate(400, rng)
    truth[:, 1] = 0.1
    y = _ll4(x, *truth.T[:, :, None]) + rng.normal(0, 0.05, x.shape)
    fit = fit_batch(x, y)
    ok = fit.status == STATUS_CODES["converged"]
    cover = (fit.ci_lower[ok, 2] <= truth[ok, 2]) & (truth[ok, 2] <= fit.ci_upper[ok, 2])
    assert 0.88 < cover.mean() <= 1.0


def _numpy_cov(x, y, params):
    """s^2 (J'J)^-1 at params, Jacobian and RSS written out in numpy (independent of the kernel)."""
    top, bottom, e, h = params
    s = 1.0 / (1.0 + 10.0 ** (h * (x - e)))
    q = (top - bottom) * np.log(10.0) * s * (1.0 - s)
    jac = np.column_stack([s, 1.0 - s, q * h, -q * (x - e)])
    rss = np.sum((y - (bottom + (top - bottom) * s)) ** 2)
    return rss / (len(x) - 4) * np.linalg.inv(jac.T @ jac)


def test_covariance_is_the_full_symmetric_wald_matrix():
    rng = np.random.default_rng(12)
    x, y, _ = _simulate(40, rng)
    fit = fit_batch(x, y)
    ok = fit.status == STATUS_CODES["converged"]
    assert fit.cov.shape == (40, 4, 4) and ok.sum() >= 30
    np.testing.assert_array_equal(fit.cov, np.swapaxes(fit.cov, 1, 2))
    np.testing.assert_allclose(np.diagonal(fit.cov, axis1=1, axis2=2)[ok], fit.stderr[ok] ** 2, rtol=1e-12)
    for i in np.flatnonzero(ok)[:6]:
        ref = _numpy_cov(x[i], y[i], fit.params[i])
        scale = np.sqrt(np.outer(np.diag(ref), np.diag(ref)))
        assert np.all(np.abs(fit.cov[i] - ref) <= 1e-6 * scale), f"curve {i}"
    corr = fit.cov[ok, 2, 3] / (fit.stderr[ok, 2] * fit.stderr[ok, 3])
    assert np.all(np.abs(corr) < 1) and np.any(np.abs(corr) > 0.01), "off-diagonals are really kept"


def test_covariance_of_fixed_parameters_is_zero_and_missing_covariance_is_nan():
    rng = np.random.default_rng(13)
    x, y, _ = _simulate(10, rng)
    fit = fit_batch(x, y, model="ll3")
    ok = fit.status == STATUS_CODES["converged"]
    assert np.all(fit.cov[ok, 0, :] == 0) and np.all(fit.cov[ok, :, 0] == 0)
    assert np.isnan(fit.stderr[:, 0]).all() and np.all(fit.cov[ok, 1:, 1:].diagonal(axis1=1, axis2=2) > 0)
    y[0, 3:] = np.nan  # too few points
    y[1, 0] = np.inf  # non-finite
    x[2, :] = -7.0  # one dose: no covariance
    fit = fit_batch(x, y)
    assert np.isnan(fit.cov[:2]).all()
    assert np.isnan(fit.cov[2]).all() and np.isnan(fit.stderr[2]).all()
    hess = fit_batch(x[3:], y[3:], covariance="hessian")
    good = np.isfinite(hess.stderr).all(axis=1)
    np.testing.assert_allclose(hess.cov[good].diagonal(axis1=1, axis2=2), hess.stderr[good] ** 2, rtol=1e-12)
    np.testing.assert_allclose(hess.cov, np.swapaxes(hess.cov, 1, 2), rtol=1e-12)


def test_robust_loss_resists_an_outlier():
    x = DOSES[None, :]
    y = _ll4(x, 1.0, 0.1, -7.0, 1.5) + np.random.default_rng(5).normal(0, 0.01, x.shape)
    y[0, 2] = 3.0  # gross outlier at a low dose
    ls = fit_batch(x, y)
    for kind in ("soft_l1", "huber"):
        rb = fit_batch(x, y, robust=kind)
        assert abs(rb.params[0, 0] - 1.0) < abs(ls.params[0, 0] - 1.0)
        assert abs(rb.params[0, 0] - 1.0) < 0.05


def _scipy_fit(xi, yi):
    span = yi.max() - yi.min()
    lo = [yi.min() - span / 2, yi.min() - span / 2, xi.min() - 2, 0.1]
    hi = [yi.max() + span / 2, yi.max() + span / 2, xi.max() + 2, 10.0]
    p0 = np.clip([yi[:2].mean(), yi[-2:].mean(), xi.mean(), 1.0], lo, hi)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)
        return curve_fit(_ll4, xi, yi, p0=p0, bounds=(lo, hi), maxfev=5000)[0]


def test_parameter_recovery_no_worse_than_scipy_curve_fit():
    rng = np.random.default_rng(6)
    x, y, truth = _simulate(150, rng, sd=0.08)
    fit = fit_batch(x, y)
    ref = np.array([_scipy_fit(x[i], y[i]) for i in range(len(x))])
    ours = np.median(np.abs(fit.params[:, 2] - truth[:, 2]))
    theirs = np.median(np.abs(ref[:, 2] - truth[:, 2]))
    assert ours <= theirs * 1.01
    rss_ref = ((y - _ll4(x, *ref.T[:, :, None])) ** 2).sum(axis=1)
    assert np.median(fit.rss / rss_ref) <= 1.0 + 1e-6


def _responses(rng):
    rows = []
    conc = 10.0 ** np.linspace(-9, -5, 9)
    for line, (bottom, e) in {"A": (0.1, -7.0), "B": (1.0, -7.0)}.items():
        for rep in (1, 2):
            for c in conc:
                rv = _ll4(np.log10(c), 1.0, bottom, e, 1.0) + rng.normal(0, 0.02)
                rows.append({S.DATASET: "d", S.CELL_LINE: line, S.PERTURBATION_TYPE: "drug", S.PERTURBAGEN: "x",
                             S.READOUT: "atp", S.TIME_H: 72.0, S.CONCENTRATION: c, S.REPLICATE: rep,
                             S.RELATIVE_VIABILITY: rv, S.PERCENT_GROWTH: 100 * rv, S.GR: np.nan})  # fmt: skip
    rows.append({**rows[0], S.PERTURBATION_TYPE: "knockout", S.PERTURBAGEN: "TP53"})
    return pd.DataFrame(rows)


def test_fit_curves_builds_the_curves_table():
    responses = _responses(np.random.default_rng(7))
    table = fit_curves(responses, scale=S.RELATIVE_VIABILITY)
    assert list(table.columns) == curves_columns()
    assert len(table) == 2, "the knockout row is not a dose series"
    a, b = table.iloc[0], table.iloc[1]
    assert a[S.CELL_LINE] == "A" and a["status"] == "converged" and a["selected"] == "sigmoid"
    assert a["ec50"] == pytest.approx(1e-7, rel=0.2)
    assert a["ec50_lower"] < a["ec50"] < a["ec50_upper"]
    assert a["n_doses"] == 9 and a["n_replicates"] == 2 and a["n_points"] == 18
    assert a["conc_min"] == pytest.approx(1e-9) and a["conc_max"] == pytest.approx(1e-5)
    assert 0.0 < a["replicate_sd"] < 0.1
    assert a[S.DURATION_H] == 72.0 and a[S.SCALE] == S.RELATIVE_VIABILITY
    assert b["selected"] == "flat"
    assert a["cov_log10_ec50_log10_ec50"] == pytest.approx(a["log10_ec50_se"] ** 2, rel=1e-12)
    assert a["cov_top_hill"] == a["cov_hill_top"] and a["cov_bottom_log10_ec50"] != 0
    assert table[S.CURVE_ID].is_unique
    again = fit_curves(responses.sample(frac=1.0, random_state=1), scale=S.RELATIVE_VIABILITY)
    assert again[S.CURVE_ID].tolist() == table[S.CURVE_ID].tolist()
    pg = fit_curves(responses, scale=S.PERCENT_GROWTH)
    assert pg["top"].iloc[0] == pytest.approx(a["top"], rel=1e-6), "percent growth is fitted on PG / 100"
    gr = fit_curves(responses, scale=S.GR)
    assert set(gr["status"]) == {"too_few_points"} and gr["model"].iloc[0] == "gr_sigmoid"


_REPRO_SCRIPT = """
import sys
import numpy as np
from doseatlas.fit import fit_batch

rng = np.random.default_rng(7)
n = 3000
x = np.tile(np.linspace(-9.0, -5.0, 9), (n, 1))
top, bottom = rng.normal(1.0, 0.03, n), rng.uniform(0.0, 0.7, n)
x50, hill = rng.uniform(-8.5, -5.5, n), np.exp(rng.normal(0.0, 0.5, n))
y = bottom[:, None] + (top - bottom)[:, None] / (1 + 10 ** (hill[:, None] * (x - x50[:, None])))
y = y + rng.normal(0.0, 0.05, y.shape)
y[:300] = 1.0
y[:300, -1] = rng.uniform(0.05, 0.9, 300)  # steps at the top dose: borderline singular fits
fit = fit_batch(x, y, model="ll4")
np.savez(sys.argv[1], params=fit.params, rss=fit.rss, status=fit.status, cov=fit.cov)
"""


@pytest.mark.slow
def test_fresh_compile_and_cache_give_identical_results(tmp_path):
    """The same fits, bit for bit, whether numba compiles the kernels or loads them from its cache."""
    import os
    import subprocess
    import sys

    script = tmp_path / "fit.py"
    script.write_text(_REPRO_SCRIPT)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba_cache")}
    for name in ("fresh", "cached"):  # the first run compiles into the empty cache, the second loads it
        subprocess.run([sys.executable, str(script), str(tmp_path / f"{name}.npz")], check=True, env=env)
    fresh, cached = np.load(tmp_path / "fresh.npz"), np.load(tmp_path / "cached.npz")
    for key in ("params", "rss", "status", "cov"):
        np.testing.assert_array_equal(fresh[key], cached[key], err_msg=key)
