"""Exact metrics of the noise-free expected readout signal (the truth a perfect pipeline would recover).

Threshold metrics are the first crossing of the threshold on a fine log-concentration grid over the
tested range, refined by bisection on log10 c to 1e-14 (never a fit). All drug curves of a data set and read
time are computed at once: the model broadcasts over stacked curve parameters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pandas as pd

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


#: numeric fields of a curve (everything but its readout model)
_FIELDS = tuple(f.name for f in dataclasses.fields(Curve) if f.name != "readout")


def _stack(curves: list[Curve]) -> Curve:
    """One :class:`Curve` whose numeric fields are column arrays (n, 1): the model broadcasts over them."""
    columns = {n: np.array([getattr(c, n) for c in curves], dtype=float)[:, None] for n in _FIELDS}
    return Curve(readout=curves[0].readout, **columns)


def _take(stacked: Curve, rows: np.ndarray) -> Curve:
    """The curves ``rows`` of a stacked curve."""
    return Curve(readout=stacked.readout, **{n: getattr(stacked, n)[rows] for n in _FIELDS})


def _bisect(response: Callable[[np.ndarray], np.ndarray], lo: np.ndarray, hi: np.ndarray, threshold: float):
    """Roots of ``response(x) = threshold`` in brackets with ``response(lo) > threshold >= response(hi)``
    (vectorized bisection on log10 c until every bracket is below 1e-14 + 4 eps |x| wide)."""
    lo, hi = lo.copy(), hi.copy()
    for _ in range(200):
        wide = hi - lo > 1e-14 + 4.0 * np.finfo(float).eps * np.abs(hi)
        if not wide.any():
            break
        mid = 0.5 * (lo + hi)
        above = response(mid) > threshold
        lo = np.where(wide & above, mid, lo)
        hi = np.where(wide & ~above, mid, hi)
    return 0.5 * (lo + hi)


def crossings(
    values: np.ndarray,
    grid: np.ndarray,
    response_of: Callable[[np.ndarray], Callable[[np.ndarray], np.ndarray]],
    threshold: float,
    *,
    conc_min: float,
    conc_max: float,
) -> pd.DataFrame:
    """First concentration of the tested range where each curve's response falls to ``threshold``.

    ``values`` (n, m) are the responses on ``grid`` (log10 molar, ascending, from conc_min to conc_max);
    ``response_of(rows)`` is the function of log10 c that evaluates curves ``rows`` at one point each. Per curve: ``estimated`` with the
    root (bisection on log10 c between the grid points that bracket the first crossing), ``left_censored``
    (NaN, 0, conc_min) when already below the threshold at conc_min, or ``right_censored`` (NaN, conc_max,
    inf) when it never gets there.
    """
    below = values - threshold <= 0
    left = values[:, 0] - threshold < 0
    right = ~below.any(axis=1)
    first = np.argmax(below, axis=1)
    value = np.where(first == 0, conc_min, np.nan)
    rows = np.flatnonzero(~left & ~right & (first > 0))
    if rows.size:
        i = first[rows]
        root = _bisect(response_of(rows), grid[i - 1], grid[i], threshold)
        value[rows] = np.clip(10.0**root, conc_min, conc_max)
    status = np.where(left, Status.LEFT_CENSORED.value, np.where(right, Status.RIGHT_CENSORED.value,
                                                                 Status.ESTIMATED.value))  # fmt: skip
    value = np.where(left | right, np.nan, value)
    lower = np.where(left, 0.0, np.where(right, conc_max, value))
    upper = np.where(left, conc_min, np.where(right, np.inf, value))
    return pd.DataFrame({S.STATUS: status, S.VALUE: value, S.LOWER: lower, S.UPPER: upper})


def drugs_truth(curves: list[Curve], *, time_h: float, conc_min: float, conc_max: float) -> pd.DataFrame:
    """Threshold and limit metrics of drug curves (one readout) at one duration: one row per curve x metric,
    curve-major, metrics in the order of THRESHOLD_METRICS then LIMIT_METRICS."""
    stacked = _stack(curves)
    grid = np.linspace(np.log10(conc_min), np.log10(conc_max), GRID_POINTS)
    signal = stacked.signal(10.0 ** grid[None, :], time_h)
    control = stacked.signal(np.zeros((len(curves), 1)), time_h)
    t0 = stacked.readout.signal(stacked.n0, np.zeros_like(stacked.n0))
    frames = []
    for metric, (scale, threshold) in THRESHOLD_METRICS.items():
        values = from_signal(scale, signal, control=control, time_zero=t0)

        def response_of(rows: np.ndarray, scale: str = scale) -> Callable[[np.ndarray], np.ndarray]:
            sub, c, z = _take(stacked, rows), control[rows], t0[rows]  # once per bisection, not per step
            return lambda x: from_signal(
                scale, sub.signal(10.0 ** x[:, None], time_h), control=c, time_zero=z
            )[:, 0]

        got = crossings(values, grid, response_of, threshold, conc_min=conc_min, conc_max=conc_max)
        frames.append(got.assign(**{S.METRIC: metric}))
    at_inf = stacked.signal(np.full((len(curves), 1), np.inf), time_h)
    for metric, scale in LIMIT_METRICS.items():
        value = from_signal(scale, at_inf, control=control, time_zero=t0)[:, 0]
        frames.append(pd.DataFrame({S.STATUS: Status.ESTIMATED.value, S.VALUE: value, S.LOWER: value,
                                    S.UPPER: value, S.METRIC: metric}))  # fmt: skip
    n_metrics = len(frames)
    table = pd.concat(frames, ignore_index=True)
    order = np.arange(len(table)).reshape(n_metrics, len(curves)).T.ravel()  # curve-major
    table = table.iloc[order].reset_index(drop=True)
    table["curve"] = np.repeat(np.arange(len(curves)), n_metrics)
    return table.assign(conc_min=conc_min, conc_max=conc_max)


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
    """Truth table of one data set: every curve key x metric (curves in plan order, then read times)."""
    ds = plan.config
    doses = np.asarray(ds.dose_series(), dtype=float) * plan.factor
    conc_min, conc_max = float(doses.min()), float(doses.max())
    keys = list(plan.curves)
    drugs = [i for i, (_, ptype, _) in enumerate(keys) if ptype == S.PerturbationType.DRUG]
    frames = []
    for t, time_h in enumerate(ds.read_times_h):
        if drugs:
            part = drugs_truth([plan.curves[keys[i]] for i in drugs], time_h=time_h, conc_min=conc_min,
                               conc_max=conc_max)  # fmt: skip
            frames.append(part.assign(curve=np.asarray(drugs)[part["curve"]], time=t))
        for i, key in enumerate(keys):
            if key[1] != S.PerturbationType.DRUG:
                frames.append(
                    pd.DataFrame(genetic_truth(plan.curves[key], time_h=time_h)).assign(curve=i, time=t)
                )
    if not frames:
        return pd.DataFrame(columns=list(TRUTH_COLUMNS))
    table = pd.concat(frames, ignore_index=True).sort_values(["curve", "time"], kind="stable")
    line, ptype, name = (np.array([k[j] for k in keys], dtype=object) for j in range(3))
    curve = table["curve"].to_numpy()
    table[S.DATASET] = ds.name
    table[S.CELL_LINE], table[S.PERTURBATION_TYPE], table[S.PERTURBAGEN] = (
        line[curve],
        ptype[curve],
        name[curve],
    )
    table[S.READOUT] = str(ds.readout)
    table[S.DURATION_H] = np.asarray(ds.read_times_h, dtype=float)[table["time"].to_numpy()]
    table[S.SERIES] = ""  # a simulated plate series is one dose series
    density = {c.name: float(c.seeding_density) * ds.seeding_scale for c in plan.lines}  # as on the wells
    table[S.SEEDING_DENSITY] = table[S.CELL_LINE].map(density).astype(float)
    return table[list(TRUTH_COLUMNS)].reset_index(drop=True)
