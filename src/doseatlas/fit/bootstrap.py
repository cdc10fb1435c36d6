"""Residual-bootstrap intervals for the batched fits (an option beside the Wald intervals).

For each curve, residuals of the fitted sigmoid (inflated by sqrt(n / (n - p))) are resampled with
replacement within the curve and added back to the fitted values; all ``n_curves x n_boot`` resampled curves are refitted in one batched
call, and the intervals are percentiles of the refitted parameters. The cost is ``n_boot`` times
that of the original fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from doseatlas.errors import ConfigError
from doseatlas.fit.engine import BatchFit, fit_batch
from doseatlas.fit.models import get_model, predict


@dataclass(frozen=True)
class BootstrapIntervals:
    """Percentile intervals and bootstrap standard errors, (n_curves, 4) in PARAMS order."""

    lower: np.ndarray
    upper: np.ndarray
    stderr: np.ndarray
    n_boot: int


def _resampled(
    x: np.ndarray, y: np.ndarray, fitted: np.ndarray, *, n_boot: int, n_free: int, rng
) -> np.ndarray:
    """(n * n_boot, m) responses: fitted values plus residuals drawn within each curve.

    Residuals are inflated by sqrt(n / (n - p)) so that their spread estimates the error spread
    (raw least-squares residuals are too small by that factor, which makes intervals too narrow).
    """
    valid = np.isfinite(x) | np.isneginf(x)
    valid &= np.isfinite(y)
    counts = valid.sum(axis=1)
    inflate = np.sqrt(counts / np.maximum(counts - n_free, 1))
    resid = np.where(valid, (y - fitted) * inflate[:, None], np.nan)
    order = np.argsort(~valid, axis=1, kind="stable")  # valid positions first
    packed = np.take_along_axis(resid, order, axis=1)
    n, m = y.shape
    draw = (rng.random((n, n_boot, m)) * np.maximum(counts, 1)[:, None, None]).astype(np.int64)
    picked = np.take_along_axis(np.repeat(packed[:, None, :], n_boot, axis=1), draw, axis=2)
    out = fitted[:, None, :] + picked
    out = np.where(valid[:, None, :], out, np.nan)
    return out.reshape(n * n_boot, m)


def bootstrap_intervals(
    x: np.ndarray,
    y: np.ndarray,
    fit: BatchFit,
    *,
    n_boot: int = 200,
    seed: int = 0,
    confidence: float = 0.95,
    method: str = "percentile",
    **options,
) -> BootstrapIntervals:
    """Residual-bootstrap intervals of the parameters of ``fit`` (made from ``x``, ``y``).

    ``method="percentile"`` takes percentiles of the refitted parameters (asymmetric where the
    likelihood is); ``"normal"`` is the estimate +- the t quantile times the bootstrap standard error.
    Measured on 400 simulated 9-dose x 2-replicate curves at 5% noise, nominal 95%: percentile covers
    about 90% (the known small-sample undercoverage of percentile intervals), normal and Wald about 94%.
    ``options`` go to :func:`fit_batch` for the refits (use the same model and bounds as the original fit).
    Curves without parameters get NaN.
    """
    if method not in ("percentile", "normal"):
        raise ConfigError(f"method must be 'percentile' or 'normal', not {method!r}")
    if n_boot < 20:
        raise ConfigError(f"n_boot must be at least 20 for percentile intervals, got {n_boot}")
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    fitted = predict(fit.params, x)
    y_star = _resampled(x, y, fitted, n_boot=n_boot, n_free=get_model(fit.model).n_free, rng=rng)
    x_star = np.repeat(x, n_boot, axis=0)
    refit = fit_batch(x_star, y_star, model=fit.model, **options)
    params = refit.params.reshape(len(fit), n_boot, -1)
    tail = 100 * (1 - confidence) / 2
    with np.errstate(invalid="ignore"):
        lower, upper = np.nanpercentile(params, [tail, 100 - tail], axis=1)
        stderr = np.nanstd(params, axis=1, ddof=1)
    if method == "normal":
        half = stats.t.ppf(0.5 + confidence / 2, np.maximum(fit.n_points - get_model(fit.model).n_free, 1))
        lower, upper = fit.params - half[:, None] * stderr, fit.params + half[:, None] * stderr
    missing = ~np.isfinite(fit.params)
    fixed = np.nanstd(params, axis=1) == 0
    for arr in (lower, upper, stderr):
        arr[missing | fixed] = np.nan
    return BootstrapIntervals(lower=lower, upper=upper, stderr=stderr, n_boot=n_boot)
