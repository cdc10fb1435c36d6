"""Comparable numbers across data sets: ``auc_common`` and the consistency table.

Pure functions, table in, table out. Both group by the canonical ``cell_line``, ``perturbagen`` and
``perturbation_type`` (:data:`doseatlas.schemas.CONSISTENCY_KEY`) across ``dataset``s: after the identities step
these are the canonical names; without it, the names the sources used.

* :func:`auc_common` -- for every cell line x perturbagen x perturbation type measured by two or more data sets,
  the window every one of them tested (intersection of the curves' tested ranges) and the AUC of each curve over
  that window, from its fitted parameters (the ``auc`` definition, closed form), with a delta-method interval.
* :func:`consistency_table` -- for every pair of data sets and every metric both have: shared pairs, Spearman and
  Pearson correlation (of log10 values for concentrations), median absolute difference and status agreement,
  for doseatlas' metrics (``harmonized``) and, when given, for the sources' own published values (``published``).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
from scipy import special, stats

from doseatlas import schemas as S
from doseatlas.fit.models import PARAMS
from doseatlas.metrics.compute import sigmoid_area
from doseatlas.metrics.registry import REGISTRY

St = S.MetricStatus
AUC_COMMON = "auc_common"
LN10 = np.log(10.0)
_COV = [f"cov_{a}_{b}" for a in PARAMS for b in PARAMS]
_CURVE_FIELDS = ["conc_min", "conc_max", "selected", "flat_value", "n_points", *PARAMS, *_COV]
_STATUS_ORDER = {s.value: i for i, s in enumerate(St)}
CONSISTENCY_COLUMNS = [
    S.DATASET_A,
    S.DATASET_B,
    S.STAGE,
    S.METRIC,
    S.TRANSFORM,
    S.N_SHARED_PAIRS,
    S.N_SHARED,
    S.N_VALUES,
    S.SPEARMAN,
    S.PEARSON,
    S.MEDIAN_ABS_DIFF,
    S.STATUS_AGREEMENT,
]


# ------------------------------------------------------------------------------ auc_common
def common_windows(auc_rows: pd.DataFrame) -> pd.DataFrame:
    """Per row: the number of data sets that tested its pair and the pair's common window in log10 M.

    ``auc_rows`` carries the consistency key, ``dataset``, ``conc_min`` and ``conc_max``. A curve without a
    tested range on the relative-viability scale (no usable response, e.g. a source that publishes only GR)
    neither narrows the window nor counts as a data set that tested the pair.
    """
    key = list(S.CONSISTENCY_KEY)
    lo, hi = np.log10(auc_rows["conc_min"].astype(float)), np.log10(auc_rows["conc_max"].astype(float))
    tested = auc_rows[S.DATASET].where(np.isfinite(lo) & np.isfinite(hi))
    grouped = auc_rows.assign(_lo=lo, _hi=hi, _tested=tested).groupby(key, dropna=False, sort=False)
    return pd.DataFrame(
        {
            "n_datasets": grouped["_tested"].transform("nunique"),
            "x0": grouped["_lo"].transform("max"),
            "x1": grouped["_hi"].transform("min"),
        },
        index=auc_rows.index,
    )


def area_gradient(x0, x1, top, bottom, x50, hill) -> np.ndarray:
    """Gradient (n, 4) of :func:`doseatlas.metrics.compute.sigmoid_area` in :data:`PARAMS` order."""

    def primitive_gradient(x):
        z = hill * (x - x50) * LN10
        soft = np.logaddexp(0.0, z) / LN10
        sig = special.expit(z)
        return np.stack(
            [
                x - soft / hill,
                soft / hill,
                (top - bottom) * sig,
                -(top - bottom) * ((x - x50) * sig / hill - soft / hill**2),
            ],
            axis=1,
        )

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return (primitive_gradient(x1) - primitive_gradient(x0)) / (x1 - x0)[:, None]


def _covariance(curves: pd.DataFrame) -> np.ndarray:
    """(n, 4, 4) parameter covariance from the ``cov_*`` columns (NaN where absent)."""
    if not all(n in curves for n in _COV):
        return np.full((len(curves), 4, 4), np.nan)
    return curves[_COV].to_numpy(float).reshape(len(curves), 4, 4)


def area_interval(curves: pd.DataFrame, x0: np.ndarray, x1: np.ndarray, area: np.ndarray):
    """95% interval of the mean of the fitted curve over [x0, x1] (delta method, t with n_points - 4 df).

    Fixed parameters (zero or missing variance, e.g. the top of ll3) add nothing; an interval that cannot be
    computed is NaN.
    """
    p = [curves[k].to_numpy(float) for k in PARAMS]
    grad = area_gradient(x0, x1, *p)
    cov = _covariance(curves)
    variance = np.einsum("nii->ni", cov)
    fixed = ~np.isfinite(variance) | (variance == 0.0)
    grad = np.where(fixed, 0.0, grad)
    cov = np.nan_to_num(cov, nan=0.0, posinf=0.0, neginf=0.0)
    se = np.sqrt(np.einsum("ni,nij,nj->n", grad, cov, grad))
    se = np.where(np.isfinite(grad).all(axis=1) & ~fixed.all(axis=1), se, np.nan)
    t = stats.t.ppf(0.975, np.maximum(curves["n_points"].to_numpy(float) - 4, 1))
    return area - t * se, area + t * se


def auc_common(metrics: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """The ``auc_common`` rows: one per ``auc`` row of a pair measured by two or more data sets.

    Each row is a copy of the curve's ``auc`` row (every key and descriptive column: duration, readout, fit
    policy, seeding density and identities when present) with the metric, value, interval, status and reason
    replaced and the common window in ``window_low`` / ``window_high`` (molar). ``auc`` refused -> refused
    with the same reason; ranges that do not overlap -> refused ``no_common_window``; a flat fit -> its flat
    value, as ``auc``.
    """
    auc = metrics[metrics[S.METRIC].eq("auc")]
    wanted = [S.CURVE_ID, *(c for c in _CURVE_FIELDS if c in curves)]
    fields = curves.loc[curves[S.SCALE].eq(S.RELATIVE_VIABILITY), wanted]
    fields = fields.drop_duplicates(S.CURVE_ID).set_index(S.CURVE_ID)
    joined = auc[[*S.CONSISTENCY_KEY, S.DATASET, S.STATUS, S.REASON, S.CURVE_ID]].join(fields, on=S.CURVE_ID)
    window = common_windows(joined)
    keep = window["n_datasets"].ge(2).to_numpy()
    joined, window = joined[keep], window[keep]
    x0, x1 = window["x0"].to_numpy(float), window["x1"].to_numpy(float)
    open_ = np.isfinite(x0) & np.isfinite(x1) & (x1 > x0)
    usable = joined[S.STATUS].ne(St.REFUSED.value).to_numpy() & open_
    p = [joined[k].to_numpy(float) for k in PARAMS]
    flat = joined["selected"].eq("flat").to_numpy()
    with np.errstate(all="ignore"):
        area = np.where(flat, joined["flat_value"].to_numpy(float), sigmoid_area(x0, x1, *p))
        lower, upper = area_interval(joined, x0, x1, area)
    out = auc.loc[joined.index].copy()
    out[S.METRIC] = AUC_COMMON
    out[S.UNIT] = REGISTRY[AUC_COMMON].unit
    out[S.VALUE] = np.where(usable, area, np.nan)
    out[S.LOWER] = np.where(usable & ~flat, lower, np.nan)
    out[S.UPPER] = np.where(usable & ~flat, upper, np.nan)
    out[S.STATUS] = np.where(usable, St.ESTIMATED.value, St.REFUSED.value)
    refused = joined[S.STATUS].eq(St.REFUSED.value).to_numpy()
    no_window = np.where(open_, None, S.RefusalReason.NO_COMMON_WINDOW.value)
    out[S.REASON] = np.where(refused, joined[S.REASON].astype(object).to_numpy(), no_window)
    out[S.WINDOW_LOW] = np.where(open_, 10.0**x0, np.nan)
    out[S.WINDOW_HIGH] = np.where(open_, 10.0**x1, np.nan)
    return out.reset_index(drop=True)


def with_auc_common(metrics: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """``metrics`` with the ``auc_common`` rows appended and the window columns (null on other rows)."""
    rows = auc_common(metrics, curves)
    base = metrics.assign(**{S.WINDOW_LOW: np.nan, S.WINDOW_HIGH: np.nan})
    if rows.empty:
        return base
    table = pd.concat([base, rows[base.columns]], ignore_index=True)
    return table.sort_values([*S.CURVE_KEY, S.METRIC], kind="stable").reset_index(drop=True)


# ------------------------------------------------------------------------------ consistency table
def per_source(table: pd.DataFrame) -> pd.DataFrame:
    """One row per data set, pair and metric: the median value of its estimated rows and its status.

    A data set may measure a pair more than once (readouts, durations, repeated experiments): the value is the
    median of the estimated values (NaN when none is estimated) and the status the most frequent one (ties: the
    first of estimated, right_censored, left_censored, refused).
    """
    key = [S.DATASET, *S.CONSISTENCY_KEY, S.METRIC]
    table = table[[*key, S.VALUE, S.STATUS]]
    estimated = table[S.STATUS].eq(St.ESTIMATED.value)
    value = table[S.VALUE].where(estimated).groupby([table[k] for k in key], dropna=False, sort=True).median()
    counts = table.groupby([*key, S.STATUS], dropna=False, sort=True).size().rename("_n").reset_index()
    counts["_order"] = counts[S.STATUS].map(_STATUS_ORDER).fillna(len(_STATUS_ORDER))
    counts = counts.sort_values(
        [*key, "_n", "_order"], ascending=[True] * len(key) + [False, True], kind="stable"
    )
    status = counts.drop_duplicates(key).set_index(key)[S.STATUS]
    return pd.DataFrame({S.VALUE: value, S.STATUS: status.reindex(value.index)}).reset_index()


def transform_for(metric: str) -> str:
    """``log10`` for concentration metrics (unit M), ``value`` for fractions, areas and slopes."""
    return "log10" if metric in REGISTRY and REGISTRY[metric].unit == "M" else "value"


def _present(agg: pd.DataFrame) -> pd.DataFrame:
    """(metric, dataset) combinations with at least one non-refused row."""
    rows = agg.loc[agg[S.STATUS].ne(St.REFUSED.value), [S.METRIC, S.DATASET]]
    return rows.drop_duplicates().astype(str)


def _compared_metrics(present: pd.DataFrame, a: str, b: str) -> list[str]:
    """Metrics both data sets have with at least one non-refused row each (``present``: :func:`_present`)."""
    in_a = set(present.loc[present[S.DATASET].eq(a), S.METRIC])
    in_b = set(present.loc[present[S.DATASET].eq(b), S.METRIC])
    return sorted(in_a & in_b)


def paired_values(agg: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """The pairs measured by both ``a`` and ``b`` per metric, side by side (``value_a``, ``status_a``, ...).

    ``agg`` is :func:`per_source` output. Values of concentration metrics are log10 (see :func:`transform_for`).
    """
    key = [*S.CONSISTENCY_KEY, S.METRIC]
    left = agg[agg[S.DATASET].eq(a)].drop(columns=S.DATASET)
    right = agg[agg[S.DATASET].eq(b)].drop(columns=S.DATASET)
    both = left.merge(right, on=key, suffixes=("_a", "_b"))
    logged = {m for m in both[S.METRIC].unique() if transform_for(m) == "log10"}
    log = both[S.METRIC].isin(logged)
    for side in ("_a", "_b"):
        v = both[S.VALUE + side].astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            both[S.VALUE + side] = np.where(log, np.log10(v.where(v > 0)), v)
    return both


def _stats(both: pd.DataFrame) -> dict:
    """Correlations, median |difference| and status agreement of one metric's paired values."""
    a, b = both[S.VALUE + "_a"].to_numpy(float), both[S.VALUE + "_b"].to_numpy(float)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    varied = ok.sum() >= 3 and np.ptp(a) > 0 and np.ptp(b) > 0
    return {
        S.N_SHARED: len(both),
        S.N_VALUES: int(ok.sum()),
        S.SPEARMAN: float(stats.spearmanr(a, b).statistic) if varied else np.nan,
        S.PEARSON: float(np.corrcoef(a, b)[0, 1]) if varied else np.nan,
        S.MEDIAN_ABS_DIFF: float(np.median(np.abs(a - b))) if ok.any() else np.nan,
        S.STATUS_AGREEMENT: float(both[S.STATUS + "_a"].eq(both[S.STATUS + "_b"]).mean())
        if len(both)
        else np.nan,
    }


def _pair_rows(agg: pd.DataFrame, a: str, b: str, stage: str, present: pd.DataFrame) -> list[dict]:
    """The rows of one pair of data sets and one stage (one per metric both have; one row if none)."""
    shared = paired_values(agg, a, b)
    n_pairs = len(shared.drop_duplicates(list(S.CONSISTENCY_KEY)))
    base = {S.DATASET_A: a, S.DATASET_B: b, S.STAGE: stage, S.N_SHARED_PAIRS: n_pairs}
    names = _compared_metrics(present, a, b)
    if not names:
        return [{**base, S.METRIC: None, S.TRANSFORM: None, S.N_SHARED: 0, S.N_VALUES: 0}]
    grouped = dict(tuple(shared.groupby(S.METRIC, sort=True)))
    empty = shared.iloc[:0]
    return [
        {**base, S.METRIC: m, S.TRANSFORM: transform_for(m), **_stats(grouped.get(m, empty))} for m in names
    ]


def consistency_table(metrics: pd.DataFrame, *, published: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per pair of data sets, stage and metric (see the module docstring).

    Parameters
    ----------
    metrics
        The metrics table (with ``auc_common`` rows for the harmonized comparison on the common window).
    published
        The sources' own published values, when a reader carries them: the consistency key, ``dataset``,
        ``metric`` (the doseatlas metric the value stands for, e.g. ``ic50`` for a published IC50 in molar),
        ``value`` and ``status``. Compared as they are, with each source's definition (``published`` stage).

    Pairs of data sets that share no cell line x perturbagen have rows with ``n_shared_pairs`` = 0.
    """
    stages = [(S.ConsistencyStage.HARMONIZED.value, metrics)]
    if published is not None and len(published):
        stages.insert(0, (S.ConsistencyStage.PUBLISHED.value, published))
    datasets = sorted(metrics[S.DATASET].dropna().astype(str).unique())
    rows: list[dict] = []
    for stage, table in stages:
        if len(datasets) < 2:  # no pair of data sets: nothing to summarize per source
            break
        agg = per_source(table.assign(**{S.DATASET: table[S.DATASET].astype(str)}))
        present = _present(agg)
        for a, b in combinations(datasets, 2):
            rows += _pair_rows(agg, a, b, stage, present)
    out = pd.DataFrame(rows, columns=CONSISTENCY_COLUMNS)
    for column in (S.N_SHARED_PAIRS, S.N_SHARED, S.N_VALUES):
        out[column] = out[column].fillna(0).astype("int64")
    return out
