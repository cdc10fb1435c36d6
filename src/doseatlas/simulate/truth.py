"""Exact metrics of the noise-free expected readout signal (the truth a perfect pipeline would recover).

Threshold metrics are the first crossing of the threshold on a fine log-concentration grid over the
tested range, refined by :func:`scipy.optimize.brentq` on log10 c (never a fit).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy.optimize import brentq

from doseatlas import schemas as S
from doseatlas.simulate.model import Curve, from_signal
from doseatlas.simulate.pool import DatasetPlan

Status = S.MetricStatus

#: metric -> (response scale, threshold)
THRESHOLD_METRICS: dict[str, tuple[str, float]] = {
    "ic50": (S.RELATIVE_VIABILITY, 0.5),
    "gi50": (S.PERCENT_GROWTH, 50.0),
    "tgi": (S.PERCENT_GROWTH, 0.0),
    "lc50": (S.PERCENT_GROWTH, -50.0),
    "gr50": (S.GR, 0.5),
}
#: metric -> response scale evaluated at infinite concentration (drugs)
LIMIT_METRICS: dict[str, str] = {"grinf": S.GR, "einf": S.RELATIVE_VIABILITY}
#: metric -> response scale of the perturbed population (genetic perturbations)
EFFECT_METRICS: dict[str, str] = {"rv_effect": S.RELATIVE_VIABILITY, "gr_effect": S.GR}

TRUTH_COLUMNS: tuple[str, ...] = (
    *S.CURVE_KEY,
    S.METRIC,
    S.VALUE,
    S.STATUS,
    S.LOWER,
    S.UPPER,
    "conc_min",
    "conc_max",
)
GRID_POINTS = 257


def _scalar_response(scale: str, x: float, control: float, time_zero: float) -> float:
    """:func:`doseatlas.simulate.model.from_signal` for one value, with ``math``."""
    if scale == S.RELATIVE_VIABILITY:
        return x / control
    if scale == S.PERCENT_GROWTH:
        return 100.0 * (x - time_zero) / ((control - time_zero) if x >= time_zero else time_zero)
    return 2.0 ** (math.log2(x / time_zero) / math.log2(control / time_zero)) - 1.0


def crossing(
    values: np.ndarray,
    grid: np.ndarray,
    response: Callable[[float], float],
    threshold: float,
    *,
    conc_min: float,
    conc_max: float,
) -> tuple[str, float, float, float]:
    """First concentration of the tested range where the response falls to ``threshold``.

    ``values`` are the responses on ``grid`` (log10 molar, ascending, from conc_min to conc_max);
    ``response(log10 c)`` evaluates one point. Returns ``(status, value, lower, upper)``:
    ``estimated`` with the root (brentq on log10 c between the grid points that bracket the first
    crossing), ``left_censored`` (NaN, 0, conc_min) when already below the threshold at conc_min, or
    ``right_censored`` (NaN, conc_max, inf) when it never gets there.
    """
    delta = values - threshold
    if delta[0] < 0:
        return Status.LEFT_CENSORED.value, np.nan, 0.0, conc_min
    below = np.flatnonzero(delta <= 0)
    if below.size == 0:
        return Status.RIGHT_CENSORED.value, np.nan, conc_max, np.inf
    i = int(below[0])
    if i == 0:
        return Status.ESTIMATED.value, conc_min, conc_min, conc_min
    root = brentq(
        lambda x: response(x) - threshold,
        grid[i - 1],
        grid[i],
        xtol=1e-14,
        rtol=4 * np.finfo(float).eps,
        maxiter=200,
    )
    value = float(min(max(10.0**root, conc_min), conc_max))
    return Status.ESTIMATED.value, value, value, value


def drug_truth(curve: Curve, *, time_h: float, conc_min: float, conc_max: float) -> list[dict]:
    """Threshold and limit metrics of one drug curve at one duration."""
    grid = np.linspace(np.log10(conc_min), np.log10(conc_max), GRID_POINTS)
    signal = curve.signal(10.0**grid, time_h)
    control, t0 = curve.signal_scalar(0.0, time_h), curve.time_zero()
    rows = []
    for metric, (scale, threshold) in THRESHOLD_METRICS.items():
        values = from_signal(scale, signal, control=control, time_zero=t0)

        def one(x: float, scale: str = scale) -> float:
            return _scalar_response(scale, curve.signal_scalar(10.0**x, time_h), control, t0)

        status, value, lower, upper = crossing(
            values, grid, one, threshold, conc_min=conc_min, conc_max=conc_max
        )
        rows.append({S.METRIC: metric, S.VALUE: value, S.STATUS: status, S.LOWER: lower, S.UPPER: upper})
    at_inf = curve.signal_scalar(np.inf, time_h)
    for metric, scale in LIMIT_METRICS.items():
        value = _scalar_response(scale, at_inf, control, t0)
        rows.append(
            {
                S.METRIC: metric,
                S.VALUE: value,
                S.STATUS: Status.ESTIMATED.value,
                S.LOWER: value,
                S.UPPER: value,
            }
        )
    for row in rows:
        row.update(conc_min=conc_min, conc_max=conc_max)
    return rows


def genetic_truth(curve: Curve, *, time_h: float) -> list[dict]:
    """Effect of a genetic perturbation on RV and GR at one duration (no concentration metrics)."""
    rows = []
    for metric, scale in EFFECT_METRICS.items():
        value = float(curve.response(scale, np.inf, time_h))
        rows.append(
            {
                S.METRIC: metric,
                S.VALUE: value,
                S.STATUS: Status.ESTIMATED.value,
                S.LOWER: value,
                S.UPPER: value,
                "conc_min": np.nan,
                "conc_max": np.nan,
            }
        )
    return rows


def dataset_truth(plan: DatasetPlan) -> pd.DataFrame:
    """Truth table of one data set: every curve key x metric."""
    ds = plan.config
    doses = np.asarray(ds.dose_series(), dtype=float) * plan.factor
    conc_min, conc_max = float(doses.min()), float(doses.max())
    rows = []
    for (line, ptype, name), curve in plan.curves.items():
        for time_h in ds.read_times_h:
            if ptype == S.PerturbationType.DRUG:
                metrics = drug_truth(curve, time_h=time_h, conc_min=conc_min, conc_max=conc_max)
            else:
                metrics = genetic_truth(curve, time_h=time_h)
            key = {
                S.DATASET: ds.name,
                S.CELL_LINE: line,
                S.PERTURBATION_TYPE: ptype,
                S.PERTURBAGEN: name,
                S.READOUT: str(ds.readout),
                S.DURATION_H: float(time_h),
            }
            rows.extend({**key, **m} for m in metrics)
    return pd.DataFrame(rows, columns=list(TRUTH_COLUMNS))
