"""Metric computation: the registry applied to fitted curves and observed responses.

Every (curve key, metric) gets exactly one row with a status: ``estimated`` (a value inside
the tested range, with a 95% interval), ``right_censored`` / ``left_censored`` (the bound
that the data support) or ``refused`` (a reason code). Nothing is clipped or extrapolated.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from scipy import stats

from doseatlas import schemas as S
from doseatlas._codes import key_codes, sorted_key_codes
from doseatlas._stats import group_summary, summary_by_code, t975
from doseatlas.errors import ConfigError, DoseatlasError
from doseatlas.metrics import uncertainty as U
from doseatlas.metrics._doses import DoseRuns, renumbered
from doseatlas.metrics._join import joined_by_position
from doseatlas.metrics.plateau import censor_unreached, near_plateau
from doseatlas.metrics.registry import METRICS, Metric

Why = S.RefusalReason
St = S.MetricStatus
FIT_POLICY_REFUSE = "refuse"
R0 = "_r0"  # time-zero over vehicle signal of a curve (percent growth levels)
FAILED_FIT = {"max_iter", "failed"}
NON_FINITE = "non_finite"  # the curve had an infinite or overflowing response (fit.table)
SINGULAR = "singular"  # converged, but J'J not invertible: see _not_identifiable
TOO_FEW = {"too_few_points"}
N_NON_FINITE = "_n_non_finite"  # responses of a curve key that are infinite or beyond S.MAX_ABS_RESPONSE
OUTPUT_COLUMNS = [
    *S.METRIC_KEY,
    S.VALUE,
    S.UNIT,
    S.STATUS,
    S.LOWER,
    S.UPPER,
    S.REASON,
    S.SCALE,
    S.FIT_MODEL,
    S.FIT_POLICY,
    S.CURVE_ID,
]


@dataclass(frozen=True)
class MetricOptions:
    """Gates of the refusal fit policy and the common AUC window (recorded in the provenance).

    Parameters
    ----------
    min_r2
        A sigmoid fit with a lower R^2 is refused as ``poor_fit`` for the fitted metrics.
    auc_window
        ``(low, high)`` in molar for ``auc_window``.
    min_doses
        Fewer distinct tested doses than this refuses a curve (``too_few_doses``).
    """

    min_r2: float = 0.5
    auc_window: tuple[float, float] = (1e-8, 1e-6)
    min_doses: int = 4

    def __post_init__(self) -> None:
        low, high = self.auc_window
        if not (0 < low < high and np.isfinite(high)):
            raise ConfigError(
                f"auc_window must be (low, high) with 0 < low < high in molar, got {self.auc_window}"
            )
        if not 0 <= self.min_r2 < 1:
            raise ConfigError(f"min_r2 must be in [0, 1), got {self.min_r2}")
        if self.min_doses < 2:
            raise ConfigError(f"min_doses must be at least 2, got {self.min_doses}")


# ------------------------------------------------------------------------------ curve algebra
def sigmoid(x: np.ndarray, top, bottom, x50, hill) -> np.ndarray:
    """Log-logistic curve on x = log10 c (decreasing for hill > 0)."""
    with np.errstate(over="ignore"):
        return bottom + (top - bottom) / (1.0 + 10.0 ** (hill * (x - x50)))


def sigmoid_area(x0, x1, top, bottom, x50, hill) -> np.ndarray:
    """Mean of the sigmoid over [x0, x1] in log10 c (closed form)."""

    def primitive(x):
        z = hill * (x - x50) * np.log(10.0)
        softplus = np.logaddexp(0.0, z) / np.log(10.0)
        return top * x - (top - bottom) * softplus / hill

    with np.errstate(divide="ignore", invalid="ignore"):
        area = (primitive(x1) - primitive(x0)) / (x1 - x0)
    flat_hill = np.abs(hill) < 1e-12
    return np.where(flat_hill, (top + bottom) / 2.0, area)


def crossing(curves: pd.DataFrame, level: float | np.ndarray, *, level_var=None, terms=None) -> pd.DataFrame:
    """Status, value and 95% interval of the concentration where a curve crosses ``level`` (per curve).

    ``level_var`` (optional, per curve) is the variance of the level itself, from the plate controls
    (:mod:`doseatlas.metrics.uncertainty`); it widens the interval by the delta method. ``terms``: the curves'
    sandwich terms (:class:`~doseatlas.metrics.uncertainty.SandwichTerms`; read off their columns when absent).
    """
    x0, x1 = np.log10(curves["conc_min"]), np.log10(curves["conc_max"])
    p = {k: curves[k].to_numpy(float) for k in ("top", "bottom", "log10_ec50", "hill")}
    flat = curves["selected"].eq("flat").to_numpy()
    level_f = curves["flat_value"].to_numpy(float)
    f0 = np.where(flat, level_f, sigmoid(x0, p["top"], p["bottom"], p["log10_ec50"], p["hill"]))
    f1 = np.where(flat, level_f, sigmoid(x1, p["top"], p["bottom"], p["log10_ec50"], p["hill"]))
    # an increasing curve (response rising with dose) never brings the response down to the level: where it
    # ends above the level, the crossing is "not reached" (right-censored), never a value or a left bound
    rising = ~flat & ((p["top"] - p["bottom"]) * p["hill"] < 0) & (f1 > level)
    left = (f0 <= level) & ~rising
    right = ~left & (f1 > level)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = (p["top"] - level) / (level - p["bottom"])
        root = p["log10_ec50"] + np.log10(ratio) / p["hill"]
        grad = _root_grad(curves, ratio, level)
        se = U.sandwich_se(curves, _root_se(curves, grad), grad, terms=terms)
        if level_var is not None:  # d root / d level, times the level's own variance (shared plate terms)
            slope = (1.0 / (p["top"] - level) + 1.0 / (level - p["bottom"])) / (np.log(10.0) * p["hill"])
            se = np.sqrt(se**2 + np.nan_to_num(slope**2 * level_var, nan=0.0))
    t = t975(np.maximum(curves["n_points"].to_numpy(float) - 4, 1))
    # rounding at an asymptote equal to the level (e.g. top == 0.5) can pass the end-point test with a root at
    # -inf or beyond the range: the root decides then (never a value outside the tested range)
    x0a, x1a = x0.to_numpy(float), x1.to_numpy(float)
    between = ~left & ~right
    left = left | (between & ~flat & ~(root >= x0a - 1e-9))
    right = right | (between & ~flat & (root > x1a + 1e-9))
    status = np.where(left, St.LEFT_CENSORED, np.where(right, St.RIGHT_CENSORED, St.ESTIMATED))
    est = status == St.ESTIMATED
    with np.errstate(over="ignore", invalid="ignore"):  # a huge interval is reported as [0, inf]
        return pd.DataFrame(
            {
                S.STATUS: status,
                S.VALUE: np.where(est, 10.0**root, np.nan),
                S.LOWER: np.where(est, 10.0 ** (root - t * se), np.where(left, 0.0, 10.0**x1)),
                S.UPPER: np.where(est, 10.0 ** (root + t * se), np.where(left, 10.0**x0, np.inf)),
            },
            index=curves.index,
        )


def _root_grad(curves: pd.DataFrame, ratio: np.ndarray, level) -> np.ndarray:
    """Gradient ``(n, 4)`` of log10 of the crossing with respect to (top, bottom, log10_ec50, hill)."""
    top, bottom, h = (curves[k].to_numpy(float) for k in ("top", "bottom", "hill"))
    ln10 = np.log(10.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.stack(
            [
                1.0 / ((top - level) * ln10 * h),  # d/d top
                1.0 / ((level - bottom) * ln10 * h),  # d/d bottom
                np.ones_like(h),  # d/d log10_ec50
                -np.log10(ratio) / h**2,  # d/d hill
            ],
            axis=1,
        )


def _root_se(curves: pd.DataFrame, grad: np.ndarray) -> np.ndarray:
    """Delta-method SE of log10 of the crossing (``grad``: :func:`_root_grad`), from the parameter covariance
    when present."""
    names = ("top", "bottom", "log10_ec50", "hill")
    if all(f"cov_{a}_{b}" in curves for a in names for b in names):
        cov = np.stack([[curves[f"cov_{a}_{b}"].to_numpy(float) for b in names] for a in names], axis=-1)
        cov = np.moveaxis(cov, 0, 1)  # (n, 4, 4)
    else:
        se = np.stack([curves[f"{k}_se"].to_numpy(float) for k in names], axis=1)
        cov = np.einsum("ni,ij->nij", se**2, np.eye(4))
    variance = np.einsum("nii->ni", cov)
    fixed = ~np.isfinite(variance) | (variance == 0.0)  # a fixed parameter (e.g. top of ll3) adds nothing
    grad = np.where(fixed, 0.0, grad)
    cov = np.nan_to_num(cov, nan=0.0, posinf=0.0, neginf=0.0)
    se = np.sqrt(np.einsum("ni,nij,nj->n", np.nan_to_num(grad), cov, np.nan_to_num(grad)))
    # an infinite sensitivity of a free parameter (level at an asymptote) is an unbounded interval, not 0
    return np.where(np.isfinite(grad).all(axis=1), se, np.inf)


# ------------------------------------------------------------------------------ per-kind rules
def pg_level(threshold: float, r0: np.ndarray) -> np.ndarray:
    """Relative-viability level at which NCI-60 percent growth equals ``100 * threshold``.

    With ``r0 = Tz / C`` (time-zero over vehicle signal): PG = p >= 0 at RV = r0 + p (1 - r0),
    PG = p < 0 at RV = (1 + p) r0.
    """
    r0 = np.asarray(r0, dtype=float)
    return r0 + threshold * (1.0 - r0) if threshold >= 0 else (1.0 + threshold) * r0


def pg_to_gr_level(threshold: float, r0: np.ndarray) -> np.ndarray:
    """GR level at which NCI-60 percent growth equals ``100 * threshold`` (same time-zero and control).

    RV and GR are one-to-one given ``r0``: ``GR = 2^(1 + log2 RV / log2(1 / r0)) - 1``. GI50, TGI and
    LC50 are therefore crossings of the fitted GR curve, which follows the log-scale growth of the
    population smoothly, instead of fits through the kink that PG has at zero growth (TGI is exactly
    GR = 0). Measured on simulator truth, this is what keeps the three within 0.1 log10 (docs/validation.md).
    """
    r0 = np.asarray(r0, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 2.0 ** (1.0 + np.log2(pg_level(threshold, r0)) / np.log2(1.0 / r0)) - 1.0


def _threshold(m: Metric, curves: pd.DataFrame, *, terms=None) -> pd.DataFrame:
    level = np.full(len(curves), float(m.threshold))
    if m.scale == S.PERCENT_GROWTH and R0 in curves:
        r0 = curves[R0].to_numpy(float)
        level = np.where(np.isfinite(r0), pg_to_gr_level(float(m.threshold), r0), level)
    level_var = U.level_variance(m.scale, level, curves, threshold=m.threshold)
    got = crossing(curves, level, level_var=level_var, terms=terms)
    observed = 100.0 * float(m.threshold) if m.scale == S.PERCENT_GROWTH else float(m.threshold)
    same = m.scale != S.PERCENT_GROWTH or R0 not in curves  # percent growth reads the GR curve
    return near_plateau(
        observed, got, curves, level, level_var=level_var, same_scale=same, terms=terms
    )  # item 4, plateau.py


def _midpoint(m: Metric, curves: pd.DataFrame) -> pd.DataFrame:
    x50 = curves["log10_ec50"].to_numpy(float)
    x0, x1 = np.log10(curves["conc_min"].to_numpy(float)), np.log10(curves["conc_max"].to_numpy(float))
    left, right = x50 < x0, x50 > x1
    status = np.where(left, St.LEFT_CENSORED, np.where(right, St.RIGHT_CENSORED, St.ESTIMATED))
    est = status == St.ESTIMATED
    out = pd.DataFrame(
        {
            S.STATUS: status,
            S.VALUE: np.where(est, 10.0**x50, np.nan),
            S.LOWER: np.where(est, curves["ec50_lower"], np.where(left, 0.0, 10.0**x1)),
            S.UPPER: np.where(est, curves["ec50_upper"], np.where(left, 10.0**x0, np.inf)),
        },
        index=curves.index,
    )
    return _refuse_where(out, curves["selected"].eq("flat"), Why.FLAT_FIT)


def _parameter(m: Metric, curves: pd.DataFrame, *, terms=None) -> pd.DataFrame:
    name = m.parameter
    flat = curves["selected"].eq("flat")
    value = curves[name].where(~flat, curves["flat_value"]) if name == "bottom" else curves[name]
    lower, upper = curves[f"{name}_lower"].where(~flat), curves[f"{name}_upper"].where(~flat)
    if name == "bottom":  # noise model and misfit (uncertainty.sandwich_se), then the plate controls
        lower, upper = U.plateau_bounds(curves, value, lower, upper, terms=terms)
        lower, upper = _widened(value, lower, upper, U.level_variance(m.scale, value.to_numpy(float), curves))
    out = pd.DataFrame(
        {
            S.STATUS: St.ESTIMATED.value,
            S.VALUE: value,
            S.LOWER: lower,
            S.UPPER: upper,
        },
        index=curves.index,
    )
    if name == "bottom":  # einf / grinf: censored where the data do not reach the plateau (plateau.py)
        return censor_unreached(m.name, out, curves)
    return _refuse_where(out, flat, Why.FLAT_FIT)


def _widened(value: pd.Series, lower: pd.Series, upper: pd.Series, extra_var: np.ndarray):
    """Interval with ``extra_var`` added in quadrature to each half-width (normal quantile for the extra)."""
    z = stats.norm.ppf(0.975)
    lo_half = np.sqrt((value - lower) ** 2 + z**2 * extra_var)
    hi_half = np.sqrt((upper - value) ** 2 + z**2 * extra_var)
    return value - lo_half, value + hi_half


def _area(m: Metric, curves: pd.DataFrame, *, window: tuple[float, float]) -> pd.DataFrame:
    lo, hi = np.log10(curves["conc_min"].to_numpy(float)), np.log10(curves["conc_max"].to_numpy(float))
    if m.name == "auc_window":
        covered = (lo <= np.log10(window[0]) + 1e-9) & (hi >= np.log10(window[1]) - 1e-9)
        lo, hi = np.full_like(lo, np.log10(window[0])), np.full_like(hi, np.log10(window[1]))
    else:
        covered = np.ones(len(curves), dtype=bool)
    p = [curves[k].to_numpy(float) for k in ("top", "bottom", "log10_ec50", "hill")]
    flat = curves["selected"].eq("flat").to_numpy()
    area = np.where(flat, curves["flat_value"].to_numpy(float), sigmoid_area(lo, hi, *p))
    out = pd.DataFrame(
        {S.STATUS: St.ESTIMATED.value, S.VALUE: area, S.LOWER: np.nan, S.UPPER: np.nan}, index=curves.index
    )
    return _refuse_where(out, pd.Series(~covered, index=curves.index), Why.WINDOW_NOT_COVERED)


def _refuse_where(out: pd.DataFrame, mask: pd.Series, why: S.RefusalReason) -> pd.DataFrame:
    mask = np.asarray(mask, dtype=bool)
    out = out.copy()
    out.loc[mask, [S.VALUE, S.LOWER, S.UPPER]] = np.nan
    out.loc[mask, S.STATUS] = St.REFUSED.value
    if S.REASON not in out:
        out[S.REASON] = None
    out.loc[mask, S.REASON] = why.value
    return out


def _non_finite(values: pd.Series) -> np.ndarray:
    """True where a response is infinite or larger in magnitude than ``S.MAX_ABS_RESPONSE`` (NaN: False)."""
    return np.abs(values.to_numpy(dtype=np.float64, na_value=np.nan)) > S.MAX_ABS_RESPONSE


# ------------------------------------------------------------------------------ observed metrics
def dose_means(responses: pd.DataFrame, scale: str) -> pd.DataFrame:
    """Replicate mean of ``scale`` per curve key and tested concentration (NaN responses dropped)."""
    table = responses.rename(columns={S.TIME_H: S.DURATION_H})
    table = table[table[scale].notna()]
    return (
        group_summary(table, [*S.CURVE_KEY, S.CONCENTRATION], scale, method="mean")
        .rename(scale)
        .reset_index()
    )


@dataclass(frozen=True)
class DoseMeans:
    """Replicate means per (curve key, tested concentration), as :func:`dose_means` gives them, on codes: one
    entry per pair, sorted by curve key then concentration (missing last). ``codes``: the curve key's position
    in :attr:`DrugCurves.keys`."""

    codes: np.ndarray
    concentration: np.ndarray
    mean: np.ndarray

    @classmethod
    def of(cls, drugs: DrugCurves, scale: str) -> DoseMeans:
        """The means of ``scale`` over the drug rows where it is not missing."""
        runs = drugs.runs
        values = drugs.values(scale)
        values = values[runs.sorted_by(values)]  # by curve, concentration, then value (NaN last)
        ok = ~np.isnan(values)
        pair, first = renumbered(runs.dose[ok])
        dose = runs.dose[ok][first]
        # summary_by_code's mean: each pair's values summed in sorted order
        mean = np.bincount(pair, weights=values[ok], minlength=len(dose)) / np.bincount(
            pair, minlength=len(dose)
        )
        return cls(runs.curve[dose], runs.concentration[dose], mean)


def _observed(m: Metric, means: DoseMeans) -> pd.DataFrame:
    """emax (mean at the top dose), grmax (min of the two top dose means), gr_aoc (trapezoid); indexed by the
    curve key's code (keys without a mean absent)."""
    grouped = pd.Series(means.mean).groupby(means.codes, sort=True)
    if m.name in ("emax", "dip_emax"):
        value = grouped.last()
    elif m.name == "grmax":
        top2 = grouped.tail(2)
        value = top2.groupby(means.codes[top2.index.to_numpy()], sort=True).min()
    else:
        value = _trapezoid_aoc(means)
    return pd.DataFrame({S.STATUS: St.ESTIMATED.value, S.VALUE: value, S.LOWER: np.nan, S.UPPER: np.nan})


def _trapezoid_aoc(means: DoseMeans) -> pd.Series:
    """Trapezoid of (1 - mean response) over log10 c, divided by the log10 range, per curve."""
    codes = means.codes
    x = np.log10(means.concentration.astype(float))
    above = 1.0 - means.mean
    first = np.ones(len(codes), dtype=bool)
    first[1:] = codes[1:] != codes[:-1]
    dx = np.where(first, 0.0, x - np.roll(x, 1))
    mid = np.where(first, 0.0, (above + np.roll(above, 1)) / 2.0)
    per = pd.Series(x).groupby(codes, sort=True)
    width = per.max() - per.min()
    n = int(codes.max()) + 1 if len(codes) else 0
    area = pd.Series(
        summary_by_code(codes, dx * mid, n, method="sum")[width.index.to_numpy()], index=width.index
    )
    return (area / width).where(width > 0)


def _effects(responses: pd.DataFrame) -> pd.DataFrame:
    """rv_effect / gr_effect rows for genetic perturbations: mean and t interval."""
    genetic = responses[responses[S.PERTURBATION_TYPE].isin([p.value for p in S.GENETIC_PERTURBATIONS])]
    if not len(genetic):  # (a drug screen) no row: what the empty groupings below give, without them
        return pd.DataFrame(columns=OUTPUT_COLUMNS)
    genetic = genetic.rename(columns={S.TIME_H: S.DURATION_H})
    frames = []
    for m in (m for m in METRICS if m.kind == "effect"):
        grouped = genetic.groupby(list(S.CURVE_KEY), dropna=False)
        stats_ = _mean_sd_count(genetic, m.scale, grouped[m.scale].count())
        reason = dominant_reason(grouped, S.reason_column(m.scale))
        half = (
            stats.t.ppf(0.975, np.maximum(stats_["count"] - 1, 1)) * stats_["std"] / np.sqrt(stats_["count"])
        )
        out = pd.DataFrame(
            {
                S.STATUS: St.ESTIMATED.value,
                S.VALUE: stats_["mean"],
                S.LOWER: stats_["mean"] - half,
                S.UPPER: stats_["mean"] + half,
                S.REASON: None,
            }
        )
        none = stats_["count"].eq(0)
        out.loc[none, [S.VALUE, S.LOWER, S.UPPER]] = np.nan
        out.loc[none, S.STATUS] = St.REFUSED.value
        out.loc[none, S.REASON] = reason[none]
        flags = genetic.assign(_bad=_non_finite(genetic[m.scale]))
        bad = (
            flags.groupby(list(S.CURVE_KEY), dropna=False)["_bad"].any().reindex(out.index, fill_value=False)
        )
        out = _refuse_where(out, bad, Why.NON_FINITE_RESPONSE)
        frames.append(_finish(out.reset_index(), m, fit_model="none"))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=OUTPUT_COLUMNS)


def _mean_sd_count(table: pd.DataFrame, column: str, count: pd.Series) -> pd.DataFrame:
    """Mean and SD of the non-missing values per curve key (deterministic sums), beside ``count``."""
    present = table[table[column].notna()]
    key = list(S.CURVE_KEY)
    out = pd.DataFrame({"count": count})
    out["mean"] = group_summary(present, key, column, method="mean").reindex(out.index)
    out["std"] = group_summary(present, key, column, method="std").reindex(out.index)
    return out


def dominant_reason(grouped, column: str) -> pd.Series:
    """The most frequent non-missing value of ``column`` per group of ``grouped`` (a pandas GroupBy).

    Ties go to the value seen first in the group (as ``Series.value_counts`` orders them); a group with no
    value gets ``no_responses``. Vectorized: one pass of grouped counts, no Python call per group.
    """
    index = grouped[column].size().index
    group = grouped.ngroup().to_numpy(dtype=float)
    group = np.where(np.isnan(group), -1, group).astype(np.int64)  # rows of a dropped (missing) key: -1
    out = _dominant_by_code(group, len(index), grouped.obj[column])
    return pd.Series(out, index=index, name=column, dtype=object)


def _dominant_by_code(codes: np.ndarray, n_groups: int, reasons: pd.Series | np.ndarray) -> np.ndarray:
    """:func:`dominant_reason` on group codes (``-1``: no group): an object array of ``n_groups`` reasons."""
    code, labels = pd.factorize(reasons, use_na_sentinel=True)
    ok = (code >= 0) & (codes >= 0)
    out = np.full(n_groups, Why.NO_RESPONSES.value, dtype=object)
    if not ok.any():
        return out
    width = len(labels)
    pair, first, size = np.unique(codes[ok] * width + code[ok], return_index=True, return_counts=True)
    group = pair // width
    order = np.lexsort((first, -size, group))  # per group: most frequent, then first seen
    best = order[np.r_[True, group[order][1:] != group[order][:-1]]]
    out[group[best]] = np.asarray(labels, dtype=object)[pair[best] % width].astype(str)
    return out


# ------------------------------------------------------------------------------ assembly
def _finish(
    table: pd.DataFrame,
    m: Metric,
    *,
    fit_model: str | pd.Series,
    fit_policy: str | pd.Series = FIT_POLICY_REFUSE,
) -> pd.DataFrame:
    table = table.copy()
    table[S.METRIC] = m.name
    table[S.UNIT] = m.unit
    table[S.SCALE] = m.scale
    table[S.FIT_MODEL] = fit_model
    table[S.FIT_POLICY] = fit_policy
    for column in OUTPUT_COLUMNS:
        if column not in table:
            table[column] = None
    return table[OUTPUT_COLUMNS]


def _assemble(keys: pd.DataFrame, parts: list[dict], order: np.ndarray | None = None) -> pd.DataFrame:
    """The rows of ``parts`` (:func:`_scale_parts`: one per metric, one entry per row of ``keys``) as one table
    of :data:`OUTPUT_COLUMNS`, metric after metric (as the concatenation of one frame per metric), or in
    ``order`` (positions in that concatenation). The key columns are taken from ``keys``, every other column
    is one concatenation of the parts' arrays (text: taken from its distinct values)."""
    n = len(keys)
    at = np.arange(n * len(parts)) if order is None else np.asarray(order)
    table = keys[list(S.CURVE_KEY)].take(at % n if n else at).reset_index(drop=True)
    for column in OUTPUT_COLUMNS[len(S.CURVE_KEY) :]:
        table[column] = _column([p[column] for p in parts], n, at)
    codes, status = pd.factorize(table[S.STATUS].to_numpy(dtype=object), use_na_sentinel=False)
    table[S.STATUS] = pd.Series(status, dtype=object).astype(str).take(codes).reset_index(drop=True)
    return table


def _column(pieces: list, n: int, at: np.ndarray) -> pd.Series:
    """Entries ``at`` of the concatenation of the pieces of the parts (arrays or Series of ``n`` entries, or one
    value for all), with the dtype that a concatenation of one frame per part gives."""
    if all(isinstance(p, np.ndarray) for p in pieces):
        values = np.concatenate(pieces)[at] if pieces else np.zeros(0)
        return pd.Series(values, dtype=values.dtype)  # (an object array stays one: no text inference)
    distinct = list({id(p): p for p in pieces}.values())  # the parts of a scale share its Series
    piece = np.array([next(i for i, d in enumerate(distinct) if d is p) for p in pieces], dtype=np.int64)
    if all(isinstance(p, str) for p in distinct):
        return pd.Series(distinct).take(piece[at // n] if n else at).reset_index(drop=True)
    index = pd.RangeIndex(n)
    series = [
        p.reset_index(drop=True) if isinstance(p, pd.Series) else pd.Series(p, index=index) for p in distinct
    ]
    values = pd.concat(series, ignore_index=True)
    return values.take(piece[at // n] * n + at % n if n else at).reset_index(drop=True)


@dataclass(frozen=True)
class DrugCurves:
    """The drug rows of a responses table coded once by curve key: every grouped step of the metrics reads
    these codes instead of grouping the text key columns again.

    ``rows``: positions of the drug rows in ``responses``; ``codes``: per drug row, the position of its curve
    key in ``keys`` (the :data:`~doseatlas.schemas.CURVE_KEY` columns, ``duration_h`` for ``time_h``, one row per
    key in the order and with the values of a sorted pandas groupby of the drug rows).
    """

    responses: pd.DataFrame
    rows: np.ndarray
    codes: np.ndarray
    keys: pd.DataFrame
    of_all: np.ndarray  # each drug curve key's position among the curve keys of all the rows

    @classmethod
    def of(
        cls, responses: pd.DataFrame, *, coded: tuple[np.ndarray, pd.DataFrame] | None = None
    ) -> DrugCurves:
        """The drug rows of ``responses``; ``coded``: the curve keys of all its rows (:func:`curve_codes`),
        computed when absent."""
        codes, keys = coded if coded is not None else curve_codes(responses)
        drug = (responses[S.PERTURBATION_TYPE] == S.PerturbationType.DRUG).to_numpy(dtype=bool)
        rows = np.flatnonzero(drug)
        present = np.bincount(codes[rows], minlength=len(keys)) > 0
        of_all = np.flatnonzero(present)
        if len(of_all) < len(keys):  # keys of other perturbation types: renumber the drug keys
            codes, keys = (np.cumsum(present) - 1)[codes], keys.take(of_all).reset_index(drop=True)
        return cls(responses, rows, codes[rows], keys, of_all)

    @cached_property
    def runs(self) -> DoseRuns:
        """The drug rows grouped by (curve key, concentration), once for every scale (:class:`DoseRuns`)."""
        return DoseRuns.of(self.codes, self.values(S.CONCENTRATION), rows=self.rows, keys=self.keys)

    def values(self, column: str) -> np.ndarray:
        """``column`` of the drug rows as floats (missing: NaN)."""
        return self.responses[column].to_numpy(dtype=np.float64, na_value=np.nan)[self.rows]

    def column(self, column: str) -> pd.Series:
        """``column`` of the drug rows, in its own dtype."""
        values = self.responses[column]
        return values if len(self.rows) == len(values) else values.take(self.rows)


def curve_codes(responses: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """The curve key (:data:`~doseatlas.schemas.CURVE_KEY`, ``time_h`` as ``duration_h``) of every row of
    ``responses`` coded once (:func:`doseatlas._codes.key_codes`)."""
    columns = [S.TIME_H if k == S.DURATION_H else k for k in S.CURVE_KEY]
    return sorted_key_codes(responses[columns].rename(columns={S.TIME_H: S.DURATION_H}), S.CURVE_KEY)


def _scale_keys(
    responses: pd.DataFrame, scale: str, *, drugs: DrugCurves | None = None, means: DoseMeans | None = None
) -> pd.DataFrame:
    """Every drug curve key with its count of usable responses, distinct doses and dominant refusal
    (``drugs``, ``means``: :meth:`DrugCurves.of` the responses and :meth:`DoseMeans.of` them, when known)."""
    drugs = drugs if drugs is not None else DrugCurves.of(responses)
    means = means if means is not None else DoseMeans.of(drugs, scale)
    codes, n = drugs.codes, len(drugs.keys)
    values = drugs.values(scale)
    usable = ~np.isnan(values)
    tested = means.codes[~np.isnan(means.concentration.astype(float))]  # one mean per distinct usable dose
    return drugs.keys.assign(
        **{
            "n_usable": np.bincount(codes[usable], minlength=n),
            N_NON_FINITE: np.bincount(codes[np.abs(values) > S.MAX_ABS_RESPONSE], minlength=n),
            "n_doses_usable": np.bincount(tested, minlength=n),
            "row_reason": _dominant_by_code(codes, n, drugs.column(S.reason_column(scale))),
        }
    )


def _gate(keys: pd.DataFrame, options: MetricOptions) -> pd.Series:
    """Refusal reason per curve key (None where the fitted metrics may be computed)."""
    status = keys["status"].astype(object)
    reason = pd.Series(None, index=keys.index, dtype=object)
    shrunk = keys[S.FIT_POLICY].eq("shrink") if S.FIT_POLICY in keys else False
    poor = keys["selected"].eq("sigmoid") & (keys["r2"] < options.min_r2) & ~shrunk
    reason[poor] = Why.POOR_FIT.value
    reason[status.isin(FAILED_FIT) | status.isna() & keys["n_usable"].gt(0)] = Why.FIT_FAILED.value
    reason[status.eq(NON_FINITE)] = Why.NON_FINITE_RESPONSE.value  # e.g. the GR curve that PG metrics read
    reason[status.isin(TOO_FEW) | keys["n_doses_usable"].lt(options.min_doses)] = Why.TOO_FEW_DOSES.value
    reason[keys[N_NON_FINITE].gt(0)] = Why.NON_FINITE_RESPONSE.value
    reason[keys["n_usable"].eq(0)] = keys["row_reason"][keys["n_usable"].eq(0)]
    return reason


def _drug_growth_ratio(drugs: DrugCurves) -> np.ndarray:
    """``r0 = Tz / C`` per drug curve key (mean over its wells with a percent growth; NaN without any)."""
    with_pg = ~np.isnan(drugs.values(S.PERCENT_GROWTH))
    codes, n = drugs.codes[with_pg], len(drugs.keys)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = drugs.values(S.TIME_ZERO_SIGNAL)[with_pg] / drugs.values(S.VEHICLE_SIGNAL)[with_pg]
    mean = summary_by_code(codes, ratio, n, method="mean")
    return np.where(np.bincount(codes, minlength=n) > 0, mean, np.nan)


def _curves_for(
    scale: str, keys: pd.DataFrame, curves: pd.DataFrame, responses: pd.DataFrame, *, drugs: DrugCurves
) -> pd.DataFrame:
    """Fitted curve per key; percent growth reads the GR curve with levels from time zero (see pg_to_gr_level).

    A source that publishes only percent growth has no GR curve: its own PG fit is used then. ``keys``: one
    row per curve key of ``drugs``, in its order (so is the result).
    """
    own = _one_per_key(_merge_keys(keys, curves[curves[S.SCALE] == scale]), keys)
    if scale != S.PERCENT_GROWTH:
        return own
    gr = _one_per_key(_merge_keys(keys, curves[curves[S.SCALE] == S.GR]), keys)
    gr[R0] = _drug_growth_ratio(drugs)
    use_gr = gr[S.CURVE_ID].notna() & (gr[R0] > 0) & (gr[R0] < 1)
    gr["model"] = gr["model"].astype(object) + f"({S.GR})"
    own[R0] = np.nan
    return gr.where(use_gr, own)


def _merge_keys(keys: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """``keys.merge(table, on=CURVE_KEY, how="left")``; by position, without hashing the text key columns, when
    ``table`` has the keys of ``keys`` row for row (as the fit gives them: :func:`_join.joined_by_position`)."""
    key = list(S.CURVE_KEY)
    got = joined_by_position(keys, table, key)
    return got if got is not None else keys.merge(table, on=key, how="left")


def _one_per_key(merged: pd.DataFrame, keys: pd.DataFrame) -> pd.DataFrame:
    if len(merged) != len(keys):
        raise DoseatlasError("the curves table has more than one curve of a scale for a curve key")
    return merged


def _scale_metrics(*args, **kwargs) -> list[pd.DataFrame]:
    """The metric frames of a scale, each with one row per drug curve key in the order of ``drugs.keys``: the
    parts of :func:`_scale_parts` (same arguments) as one frame each."""
    keys, parts = _scale_parts(*args, **kwargs)
    return [_assemble(keys, [part]) for part in parts]


def _scale_parts(
    responses: pd.DataFrame,
    curves: pd.DataFrame,
    scale: str,
    options: MetricOptions,
    *,
    controls=None,
    drugs: DrugCurves | None = None,
    sandwiches: dict | None = None,
) -> tuple[pd.DataFrame, list[dict]]:
    """The curve keys of ``scale`` (one row per drug curve key, in the order of ``drugs.keys``) and one part
    per metric of the scale: its output columns as arrays (or one value) with one entry per key.
    ``sandwiches``: the sandwich terms of the scales done before (:func:`_sandwich`'s ``known``)."""
    drugs = drugs if drugs is not None else DrugCurves.of(responses)
    means = DoseMeans.of(drugs, scale)
    keys = _scale_keys(responses, scale, drugs=drugs, means=means)
    keys = _curves_for(scale, keys, curves, responses, drugs=drugs)
    if controls is not None:
        keys = _with_controls(keys, controls, drugs)
    terms = _sandwich(keys, drugs, scale, known=sandwiches)
    gate = _gate(keys, options)
    keys = keys.assign(**_mean_range(means, len(keys)))
    usable = gate.isna().to_numpy()
    part = (keys[usable], terms.take(usable))  # what every fitted metric of the scale reads
    model = keys["model"].where(keys["selected"].ne("flat"), "flat").fillna("none")
    policy = keys[S.FIT_POLICY].fillna(FIT_POLICY_REFUSE) if S.FIT_POLICY in keys else FIT_POLICY_REFUSE
    shared = {S.CURVE_ID: keys[S.CURVE_ID], S.FIT_MODEL: model, S.FIT_POLICY: policy, S.SCALE: scale}
    singular = usable & keys["status"].eq(SINGULAR).to_numpy(dtype=bool, na_value=False)
    reasons = gate.to_numpy(dtype=object)
    parts = []
    for m in (m for m in METRICS if m.scale == scale and m.kind not in ("effect", "cross_source")):
        if m.kind == "observed" or m.name == "gr_aoc":
            rows = _observed_rows(m, means, keys)
        else:
            rows = _fitted_rows(m, keys, reasons, options, usable=usable, singular=singular, part=part)
        parts.append({**rows, **shared, S.METRIC: m.name, S.UNIT: m.unit})
    return keys, parts


def _observed_rows(m: Metric, means: DoseMeans, keys: pd.DataFrame) -> dict[str, np.ndarray]:
    """The rows of an observed metric (:func:`_observed`), refused where a key has no usable response
    (``row_reason`` then) or a non-finite one."""
    got = _observed(m, means)
    at = got.index.to_numpy()
    rows = _refused_rows(len(keys), np.full(len(keys), None, dtype=object))
    rows[S.STATUS][:] = np.nan  # a key without a mean (refused below: it has no usable response)
    rows[S.STATUS][at] = _objects(got[S.STATUS])
    rows[S.VALUE][at] = got[S.VALUE].to_numpy(dtype=float, na_value=np.nan)
    no_data = keys["n_usable"].eq(0).to_numpy()
    _refuse_rows(rows, no_data, keys["row_reason"].to_numpy(dtype=object)[no_data])
    _refuse_rows(rows, keys[N_NON_FINITE].gt(0).to_numpy(), Why.NON_FINITE_RESPONSE.value)
    return rows


def _objects(values: pd.Series) -> np.ndarray:
    """``values.to_numpy(dtype=object)``; a text column of a string dtype through its distinct values: one Python
    string per distinct value (status, reason codes) instead of one per row."""
    if not isinstance(values.dtype, pd.StringDtype):
        return values.to_numpy(dtype=object)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    distinct = np.append(np.asarray(uniques, dtype=object), values.dtype.na_value)
    return distinct[codes]  # a missing value (code -1): the dtype's own missing value, as to_numpy gives it


def _refused_rows(n: int, reason: np.ndarray) -> dict[str, np.ndarray]:
    """``n`` refused rows with ``reason`` (an object array, taken as it is)."""
    return {
        S.STATUS: np.full(n, St.REFUSED.value, dtype=object),
        S.VALUE: np.full(n, np.nan),
        S.LOWER: np.full(n, np.nan),
        S.UPPER: np.full(n, np.nan),
        S.REASON: reason,
    }


def _refuse_rows(rows: dict[str, np.ndarray], mask: np.ndarray, reason) -> None:
    """Refuse ``rows`` where ``mask`` (in place): no value nor bounds, status ``refused``, ``reason``."""
    for column in (S.VALUE, S.LOWER, S.UPPER):
        rows[column][mask] = np.nan
    rows[S.STATUS][mask] = St.REFUSED.value
    rows[S.REASON][mask] = reason


def _with_sandwich(keys: pd.DataFrame, drugs: DrugCurves, scale: str) -> pd.DataFrame:
    """``keys`` with the dose-clustered sandwich terms of their fitted curves as columns (:func:`_sandwich`)."""
    terms = pd.DataFrame(_sandwich(keys, drugs, scale).columns(), index=keys.index)
    return pd.concat([keys, terms], axis=1)


def _sandwich(
    keys: pd.DataFrame, drugs: DrugCurves, scale: str, *, known: dict | None = None
) -> U.SandwichTerms:
    """The dose-clustered sandwich terms of the fitted curves of ``keys`` (uncertainty.sandwich); the
    percent-growth keys read on the GR curve take the GR responses. ``known``: the terms of the scales done
    before, by scale (filled here): where every percent-growth key reads the GR curve, its terms are those of
    the GR scale (the same curves, responses and noise offset) and are kept for it."""
    if known is not None and scale == S.GR and S.GR in known:
        return known[S.GR].with_curves(keys)
    y = drugs.values(scale) if scale in drugs.responses else np.full(len(drugs.rows), np.nan)
    if R0 in keys:
        on_gr = np.isfinite(keys[R0].to_numpy(float))[drugs.codes]
        y = np.where(on_gr, drugs.values(S.GR), y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.log10(drugs.values(S.CONCENTRATION))
    offset = np.full(len(keys), U.NOISE_OFFSET.get(scale, 0.0))
    if R0 in keys:
        offset = np.where(np.isfinite(keys[R0].to_numpy(float)), U.NOISE_OFFSET[S.GR], offset)
    terms = U.sandwich(drugs.codes, x, y, keys, offset=offset, runs=drugs.runs)
    if known is not None and scale == S.PERCENT_GROWTH and R0 in keys and len(keys):
        if np.isfinite(keys[R0].to_numpy(float)).all():
            known[S.GR] = terms
    return terms


def _with_controls(keys: pd.DataFrame, controls: pd.DataFrame, drugs: DrugCurves) -> pd.DataFrame:
    """``keys`` with the control terms (:func:`doseatlas.metrics.uncertainty.control_terms`, one row per curve
    key): taken by position when ``controls`` has the rows of ``drugs.keys`` at ``drugs.of_all`` (as
    compute_metrics computes it), merged on the curve key otherwise."""
    key = list(S.CURVE_KEY)
    if len(controls) > int(drugs.of_all.max(initial=-1)):
        taken = controls.take(drugs.of_all).reset_index(drop=True)
        if taken[key].equals(drugs.keys[key]):
            return keys.assign(**{c: taken[c].to_numpy() for c in controls.columns if c not in key})
    return keys.merge(controls, on=key, how="left")


def _fitted_rows(
    m: Metric,
    keys: pd.DataFrame,
    reasons: np.ndarray,
    options: MetricOptions,
    *,
    usable: np.ndarray,
    singular: np.ndarray,
    part: tuple[pd.DataFrame, U.SandwichTerms],
) -> dict[str, np.ndarray]:
    """The rows of fitted metric ``m`` for every key, as arrays: refused with the gate's reason (``reasons``, None
    where ``usable``), the metric's own rule on the usable keys (``part``: ``keys[usable]`` and their sandwich
    terms), a singular fit's
    rows refused as :func:`_not_identifiable` refuses them, a threshold of a poor fit censored where the data
    never cross it (:func:`_censor_poor_rows`)."""
    rows = _refused_rows(len(keys), reasons.copy())
    if usable.any():
        curves, terms = part
        if m.kind == "threshold":
            got = _threshold(m, curves, terms=terms)
        elif m.kind == "midpoint":
            got = _midpoint(m, curves)
        elif m.kind == "parameter":
            got = _parameter(m, curves, terms=terms)
        else:
            got = _area(m, curves, window=options.auc_window)
        at = np.flatnonzero(usable)
        rows[S.STATUS][at] = _objects(got[S.STATUS])
        for column in (S.VALUE, S.LOWER, S.UPPER):
            rows[column][at] = got[column].to_numpy(dtype=float, na_value=np.nan)
        rows[S.REASON][at] = _objects(got[S.REASON]) if S.REASON in got else None
        status = rows[S.STATUS]
        keep = (status == St.LEFT_CENSORED.value) | (status == St.RIGHT_CENSORED.value)
        keep = keep if m.kind == "threshold" else np.zeros(len(keys), dtype=bool)
        _refuse_rows(rows, singular & ~keep & (status != St.REFUSED.value), Why.NOT_IDENTIFIABLE.value)
    if m.kind == "threshold":
        _censor_poor_rows(m, rows, keys, reasons)
    return rows


def _censor_poor_rows(
    m: Metric, rows: dict[str, np.ndarray], keys: pd.DataFrame, reasons: np.ndarray
) -> None:
    """A threshold the data never cross is censored even where the sigmoid fit is poor (issue 14, item 3); in
    place on the rows of :func:`_fitted_rows`.

    R^2 means nothing on flat data (viability 0.9-1.0 at every dose): when the replicate mean at every tested
    dose lies above the level, the data support "beyond the top dose" (right-censored at ``conc_max``); below
    it at every dose, "below the lowest dose" (left-censored at ``conc_min``). Curves whose means cross the
    level stay refused ``poor_fit``.
    """
    level = 100.0 * float(m.threshold) if m.scale == S.PERCENT_GROWTH else float(m.threshold)
    poor = reasons == Why.POOR_FIT.value
    if not poor.any():
        return
    above = poor & (keys["_mean_min"].to_numpy(dtype=float, na_value=np.nan) > level)
    below = poor & (keys["_mean_max"].to_numpy(dtype=float, na_value=np.nan) <= level)
    for mask, status in ((above, St.RIGHT_CENSORED), (below, St.LEFT_CENSORED)):
        rows[S.STATUS][mask] = status.value
        rows[S.VALUE][mask] = np.nan
        rows[S.REASON][mask] = None
    rows[S.LOWER][above] = keys["conc_max"].to_numpy(float)[above]
    rows[S.UPPER][above] = np.inf
    rows[S.LOWER][below] = 0.0
    rows[S.UPPER][below] = keys["conc_min"].to_numpy(float)[below]


def _mean_range(means: DoseMeans, n_keys: int) -> dict[str, np.ndarray]:
    """Lowest and highest replicate-mean response of each curve key over its tested doses (NaN without)."""
    grouped = pd.Series(means.mean).groupby(means.codes, sort=True)
    every = np.arange(n_keys)
    return {
        "_mean_min": grouped.min().reindex(every).to_numpy(),
        "_mean_max": grouped.max().reindex(every).to_numpy(),
    }


def _not_identifiable(m: Metric, body: pd.DataFrame, singular: pd.Series) -> pd.DataFrame:
    """Refuse what a singular fit does not determine.

    A converged fit whose J'J is singular (typically a step between two doses, hill on its bound) still has
    well-determined fitted values at the tested doses, so a threshold that the fitted curve does not reach
    inside the tested range stays censored. Its parameters, midpoint, area and any in-range crossing depend
    on the undetermined shape and are refused (``not_identifiable``).
    """
    censored = body[S.STATUS].isin([St.LEFT_CENSORED.value, St.RIGHT_CENSORED.value])
    keep = censored if m.kind == "threshold" else pd.Series(False, index=body.index)
    refuse = singular & ~keep & body[S.STATUS].ne(St.REFUSED.value)
    body.loc[refuse, [S.VALUE, S.LOWER, S.UPPER]] = np.nan
    body.loc[refuse, S.STATUS] = St.REFUSED.value
    body.loc[refuse, S.REASON] = Why.NOT_IDENTIFIABLE.value
    return body


def compute_metrics(
    responses: pd.DataFrame, curves: pd.DataFrame, *, options: MetricOptions | None = None
) -> pd.DataFrame:
    """The metrics table: one row per (curve key, metric) for every metric of the registry.

    Parameters
    ----------
    responses
        Output of :func:`doseatlas.normalize.normalize`.
    curves
        Output of :func:`doseatlas.fit.fit_curves` for the response scales (``scale`` column).
    options
        :class:`MetricOptions`.
    """
    options = options or MetricOptions()
    responses, curves = S.with_series(responses), S.with_series(curves)
    effects = _effects(responses)
    coded = curve_codes(responses)  # the curve key of every row, coded once for every grouped step
    drugs = DrugCurves.of(responses, coded=coded)
    controls = U.control_terms(responses, coded=coded) if U.has_controls(responses) else None  # none: no term
    curves = U.with_misfit(responses, curves, doses=drugs.runs)  # lack-of-fit factor on every interval
    parts, sandwiches = [], {}
    for scale in S.RESPONSE_SCALES:
        keys, got = _scale_parts(
            responses, curves, scale, options, controls=controls, drugs=drugs, sandwiches=sandwiches
        )
        keys = keys[list(S.CURVE_KEY)]  # (the next scale's frames are built while this one is held)
        parts += got
    if not len(drugs.keys) or not parts:
        return _with_effects(effects, None, None)
    names = [p[S.METRIC] for p in parts]
    if not len(effects):  # the keys are sorted: each key's rows, its metrics by name (as _metric_order)
        by_name = np.argsort(np.asarray(names, dtype=object), kind="stable")
        order = (by_name[None, :] * len(keys) + np.arange(len(keys))[:, None]).ravel()
        return _assemble(keys, parts, order)
    return _with_effects(effects, _assemble(keys, parts), _metric_order(effects, names, drugs.keys))


def _with_effects(
    effects: pd.DataFrame, table: pd.DataFrame | None, order: np.ndarray | None
) -> pd.DataFrame:
    """The genetic effect rows and the drug rows (``table``) as one table, in ``order``."""
    frames = [f for f in (effects, table) if f is not None and len(f)]
    if not frames:
        return pd.DataFrame(columns=OUTPUT_COLUMNS)
    table = pd.concat(frames, ignore_index=True)
    table[S.VALUE] = table[S.VALUE].astype(float)
    table[S.LOWER] = table[S.LOWER].astype(float)
    table[S.UPPER] = table[S.UPPER].astype(float)
    table[S.STATUS] = table[S.STATUS].astype(str)
    if order is None:
        return table.sort_values([*S.CURVE_KEY, S.METRIC], kind="stable").reset_index(drop=True)
    return table.take(order).reset_index(drop=True)


def _metric_order(effects: pd.DataFrame, names: list[str], keys: pd.DataFrame) -> np.ndarray:
    """The row order of ``sort_values([*CURVE_KEY, metric], kind="stable")`` on the concatenation of
    ``effects`` and one frame per metric of ``names`` (one row per row of ``keys``, in its order), from the
    ranks of the curve keys and the metric names instead of sorting the text columns of every row."""
    ranked = pd.concat([effects[list(S.CURVE_KEY)], keys[list(S.CURVE_KEY)]], ignore_index=True)
    rank, _ = key_codes(ranked, S.CURVE_KEY)
    curve = np.concatenate([rank[: len(effects)], *[rank[len(effects) :]] * len(names)])
    every = [effects[S.METRIC].to_numpy(dtype=object), *[np.repeat(name, len(keys)) for name in names]]
    metric, _ = pd.factorize(np.concatenate(every), sort=True)
    return np.lexsort((metric, curve))
