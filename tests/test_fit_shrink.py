"""The ``shrink`` fit policy: a value for every curve by empirical-Bayes pooling across cell lines.

Checked against curves drawn from a known population (the population is recovered, the pooled estimates are
closer to the truth than per-curve fits, flat curves are pulled to the population instead of refused), and
end to end against the simulator's truth at high noise.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest

from doseatlas import schemas as S
from doseatlas.errors import ConfigError
from doseatlas.fit import fit_batch, fit_curves
from doseatlas.fit.shrink import ShrinkOptions, shrink_batch
from doseatlas.pipeline import FitOptions, RunOptions, run_pipeline
from doseatlas.simulate.accuracy import join_truth, scoring_set

POPULATIONS = {0: (-6.0, 0.3), 1: (-7.5, 0.5)}  # group: (mean, sd) of log10 EC50
HILL_MEAN, HILL_SD = 0.0, 0.15  # ln hill


def _population_curves(*, n_per_group: int = 60, noise: float = 0.15, seed: int = 0):
    """ll4 curves (top 1, bottom 0.1) of two groups, 8 doses x 2 replicates, Gaussian noise."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(list(POPULATIONS), n_per_group)
    e = np.array([rng.normal(*POPULATIONS[g]) for g in groups])
    hill = np.exp(rng.normal(HILL_MEAN, HILL_SD, groups.size))
    x = np.tile(np.repeat(np.linspace(-9.5, -4.5, 8), 2), (groups.size, 1))
    y = 0.1 + 0.9 / (1.0 + 10.0 ** (hill[:, None] * (x - e[:, None])))
    return x, y + rng.normal(0.0, noise, x.shape), groups, e


@functools.cache
def _pooled(seed: int = 0):
    x, y, groups, e = _population_curves(seed=seed)
    fit = fit_batch(x, y, model="ll4")
    shrunk, pooled, population = shrink_batch(x, y, fit, groups=groups)
    return fit, shrunk, pooled, population, e, groups


def test_the_population_is_recovered():
    _, _, pooled, population, _, _ = _pooled()
    assert pooled.all()
    table = population.table()
    for g, (mean, sd) in POPULATIONS.items():
        assert table.loc[g, "mean_log10_ec50"] == pytest.approx(mean, abs=0.12)
        assert table.loc[g, "sd_log10_ec50"] == pytest.approx(sd, rel=0.4)
        assert table.loc[g, "mean_ln_hill"] == pytest.approx(HILL_MEAN, abs=0.2)
    assert (table["rounds"] >= 1).all()
    np.testing.assert_allclose(table["sigma"], 0.15, rtol=0.1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pooled_estimates_are_closer_to_the_truth_than_per_curve_fits(seed):
    fit, shrunk, _, _, e, _ = _pooled(seed)
    err_fit = fit.params[:, 2] - e
    err_shrunk = shrunk.params[:, 2] - e
    assert np.sqrt(np.mean(err_shrunk**2)) < 0.9 * np.sqrt(np.mean(err_fit**2))
    assert (shrunk.status_names() == "converged").all() and (shrunk.selected_names() == "sigmoid").all()


def test_posterior_intervals_cover_the_truth_at_about_their_level():
    _, shrunk, _, _, e, _ = _pooled()
    inside = (shrunk.ci_lower[:, 2] <= e) & (e <= shrunk.ci_upper[:, 2])
    assert 0.85 <= inside.mean() <= 1.0
    assert np.all(shrunk.stderr[:, 2] > 0) and np.isnan(shrunk.stderr[:, :2]).sum() == 0


def test_a_flat_curve_is_pulled_to_its_population_not_refused():
    x, y, groups, _ = _population_curves()
    y[0] = 1.0 + np.random.default_rng(5).normal(0.0, 0.15, x.shape[1])  # no effect at all
    fit = fit_batch(x, y, model="ll4")
    assert fit.selected_names()[0] == "flat"
    shrunk, _, population = shrink_batch(x, y, fit, groups=groups)
    mean = population.table().loc[0, "mean_log10_ec50"]
    assert shrunk.selected_names()[0] == "sigmoid" and shrunk.status_names()[0] == "converged"
    top, bottom, e, _ = shrunk.params[0]
    assert abs(e - mean) < 0.5  # the data say nothing about the midpoint: the population does
    assert abs(top - bottom) < 0.15  # ... and the curve stays flat where the data are


def test_groups_too_small_to_pool_keep_the_refusal_fit():
    x, y, groups, _ = _population_curves(n_per_group=4)
    fit = fit_batch(x, y, model="ll4")
    shrunk, pooled, population = shrink_batch(x, y, fit, groups=groups, options=ShrinkOptions(min_curves=5))
    assert not pooled.any()
    np.testing.assert_array_equal(shrunk.params, fit.params)
    assert population.table()["mean_log10_ec50"].isna().all()


def test_fixed_parameters_stay_fixed_under_ll2():
    x, y, groups, _ = _population_curves(n_per_group=20)
    fit = fit_batch(x, y, model="ll2")
    shrunk, pooled, _ = shrink_batch(x, y, fit, groups=groups)
    assert pooled.all()
    assert (shrunk.params[:, 0] == 1.0).all() and (shrunk.params[:, 1] == 0.0).all()
    assert (shrunk.cov[:, :2, :] == 0).all() and np.isnan(shrunk.stderr[:, :2]).all()


def _wells(*, cv: float, seed: int = 3):
    return scoring_set(seed=seed, cv=cv, n_cell_lines=15, n_drugs=8, name="noisy")


@functools.cache
def _noisy_runs():
    sim, wells = _wells(cv=0.25)
    runs = {
        p: run_pipeline(wells, options=RunOptions(fit=FitOptions(policy=p))) for p in ("refuse", "shrink")
    }
    return sim, runs


def test_shrink_gives_every_curve_a_value_and_says_which_policy_made_it():
    _, runs = _noisy_runs()
    refused = runs["refuse"].metrics
    shrunk = runs["shrink"].metrics
    fit_reasons = {S.RefusalReason.FLAT_FIT.value, S.RefusalReason.POOR_FIT.value}
    assert refused[S.REASON].isin(fit_reasons).sum() > 0  # the refusal policy does refuse these data
    assert shrunk[S.REASON].isin(fit_reasons).sum() == 0
    ic50 = shrunk[shrunk[S.METRIC] == "ic50"]
    assert ic50[S.STATUS].ne(S.MetricStatus.REFUSED).all()
    assert (ic50[S.FIT_POLICY] == "shrink").all()
    assert (refused[S.FIT_POLICY] == "refuse").all()
    curves = runs["shrink"].curves
    assert (curves[S.FIT_POLICY] == "shrink").all() and curves["pop_log10_ec50"].notna().all()


@pytest.mark.parametrize("metric", ["ic50", "gi50", "gr50"])
def test_shrink_agrees_with_the_truth_at_least_as_often_at_high_noise(metric):
    sim, runs = _noisy_runs()
    share = {}
    for policy, result in runs.items():
        joined = join_truth(result.metrics, sim.truth)
        block = joined[joined[S.METRIC] == metric]
        share[policy] = (block[S.STATUS] == block["status_true"]).mean()
    assert share["shrink"] >= share["refuse"]
    assert share["shrink"] >= 0.9


def test_shrink_does_not_hurt_at_low_noise():
    sim, wells = _wells(cv=0.05)
    result = run_pipeline(wells, options=RunOptions(fit=FitOptions(policy="shrink")))
    joined = join_truth(result.metrics, sim.truth)
    for metric in ("ic50", "gi50", "gr50"):
        block = joined[(joined[S.METRIC] == metric) & (joined["status_true"] == "estimated")]
        both = block[block[S.STATUS] == "estimated"]
        err = np.abs(np.log10(both[S.VALUE].astype(float)) - np.log10(both["value_true"].astype(float)))
        assert (err <= 0.1).sum() / len(block) >= 0.9, metric


@pytest.mark.parametrize(
    "options",
    [
        {"policy": "nlme"},
        {"policy": "shrink", "intervals": "bootstrap"},
        {"policy": "shrink", "min_curves": 1},
    ],
)
def test_bad_policy_options_are_one_config_error(options):
    with pytest.raises(ConfigError):
        FitOptions(**options)


def test_fit_curves_pools_across_cell_lines_only():
    _, wells = _wells(cv=0.1)
    from doseatlas.normalize import normalize
    from doseatlas.validate import validate_wells

    responses = normalize(validate_wells(wells).clean)
    curves = fit_curves(responses, scale=S.RELATIVE_VIABILITY, policy="shrink")
    per_drug = curves.groupby(S.PERTURBAGEN)["pop_log10_ec50"].nunique()
    assert (per_drug == 1).all()  # one population per drug, shared by its cell lines
    assert curves.groupby(S.PERTURBAGEN)["pop_n_curves"].first().eq(15).all()
    assert isinstance(curves, pd.DataFrame)
