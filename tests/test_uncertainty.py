"""Plate-control uncertainty in the metric intervals (issue 14; doseatlas.metrics.uncertainty)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from doseatlas import schemas as S
from doseatlas.metrics import uncertainty as U
from doseatlas.metrics.compute import crossing, pg_level, pg_to_gr_level

from conftest import script_module

RNG = np.random.default_rng(14)


def _gr(x, c, x0):
    return 2.0 ** (np.log(x / x0) / np.log(c / x0)) - 1.0


def _terms(n: int, *, var_c: float, var_0: float, r0: float) -> pd.DataFrame:
    return pd.DataFrame(
        {U.VAR_C: var_c, U.VAR_0: var_0, U.LOG_GROWTH: -np.log(r0), "_r0": r0}, index=range(n)
    )


@pytest.mark.parametrize("level", [-0.4, 0.0, 0.5, 0.8])
def test_gr_level_variance_matches_monte_carlo_of_the_controls(level):
    """Observed controls C', x0' move the GR level a fitted curve crosses; the delta method gives its variance."""
    c, x0, var_c, var_0, n = 8.0, 1.0, 0.02**2, 0.03**2, 200_000
    e_c, e_0 = RNG.normal(0, np.sqrt(var_c), n), RNG.normal(0, np.sqrt(var_0), n)
    a = np.log2(level + 1.0)
    x_level = np.exp((1 - a) * (np.log(x0) + e_0) + a * (np.log(c) + e_c))  # GR(x; C', x0') == level
    true_level = _gr(x_level, c, x0)
    got = U.level_variance(S.GR, np.array([level]), _terms(1, var_c=var_c, var_0=var_0, r0=x0 / c))
    assert got[0] == pytest.approx(np.var(true_level), rel=0.05)


@pytest.mark.parametrize("threshold", [0.5, 0.0, -0.5])
def test_percent_growth_level_variance_matches_monte_carlo(threshold):
    c, x0, var_c, var_0, n = 6.0, 1.0, 0.03**2, 0.04**2, 200_000
    e_c, e_0 = RNG.normal(0, np.sqrt(var_c), n), RNG.normal(0, np.sqrt(var_0), n)
    c_obs, x0_obs = c * np.exp(e_c), x0 * np.exp(e_0)
    x_level = (1 - threshold) * x0_obs + threshold * c_obs if threshold >= 0 else (1 + threshold) * x0_obs
    true_level = _gr(x_level, c, x0)
    r0 = np.array([x0 / c])
    level = pg_to_gr_level(threshold, r0)
    got = U.level_variance(
        S.PERCENT_GROWTH, level, _terms(1, var_c=var_c, var_0=var_0, r0=x0 / c), threshold=threshold
    )
    assert pg_level(threshold, r0)[0] * c == pytest.approx(np.median(x_level), rel=0.01)
    assert got[0] == pytest.approx(np.var(true_level), rel=0.06)


def test_relative_viability_level_variance_is_the_vehicle_share():
    got = U.level_variance(S.RELATIVE_VIABILITY, np.array([0.5]), _terms(1, var_c=1e-4, var_0=0.0, r0=0.2))
    assert got[0] == pytest.approx(0.25e-4)


def _sigmoid(*, top: float, bottom: float, log10_ec50: float, hill: float, n_points: int, se: float):
    """One fitted sigmoid curve tested from 1 nM to 10 µM, every parameter with standard error ``se``."""
    parameters = {"top": top, "bottom": bottom, "log10_ec50": log10_ec50, "hill": hill}
    return pd.DataFrame(
        {
            "conc_min": [1e-9],
            "conc_max": [1e-5],
            **{k: [v] for k, v in parameters.items()},
            "selected": ["sigmoid"],
            "flat_value": [np.nan],
            "n_points": [n_points],
            **{f"{k}_se": [se] for k in parameters},
        }
    )


def test_control_variance_widens_the_crossing_interval():
    curves = _sigmoid(top=1.0, bottom=0.1, log10_ec50=-7.0, hill=1.0, n_points=9, se=0.0)
    plain = crossing(curves, 0.5)
    wide = crossing(curves, 0.5, level_var=np.array([0.01**2]))
    # d log10 root / d level at 0.5 for this curve: (1/0.5 + 1/0.4) / ln10; t quantile with 9 - 4 df
    half = np.log10(wide[S.UPPER] / wide[S.LOWER]).iloc[0] / 2
    assert plain[S.UPPER].iloc[0] == pytest.approx(plain[S.LOWER].iloc[0])
    assert half / 0.01 == pytest.approx((1 / 0.5 + 1 / 0.4) / np.log(10) * stats.t.ppf(0.975, 5), rel=1e-6)


def _coverage_module():
    return script_module("interval_coverage")


def test_gi50_intervals_include_control_uncertainty_on_simulator_truth():
    """5 % noise, one simulated set: the share of gi50 intervals holding the truth (0.84 without the controls)."""
    table = _coverage_module().coverage_table(seeds=(0,), cvs=(0.05,), policies=("refuse",))
    gi50 = table.set_index("metric").loc["gi50"]
    assert gi50["n"] >= 80
    assert gi50["coverage"] >= 0.86


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["refuse", "shrink"])
def test_coverage_at_default_noise_across_seeds(policy):
    """3 seeds at 5 % noise (measured on seeds 0-1: ic50 0.94, lc50 0.91-0.94, gi50 0.88-0.89, tgi 0.87-0.88,
    gr50 0.80-0.82; main: gi50 0.83-0.84, gr50 0.82-0.86 on seed 0). The issue's 93 % target is not met for
    gi50, tgi and gr50 (docs/validation.md section 5): this guards what is reached."""
    table = _coverage_module().coverage_table(seeds=(0, 1, 2), cvs=(0.05,), policies=(policy,))
    coverage = table.set_index("metric")["coverage"]
    assert (coverage[["ic50", "lc50"]] >= 0.89).all(), coverage
    assert (coverage[["gi50", "tgi"]] >= 0.83).all(), coverage
    assert coverage["gr50"] >= 0.76, coverage


def test_low_noise_intervals_cover_the_model_misfit():
    """1 % noise, one simulated set: the 4-parameter curve's misfit to the population model dominates the error.
    Without the lack-of-fit factor (main) coverage was ic50 0.89, gi50 0.73, tgi 0.63, lc50 0.76, gr50 0.64."""
    table = _coverage_module().coverage_table(seeds=(0,), cvs=(0.01,), policies=("refuse",))
    table = table.set_index("metric")
    names = ["ic50", "gi50", "tgi", "lc50", "gr50"]
    assert (table.loc[names, "coverage"] >= 0.9).all(), table  # n = 49-95: binomial SE 0.02-0.03
    assert (table.loc[names, "mean_width"] < 0.1).all(), table  # log10 units: honest, not infinitely wide
    # lc50 near the lower plateau: one pooled s^2 (dominated by the noisy top doses) made it 0.111 wide
    assert table.loc["lc50", "mean_width"] < 0.08, table


def test_misfit_factor_is_one_without_lack_of_fit_and_grows_with_it():
    """Replicate wells about a true sigmoid: a factor within chance of 1; a bump the sigmoid cannot follow: large."""
    from doseatlas.metrics.uncertainty import MISFIT, misfit_factors

    doses = 1e-9 * 3.0 ** np.arange(9)
    x = np.log10(doses)
    truth = 0.1 + 0.9 / (1 + 10 ** (1.2 * (x + 7.0)))
    bump = truth + 0.1 * np.sin(3.0 * x)
    rng = np.random.default_rng(3)
    rows, curves = [], []
    for name, mean in (("clean", truth), ("misfit", bump)):
        y = mean[:, None] + rng.normal(0, 0.01, (9, 3))
        rows.append(
            pd.DataFrame({S.CONCENTRATION: np.repeat(doses, 3), S.RELATIVE_VIABILITY: y.ravel(), "c": name})
        )
        fitted = 0.1 + 0.9 / (1 + 10 ** (1.2 * (x + 7.0)))
        rss = float(((y - fitted[:, None]) ** 2).sum())
        curves.append({"c": name, "rss": rss, "model": "ll4", "selected": "sigmoid"})
    responses = pd.concat(rows, ignore_index=True)
    key = {k: "a" for k in S.CURVE_KEY if k not in (S.CELL_LINE, S.DURATION_H, S.PERTURBATION_TYPE)}
    responses = responses.assign(**key, **{S.PERTURBATION_TYPE: "drug", S.TIME_H: 72.0})
    responses[S.CELL_LINE] = responses.pop("c")
    table = pd.DataFrame(curves).assign(**key, **{S.DURATION_H: 72.0, S.SCALE: S.RELATIVE_VIABILITY})
    table[S.PERTURBATION_TYPE] = "drug"
    table[S.CELL_LINE] = table.pop("c")
    table[S.CURVE_ID] = table[S.CELL_LINE]
    got = misfit_factors(responses, table).set_index(S.CURVE_ID)[MISFIT]
    assert got["clean"] < 4.5  # F(5, 18) 95 % quantile 2.77 times (t(5) / t(23))^2 = 1.54
    # RSS almost all lack of fit: MS_LOF / MS_residual reaches its ceiling (n - p) / (k - p) = 23 / 5
    ceiling = 23 / 5 * (stats.t.ppf(0.975, 5) / stats.t.ppf(0.975, 23)) ** 2
    assert got["misfit"] == pytest.approx(ceiling, rel=0.05), got


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["refuse", "shrink"])
def test_coverage_across_noise_levels(policy):
    """1, 2, 4 and 8 % noise, 3 seeds (docs/validation.md section 5): every metric pooled over the noise levels
    (n = 350-780) within 0.92-0.988 (measured with the dose-axis misfit kernel and the converged noise model:
    tgi 0.960, lc50 0.985 (shrink), the rest 0.959-0.977; the share kernel before: tgi 0.926-0.931, lc50
    0.971-0.980), lc50 and einf not over-covering as the first intervals did (seeds 0-5: lc50 0.991-0.996, einf
    0.988), every cell >= 0.87."""
    table = _coverage_module().coverage_table(
        seeds=(0, 1, 2), cvs=(0.01, 0.02, 0.04, 0.08), policies=(policy,)
    )
    assert (table["coverage"] >= 0.87).all(), table
    table["covered"] = table["coverage"] * table["n"]
    pooled = table.groupby("metric")[["covered", "n"]].sum()
    coverage = pooled["covered"] / pooled["n"]
    assert coverage.between(0.92, 0.988).all(), coverage


# ------------------------------------------------------------------------------ noise model and local misfit
def _fitted_noise(levels: np.ndarray, *, n: int, multiplicative: float, additive: float, reps: int = 3):
    """The noise model fitted to replicate variances of ``n`` curves at ``levels`` (``reps`` wells per dose, seed
    5) drawn from ``sd^2 = multiplicative^2 level^2 + additive^2``: (fitted variance, df, true variance)."""
    rng = np.random.default_rng(5)
    k = len(levels)
    level = np.tile(levels, n)
    true = multiplicative**2 * level**2 + additive**2
    ss = true * rng.chisquare(reps - 1, n * k)
    got, df = U.noise_model(np.repeat(np.arange(n), k), np.full(n * k, float(reps)), ss, level, n)
    return got, df, true


def test_noise_model_recovers_multiplicative_and_additive_noise():
    """Replicate variances of 9 doses x 200 curves drawn from sd^2 = 0.04^2 level^2 + 0.005^2: the per-curve
    model recovers both components (mean and median over curves within 30 % at every dose: at the
    lowest dose the per-curve estimate rests on the few doses where the additive term dominates and is skewed;
    each curve has 18 pure-error degrees of freedom, 16 left for the model). The fit stopped after two passes
    gave the lowest dose 2.2 times its variance on average."""
    n, k = 200, 9
    got, df, true = _fitted_noise(np.linspace(0.05, 1.0, k), n=n, multiplicative=0.04, additive=0.005)
    assert df == pytest.approx(np.full(n, 16.0))
    ratio = (got / true).reshape(n, k)  # columns: low doses (additive) to high (multiplicative)
    assert np.median(ratio, axis=0) == pytest.approx(np.ones(k), abs=0.3), np.median(ratio, axis=0)
    assert ratio.mean(axis=0) == pytest.approx(np.ones(k), abs=0.3), ratio.mean(axis=0)


def test_noise_model_converges_where_the_noise_is_multiplicative():
    """Replicate variances of nearly pure multiplicative noise (sd = 0.11 level + 0.001, levels 0.01-1, as on
    the simulator's default set-up): the fit iterated to convergence gives the low doses their variance (median
    over curves within 25 %); two passes left the first, unweighted pass's additive term there (about 2x at
    level 0.01, 8x on simulated plates)."""
    n, k = 300, 9
    got, _, true = _fitted_noise(np.geomspace(0.01, 1.0, k), n=n, multiplicative=0.11, additive=0.001)
    ratio = np.median((got / true).reshape(n, k), axis=0)
    assert ratio == pytest.approx(np.ones(k), abs=0.25), ratio


def test_noise_model_gives_the_same_bits_with_the_curves_interleaved():
    """Each curve's doses summed in their own order, as ``np.bincount`` sums them: the doses of the curves
    interleaved (each curve's kept in order, as the pooled noise model passes them) give the same bits as the
    curves one after another; NaN for a curve without replicates, whose degrees of freedom are -2."""
    rng = np.random.default_rng(7)
    n, k = 50, 9
    level = rng.uniform(0.01, 1.0, n * k)
    count = rng.choice([1.0, 2.0, 3.0, 4.0], n * k)
    count[:k] = 1.0  # curve 0: no replicate
    ss = (0.1**2 * level**2 + 0.01**2) * rng.chisquare(2, n * k) * 10.0 ** rng.integers(-3, 3, n * k)
    curve = np.repeat(np.arange(n), k)
    grouped, df = U.noise_model(curve, count, ss, level, n)
    mixed = np.empty(n * k, dtype=np.int64)  # place in the interleaved order of each dose (curve-major)
    mixed[np.argsort(rng.permutation(curve), kind="stable")] = np.arange(n * k)
    got, df_mixed = U.noise_model(curve[mixed], count[mixed], ss[mixed], level[mixed], n)
    assert got.view(np.int64).tolist() == grouped[mixed].view(np.int64).tolist()
    assert df_mixed.view(np.int64).tolist() == df.view(np.int64).tolist()
    assert np.isnan(grouped[:k]).all() and np.isfinite(grouped[k:]).all() and df[0] == -2.0


def _multiplicative_noise_rows(
    n: int, *, bottom: float, cv: float, seed: int, reps: int = 3
) -> tuple[list, float]:
    """``n`` curves (``reps`` plates of 9 doses each) of an exact 4-parameter truth (no misfit) with
    multiplicative noise, and the true ic50 in molar."""
    from wells import plate

    rng = np.random.default_rng(seed)
    doses = 0.01 * 3.0 ** np.arange(9)  # uM
    x50, hill = -6.0, 1.5
    rv = bottom + (1 - bottom) / (1 + 10 ** (hill * (np.log10(doses * 1e-6) - x50)))
    rows = []
    for i in range(n):
        for rep in range(reps):
            treated = {
                float(d): 10.0 + 100.0 * r * (1 + cv * rng.normal()) for d, r in zip(doses, rv, strict=True)
            }
            vehicle = list(10.0 + 100.0 * (1 + cv * rng.normal(size=4)))
            rows += plate(treated=treated, vehicle=vehicle, plate_id=f"p{i}_{rep}", **{S.CELL_LINE: f"c{i}"})
    return rows, 10.0 ** (x50 + np.log10(0.5 / (0.5 - bottom)) / hill)


def test_crossing_near_the_lower_plateau_is_calibrated_under_multiplicative_noise():
    """Multiplicative noise is 3x smaller at viability 0.35 than at 1: one pooled s^2 (main) made the ic50 of
    curves levelling off at 0.3 cover 0.99; the noise model fitted to the replicates gives 0.95-0.97."""
    rows, truth = _multiplicative_noise_rows(150, bottom=0.3, cv=0.04, seed=0)
    ic50 = _run(rows)
    ic50 = ic50[(ic50[S.METRIC] == "ic50") & (ic50[S.STATUS] == "estimated")]
    assert len(ic50) == 150
    coverage = float(((ic50[S.LOWER] <= truth) & (truth <= ic50[S.UPPER])).mean())
    assert 0.93 <= coverage <= 0.975, coverage


# ------------------------------------------------------------------------------ where a crossing reads the misfit
def _misfit_of_crossing(*, hill: float, level: float, bump_at: int, bump: float = 0.05) -> float:
    """Misfit variance (log10 units) of the crossing of ``level`` by an exact 4-parameter curve (top 1, bottom 0,
    log10 EC50 -7, 9 doses half a decade apart) whose replicate wells (mean +- 0.01) lie on the curve except at
    the dose ``bump_at``, whose mean is off by ``bump``."""
    from doseatlas.metrics.compute import _root_grad

    x = -9.0 + 0.5 * np.arange(9)
    mean = 1.0 / (1.0 + 10.0 ** (hill * (x + 7.0)))
    mean[bump_at] += bump
    y = (mean[:, None] + np.array([-0.01, 0.0, 0.01])).ravel()
    params = {"top": 1.0, "bottom": 0.0, "log10_ec50": -7.0, "hill": hill, "n_points": 27.0}
    curves = pd.DataFrame([params]).assign(**{f"cov_{k}_{k}": 1.0 for k in U.PARAMS})
    terms = U.sandwich(np.zeros(27, dtype=np.int64), np.repeat(x, 3), y, curves, offset=np.zeros(1))
    grad = _root_grad(curves, np.array([(1.0 - level) / level]), level)
    misfit, _ = U._local_misfit(terms, curves, grad, terms.per_dose["n"])
    return float(misfit[0])


def test_a_crossing_reads_the_misfit_of_the_doses_about_it():
    """A shallow curve (hill 0.5: neighbouring doses 0.06-0.12 apart in share of the transition): a misfit three
    doses away from the crossing is not the curve's error at the crossing (main's kernel of width 0.25 in share
    read it with weight 0.5); at the crossing's own dose it is."""
    level_at_dose_4 = 1.0 / (1.0 + 10.0 ** (0.5 * (-7.0 + 7.0)))  # x = -7: the fourth dose, share 0.5
    assert _misfit_of_crossing(hill=0.5, level=level_at_dose_4, bump_at=7) == 0.0
    assert _misfit_of_crossing(hill=0.5, level=level_at_dose_4, bump_at=4) > 0.0


def test_a_steeper_doses_misfit_moves_the_crossing_along_the_dose_axis():
    """A crossing near the lower plateau (share 0.03, midway between two doses): the same misfit on the steeper
    neighbour (2.8 times the slope at the crossing) moves it by the misfit over that dose's slope, not over the
    flat slope at the crossing, i.e. by (slope at the crossing / slope at the dose)^2 = 0.13 of what it does on
    the flatter neighbour (main: about as much, 1.0)."""
    hill, x_level = 2.0, -6.25  # midway between the doses -6.5 (share 0.091) and -6.0 (share 0.0099)
    level = 1.0 / (1.0 + 10.0 ** (hill * (x_level + 7.0)))  # share 0.031
    doses = -9.0 + 0.5 * np.arange(9)
    steep, flat = 5, 6  # the steeper neighbour lies below the crossing in dose
    got = {at: _misfit_of_crossing(hill=hill, level=level, bump_at=at) for at in (steep, flat)}
    share = 1.0 / (1.0 + 10.0 ** (hill * (doses + 7.0)))
    ratio = (level * (1 - level)) / (share[steep] * (1 - share[steep]))
    assert got[flat] > 0.0
    assert got[steep] / got[flat] < 0.5
    assert got[steep] / got[flat] == pytest.approx(ratio**2, rel=0.5)


def test_one_well_per_dose_reads_the_noise_model_of_its_pool():
    """One well per dose (no replicate, no pure error): one residual s^2 per curve, dominated by the noisy top
    doses, made the ic50 of curves levelling off at 0.3 cover 0.983 (300 curves; 0.987 in each of four sets of
    150); the noise model fitted to the dose residuals of the curves of the same perturbagen, data set, readout
    and duration gives 0.967 (0.953-0.987 over those four sets)."""
    rows, truth = _multiplicative_noise_rows(300, bottom=0.3, cv=0.04, seed=1, reps=1)
    ic50 = _run(rows)
    ic50 = ic50[(ic50[S.METRIC] == "ic50") & (ic50[S.STATUS] == "estimated")]
    assert len(ic50) >= 290
    coverage = float(((ic50[S.LOWER] <= truth) & (truth <= ic50[S.UPPER])).mean())
    assert 0.93 <= coverage <= 0.978, coverage


# ------------------------------------------------------------------------------ censoring at the edges of the data
def _run(rows) -> pd.DataFrame:
    from doseatlas.metrics import compute_metrics
    from doseatlas.normalize import normalize
    from doseatlas.pipeline import FitOptions, fit_all_scales
    from doseatlas.validate import validate_wells

    from wells import frame

    responses = normalize(validate_wells(frame(rows)).clean)
    return compute_metrics(responses, fit_all_scales(responses, options=FitOptions()))


def test_flat_data_censor_the_ic50_instead_of_refusing_a_poor_fit():
    """Viability 0.88-1.05 at every dose, a small real drop (F-test picks the sigmoid) under noise: R^2 0.47 < 0.5
    refused ``poor_fit`` on main; every dose mean is above 0.5, so the data say "ic50 above the top dose"."""
    from wells import plate

    noise = [0.04, -0.04, 0.0, 0.05, -0.05, 0.02, -0.02, 0.03, -0.03]
    doses = [0.01 * 3**i for i in range(8)]
    rows = []
    for rep in range(3):
        level = [1.0 if i < 5 else 0.93 for i in range(8)]
        treated = {d: 100.0 * (level[i] + noise[(i * 3 + rep * 5) % 9]) + 10.0 for i, d in enumerate(doses)}
        rows += plate(treated=treated, vehicle=[109.0, 110.0, 111.0], plate_id=f"p{rep}")
    ic50 = _run(rows).set_index(S.METRIC).loc["ic50"]
    assert ic50[S.STATUS] == "right_censored", ic50[[S.STATUS, S.REASON]]
    assert ic50[S.LOWER] == pytest.approx(doses[-1] * 1e-6) and ic50[S.UPPER] == np.inf


def test_an_increasing_curve_never_reaches_its_ic50():
    """A rising curve (CCLE drugid_LBW242_T24: 49, 100, 101, ... %) is not left-censored below the first dose."""
    curves = _sigmoid(top=0.3, bottom=1.0, log10_ec50=-8.7, hill=3.0, n_points=8, se=0.1)
    got = crossing(curves, 0.5).iloc[0]
    assert got[S.STATUS] == "right_censored"
    assert got[S.LOWER] == pytest.approx(1e-5) and got[S.UPPER] == np.inf


@pytest.mark.external
def test_ccle_lbw242_t24_is_not_reached():
    import os

    from doseatlas.ingest import read_any
    from doseatlas.metrics import compute_metrics
    from doseatlas.normalize import from_response_table
    from doseatlas.pipeline import FitOptions, fit_all_scales
    from doseatlas.validate import validate_responses

    path = Path(__file__).resolve().parents[1] / "../shared/data/external/pharmacogx_small_psets/CCLEsmall"
    if not path.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{path} missing under CI")
        pytest.skip(f"{path} not present")
    raw = read_any(path / "raw_long.csv", format="pharmacogx")
    raw = raw[raw[S.SERIES].astype(str).eq("drugid_LBW242_T24")]
    responses = from_response_table(validate_responses(raw).clean)
    metrics = compute_metrics(responses, fit_all_scales(responses, options=FitOptions()))
    ic50 = metrics.set_index(S.METRIC).loc["ic50"]
    assert ic50[S.STATUS] == "right_censored"  # main: left_censored below 0.0025 µM from one low first point


# ------------------------------------------------------------------------------ plateau metrics beyond the data
def _sigmoid_curve(**params) -> pd.DataFrame:
    base = {
        "conc_min": 1e-9,
        "conc_max": 1e-6,
        "top": 1.0,
        "bottom": 0.2,
        "log10_ec50": -6.5,
        "hill": 1.0,
        "selected": "sigmoid",
        "flat_value": np.nan,
        "n_points": 27,
        "n_doses": 4,
        "bottom_lower": 0.1,
        "bottom_upper": 0.3,
    }
    return pd.DataFrame([{**base, **params}])


@pytest.mark.parametrize(
    ("name", "bottom", "x50", "status", "bound"),
    [
        ("einf", 0.2, -6.5, "left_censored", "upper"),  # still falling at the top dose: at most f(x1)
        ("einf", 0.2, -8.0, "estimated", None),  # 99 % of the transition done by the top dose
        ("grinf", -0.5, -6.5, "refused", None),  # a GR plateau may lie below 0: no [0, bound] label
        ("einf", 1.5, -6.5, "right_censored", "lower"),  # rising curve: at least f(x1)
    ],
)
def test_plateau_beyond_the_tested_range_is_censored(name, bottom, x50, status, bound):
    from doseatlas.metrics.compute import _parameter, sigmoid
    from doseatlas.metrics.registry import METRICS

    metric = next(m for m in METRICS if m.name == name)
    curves = _sigmoid_curve(
        bottom=bottom, log10_ec50=x50, bottom_lower=bottom - 0.1, bottom_upper=bottom + 0.1
    )
    got = _parameter(metric, curves).iloc[0]
    assert got[S.STATUS] == status
    f1 = sigmoid(-6.0, 1.0, bottom, x50, 1.0)
    if bound == "upper":
        assert (got[S.LOWER], got[S.UPPER]) == pytest.approx((0.0, f1))
    elif bound == "lower":
        assert got[S.LOWER] == pytest.approx(f1) and got[S.UPPER] == np.inf
    elif status == "refused":
        assert got[S.REASON] == "plateau_not_reached"
    else:
        assert got[S.VALUE] == pytest.approx(bottom)


def test_plateaus_on_simulator_truth_are_data_supported():
    """1 % noise: estimated einf / grinf lie close to the truth (main: median error of grinf 0.17 on curves not
    reaching their plateau, e.g. truth 0.79 reported -1.00 [-122, 120]); every einf bound holds the truth."""
    from doseatlas.simulate.accuracy import join_truth, scoring_set

    sim, wells = scoring_set(seed=0, cv=0.01, n_cell_lines=10, n_drugs=10)
    joined = join_truth(_coverage_module().run(wells, "refuse"), sim.truth)
    plateau = joined[joined[S.METRIC].isin(["einf", "grinf"])]
    est = plateau[plateau[S.STATUS] == "estimated"]
    err = (est[S.VALUE] - est["value_true"]).abs()
    assert err.max() < 0.3, est.loc[err.idxmax()]
    assert err.quantile(0.9) < 0.1
    left = plateau[plateau[S.STATUS] == "left_censored"]
    assert len(left) and (left["value_true"] <= left[S.UPPER]).all()


# ------------------------------------------------------------------------------ crossings near a plateau
def _near_curve(bottom: float, mean_min: float) -> pd.DataFrame:
    names = ("top", "bottom", "log10_ec50", "hill")
    cov = {f"cov_{a}_{b}": 0.0 for a in names for b in names}
    cov.update({"cov_bottom_bottom": 0.03**2, "cov_log10_ec50_log10_ec50": 0.05**2, "cov_hill_hill": 0.1**2})
    return pd.DataFrame(
        [
            {
                "conc_min": 1e-9,
                "conc_max": 1e-5,
                "top": 1.0,
                "bottom": bottom,
                "log10_ec50": -7.0,
                "hill": 1.0,
                "selected": "sigmoid",
                "flat_value": np.nan,
                "n_points": 27,
                "_mean_min": mean_min,
                "replicate_sd": 0.01,
                "n_replicates": 3,
                **cov,
            }
        ]
    )


def test_a_crossing_near_the_plateau_is_open_ended():
    """Plateau 0.47 +- 0.03 against the level 0.5, no dose mean below 0.5: a plateau 0.03 higher never crosses
    (main: a closed interval around a value the curve reaches only by 0.03)."""
    from doseatlas.metrics.compute import _threshold
    from doseatlas.metrics.registry import METRICS

    ic50 = next(m for m in METRICS if m.name == "ic50")
    got = _threshold(ic50, _near_curve(0.47, 0.51)).iloc[0]
    assert got[S.STATUS] == "estimated" and np.isfinite(got[S.VALUE])
    assert got[S.UPPER] == np.inf and got[S.LOWER] < got[S.VALUE]
    passed = _threshold(ic50, _near_curve(0.47, 0.46)).iloc[0]  # the dose means pass 0.5: the data decide
    assert passed[S.STATUS] == "estimated" and np.isfinite(passed[S.UPPER])
    far = _threshold(ic50, _near_curve(0.1, 0.1)).iloc[0]  # a plateau far below the level: a closed interval
    assert far[S.STATUS] == "estimated" and np.isfinite(far[S.UPPER])


def test_a_level_the_data_reach_but_the_fitted_plateau_misses_is_at_most_the_top_dose():
    """Fitted plateau 0.52, the dose means reach 0.476 (issue: truth 2.07 µM reported > 10 µM)."""
    from doseatlas.metrics.compute import _threshold
    from doseatlas.metrics.registry import METRICS

    ic50 = next(m for m in METRICS if m.name == "ic50")
    got = _threshold(ic50, _near_curve(0.52, 0.476)).iloc[0]
    assert got[S.STATUS] == "left_censored"
    assert (got[S.LOWER], got[S.UPPER]) == (0.0, pytest.approx(1e-5))
    kept = _threshold(ic50, _near_curve(0.52, 0.55)).iloc[0]  # the data stay above: not reached
    assert kept[S.STATUS] == "right_censored"
