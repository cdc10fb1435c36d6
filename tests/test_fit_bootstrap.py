"""Residual-bootstrap intervals: reproducible, centred on the fit, honest coverage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from doseatlas import schemas as S
from doseatlas.errors import ConfigError
from doseatlas.fit import fit_batch, fit_curves
from doseatlas.fit.bootstrap import bootstrap_intervals

TRUE = np.array([1.0, 0.1, -7.0, 1.2])


def _curves(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = np.tile(np.repeat(np.linspace(-9, -5, 9), 2), (n, 1))
    y = 0.1 + 0.9 / (1 + 10 ** (1.2 * (x + 7))) + rng.normal(0, 0.05, x.shape)
    return x, y


def test_bootstrap_is_reproducible_and_brackets_the_estimate():
    x, y = _curves(50)
    fit = fit_batch(x, y)
    a = bootstrap_intervals(x, y, fit, n_boot=100, seed=3)
    b = bootstrap_intervals(x, y, fit, n_boot=100, seed=3)
    np.testing.assert_array_equal(a.lower, b.lower)
    inside = (a.lower <= fit.params) & (fit.params <= a.upper)
    assert inside.mean() > 0.95


@pytest.mark.parametrize(("method", "minimum"), [("normal", 0.90), ("percentile", 0.85)])
def test_bootstrap_coverage_of_the_true_parameters(method, minimum):
    x, y = _curves(300, seed=1)
    fit = fit_batch(x, y)
    boot = bootstrap_intervals(x, y, fit, n_boot=200, method=method)
    coverage = ((boot.lower <= TRUE) & (TRUE <= boot.upper)).mean(axis=0)
    assert (coverage >= minimum).all(), coverage
    assert (coverage <= 0.99).all(), coverage  # not trivially wide


def test_fit_curves_bootstrap_option_changes_intervals_not_estimates():
    x, y = _curves(4)
    rows = [
        {
            S.DATASET: "d",
            S.CELL_LINE: f"c{i}",
            S.PERTURBATION_TYPE: "drug",
            S.PERTURBAGEN: "p",
            S.READOUT: "atp",
            S.TIME_H: 72.0,
            S.CONCENTRATION: 10.0**xv,
            S.RELATIVE_VIABILITY: yv,
        }
        for i in range(4)
        for xv, yv in zip(x[i], y[i], strict=True)
    ]
    table = pd.DataFrame(rows)
    wald = fit_curves(table, scale=S.RELATIVE_VIABILITY)
    boot = fit_curves(table, scale=S.RELATIVE_VIABILITY, intervals="bootstrap", bootstrap={"n_boot": 50})
    np.testing.assert_allclose(wald["log10_ec50"], boot["log10_ec50"])
    assert not np.allclose(wald["log10_ec50_lower"], boot["log10_ec50_lower"])
    with pytest.raises(ConfigError):
        fit_curves(table, scale=S.RELATIVE_VIABILITY, intervals="jackknife")
