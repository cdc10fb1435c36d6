"""ML-ready labels from a run's metrics: source labels, a censoring-aware consensus, interval targets, matrices.

Pure functions, tables in and tables out (the files are :mod:`doseatlas.io.export`). ``docs/export.md``
documents every column and the consensus rule; in short, every contributing source label is an interval on
the *working scale* (log10 of the concentration in M when the metric's unit is molar, the metric's own scale
otherwise):

- ``estimated``: its 95% interval (an estimate without one spans everything);
- ``right_censored`` ("> b"): [b, +inf); ``left_censored`` ("< b"): (-inf, b];
- ``refused`` source rows do not contribute.

The source rows of one (cell line, perturbation type, perturbagen, metric) *agree* when all their intervals
share a point and the pooled estimate's interval meets every censoring bound; a row that breaks this
``disagrees``, and a group with such a row gets a refused consensus (``sources_disagree``) instead of an
average. Agreeing estimates are pooled by inverse-variance weighting (SE = interval width / (2 x 1.96)), kept
inside the censoring bounds of the other sources (the most likely value under those bounds); with censored
labels only, the bounds are intersected (two right bounds -> the larger; a right and a left -> an interval).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

from doseatlas import schemas as S
from doseatlas.errors import ConfigError
from doseatlas.metrics.registry import MOLAR, REGISTRY

St = S.MetricStatus
Flag = S.ConsensusFlag
Z95 = float(stats.norm.ppf(0.975))
CONSENSUS_RULE = (
    "interval-consensus-1: source labels as intervals on log10 M (concentrations) or the metric's scale; "
    "agree = common point of all intervals and pooled interval meets every censoring bound; estimates pooled "
    "by inverse variance (SE = 95% width / 3.92) within the censoring bounds; censored-only: bounds intersected; "
    "disagreement refused (sources_disagree); refused sources ignored"
)
#: the run's curve key with the names the source used (the harmonize step keeps them in *_source)
SOURCE_KEY: tuple[str, ...] = (
    S.DATASET,
    S.CELL_LINE_SOURCE,
    S.PERTURBATION_TYPE,
    S.PERTURBAGEN_SOURCE,
    S.READOUT,
    S.DURATION_H,
)
BASIS, SOURCE_DURATION_H = "basis", "source_duration_h"  # measured, or converted to duration_h (docs/time.md)
LABEL_COLUMNS: list[str] = [
    S.DATASET,
    S.CELL_LINE,
    S.CELL_LINE_ID,
    S.CELL_LINE_SOURCE,
    S.PERTURBATION_TYPE,
    S.PERTURBAGEN,
    S.PERTURBAGEN_ID,
    S.PERTURBAGEN_SOURCE,
    S.METRIC,
    S.SCALE,
    S.UNIT,
    S.STATUS,
    S.VALUE,
    S.LOWER,
    S.UPPER,
    S.REASON,
    S.LOG10_VALUE,
    S.LOG10_LOWER,
    S.LOG10_UPPER,
    S.DURATION_H,
    BASIS,
    SOURCE_DURATION_H,
    S.READOUT,
    S.SEEDING_DENSITY,
    S.FIT_MODEL,
    S.FIT_POLICY,
    S.CURVE_ID,
    S.DISAGREES,
    S.N_SOURCES,
    S.N_DISAGREEING,
    S.CONSENSUS_FLAG,
]
#: a consensus row takes these from its contributing source rows when they all share one value (else null)
SHARED: tuple[str, ...] = (
    S.CELL_LINE_ID,
    S.PERTURBAGEN_ID,
    S.CELL_LINE_SOURCE,
    S.PERTURBAGEN_SOURCE,
    S.UNIT,
    S.DURATION_H,
    S.READOUT,
    S.SEEDING_DENSITY,
    S.FIT_MODEL,
    S.FIT_POLICY,
    S.CURVE_ID,
)
#: columns a metrics table may lack (older runs, rows other steps append); filled with nulls
OPTIONAL_TEXT = (S.REASON, S.FIT_MODEL, S.FIT_POLICY, S.CURVE_ID, S.CELL_LINE_ID, S.PERTURBAGEN_ID)


@dataclass(frozen=True)
class ExportOptions:
    """What ``doseatlas export`` exports (recorded in the provenance of every file).

    Parameters
    ----------
    metrics
        Metric names; empty = every metric of the perturbation type that the run has.
    perturbation_type
        The one perturbation type of the export: drugs and genetic perturbations never share a matrix.
    """

    metrics: tuple[str, ...] = ()
    perturbation_type: str = S.PerturbationType.DRUG.value
    duration_h: float | None = None

    def __post_init__(self) -> None:
        if self.duration_h is not None and not (np.isfinite(self.duration_h) and self.duration_h > 0):
            raise ConfigError(f"--duration must be positive hours, got {self.duration_h}")
        types = [p.value for p in S.PerturbationType]
        if self.perturbation_type not in types:
            raise ConfigError(
                f"--perturbation-type must be one of {', '.join(types)}, not {self.perturbation_type!r}"
            )
        unknown = [m for m in self.metrics if m not in REGISTRY]
        if unknown:
            raise ConfigError(f"unknown metric {unknown[0]!r}; metrics: {', '.join(REGISTRY)}")
        wrong = [m for m in self.metrics if self.perturbation_type not in REGISTRY[m].perturbations]
        if wrong:
            raise ConfigError(
                f"metric {wrong[0]!r} is not defined for {self.perturbation_type} perturbations "
                f"(it is for: {', '.join(REGISTRY[wrong[0]].perturbations)}); see docs/metrics.md"
            )

    def as_record(self) -> dict[str, Any]:
        """The options as a provenance record."""
        return {
            "metrics": list(self.metrics) or "all",
            "perturbation_type": self.perturbation_type,
            "duration_h": self.duration_h,
            "consensus_rule": CONSENSUS_RULE,
        }


@dataclass(frozen=True)
class Export:
    """The tables of an export: labels, wide matrices by name, drevalpy tables by relative path, a summary."""

    labels: pd.DataFrame
    matrices: dict[str, pd.DataFrame] = field(default_factory=dict)
    drevalpy: dict[str, pd.DataFrame] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ source rows
def select_rows(metrics: pd.DataFrame, *, options: ExportOptions) -> pd.DataFrame:
    """The metric rows of the export's perturbation type and metrics (refused rows included)."""
    if metrics[S.DATASET].eq(S.CONSENSUS_DATASET).any():
        raise ConfigError(
            f"the run has a dataset named {S.CONSENSUS_DATASET!r}, which the export reserves for its consensus "
            "rows; rename that dataset"
        )
    keep = metrics[S.PERTURBATION_TYPE].eq(options.perturbation_type)
    if options.duration_h is not None:
        keep &= metrics[S.DURATION_H].astype(float).eq(options.duration_h)
    if options.metrics:
        keep &= metrics[S.METRIC].isin(options.metrics)
    return metrics[keep].reset_index(drop=True)


def seeding_by_curve(responses: pd.DataFrame) -> pd.DataFrame:
    """Seeding density per source curve (:data:`SOURCE_KEY`): the value when its wells share one, else null."""
    table = _with_identity_columns(responses.rename(columns={S.TIME_H: S.DURATION_H}))
    if S.SEEDING_DENSITY not in table:
        table[S.SEEDING_DENSITY] = np.nan
    grouped = table.groupby(list(SOURCE_KEY), dropna=False, sort=False)[S.SEEDING_DENSITY]
    counts, first = grouped.nunique(), grouped.first()
    return first.where(counts.eq(1)).rename(S.SEEDING_DENSITY).reset_index()


def _with_identity_columns(table: pd.DataFrame) -> pd.DataFrame:
    """Before the harmonize step a table has no *_source / *_id columns: the names are the source's own."""
    table = table.copy()
    for name, canonical in ((S.CELL_LINE_SOURCE, S.CELL_LINE), (S.PERTURBAGEN_SOURCE, S.PERTURBAGEN)):
        if name not in table:
            table[name] = table[canonical]
    return table


def source_labels(metrics: pd.DataFrame, *, seeding: pd.DataFrame | None = None) -> pd.DataFrame:
    """Source label rows: the metric rows with identity columns, seeding density and log10 targets.

    ``seeding`` (from :func:`seeding_by_curve`) is used when the metrics carry no seeding density.
    """
    table = _with_identity_columns(metrics)
    if BASIS not in table:
        table[BASIS] = "measured"
    if SOURCE_DURATION_H not in table:
        table[SOURCE_DURATION_H] = table[S.DURATION_H]
    for name in OPTIONAL_TEXT:
        if name not in table:
            table[name] = pd.Series(np.nan, index=table.index, dtype="str")
    if S.SEEDING_DENSITY not in table:
        if seeding is None:
            table[S.SEEDING_DENSITY] = np.nan
        else:
            table = table.merge(seeding, on=list(SOURCE_KEY), how="left", validate="many_to_one")
    return log10_targets(table)


def log10_targets(table: pd.DataFrame) -> pd.DataFrame:
    """Add ``log10_value`` / ``log10_lower`` / ``log10_upper`` (concentration labels only, else null).

    estimated: log10 of the value and of its 95% interval; right_censored: [log10 bound, +inf];
    left_censored: [-inf, log10 bound]; interval_censored: [log10 lower, log10 upper]; refused: null.
    """
    table = table.copy()
    conc = table[S.UNIT].eq(MOLAR).to_numpy()
    status = table[S.STATUS]
    est, right, left = (status.eq(s).to_numpy() for s in (St.ESTIMATED, St.RIGHT_CENSORED, St.LEFT_CENSORED))
    interval = status.eq(S.INTERVAL_CENSORED).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        value, lower, upper = (np.log10(table[c].to_numpy(float)) for c in (S.VALUE, S.LOWER, S.UPPER))
    table[S.LOG10_VALUE] = np.where(conc & est, value, np.nan)
    table[S.LOG10_LOWER] = np.where(
        conc & (est | right | interval), lower, np.where(conc & left, -np.inf, np.nan)
    )
    table[S.LOG10_UPPER] = np.where(
        conc & (est | left | interval), upper, np.where(conc & right, np.inf, np.nan)
    )
    return table


# ------------------------------------------------------------------------------------------ consensus
class _Groups:
    """Grouped reductions over integer group codes 0..n-1 (every code present)."""

    def __init__(self, codes: np.ndarray) -> None:
        self.codes = codes
        self.n = int(codes.max()) + 1 if len(codes) else 0

    def sum(self, x: np.ndarray) -> np.ndarray:
        return np.bincount(self.codes, weights=np.asarray(x, dtype=float), minlength=self.n)

    def max(self, x: np.ndarray) -> np.ndarray:
        out = np.full(self.n, -np.inf)
        np.maximum.at(out, self.codes, x)
        return out

    def min(self, x: np.ndarray) -> np.ndarray:
        out = np.full(self.n, np.inf)
        np.minimum.at(out, self.codes, x)
        return out


class _Intervals(NamedTuple):
    """Source labels on the working scale."""

    value: np.ndarray
    low: np.ndarray
    high: np.ndarray
    est: np.ndarray
    right: np.ndarray
    left: np.ndarray
    contributing: np.ndarray
    log: np.ndarray
    reported: np.ndarray  # estimates with a 95% interval of positive width (possibly unbounded)


def _intervals(table: pd.DataFrame) -> _Intervals:
    """Every source label as an interval on the working scale (NaN for refused rows)."""
    log = table[S.UNIT].eq(MOLAR).to_numpy()
    status = table[S.STATUS]
    est, right, left = (status.eq(s).to_numpy() for s in (St.ESTIMATED, St.RIGHT_CENSORED, St.LEFT_CENSORED))
    raw = [table[c].to_numpy(float) for c in (S.VALUE, S.LOWER, S.UPPER)]
    with np.errstate(divide="ignore", invalid="ignore"):
        value, lower, upper = (np.where(log, np.log10(a), a) for a in raw)
    low = np.where(est, np.where(np.isnan(lower), -np.inf, lower), np.where(right, lower, -np.inf))
    high = np.where(est, np.where(np.isnan(upper), np.inf, upper), np.where(left, upper, np.inf))
    contributing = (est & ~np.isnan(value)) | (right & ~np.isnan(low)) | (left & ~np.isnan(high))
    low, high = np.where(contributing, low, np.nan), np.where(contributing, high, np.nan)
    reported = est & contributing & ~np.isnan(lower) & ~np.isnan(upper) & (raw[2] > raw[1])
    return _Intervals(value, low, high, est & contributing, right & contributing, left & contributing,
                      contributing, log, reported)  # fmt: skip


def _pool(w: _Intervals, g: _Groups) -> dict[str, np.ndarray]:
    """Per group: the pooled estimate and its 95% interval on the working scale (no estimate: NaN, +-inf).

    Inverse-variance weights from each 95% interval; an unbounded interval weighs nothing. Where an estimate
    of the group has no interval at all, the estimates are averaged with equal weights and the interval is
    unknown (``with_intervals`` False).
    """
    bounded = w.reported & np.isfinite(w.low) & np.isfinite(w.high)
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = np.where(bounded, ((2.0 * Z95) / (w.high - w.low)) ** 2, 0.0)
        n_est, n_reported = g.sum(w.est), g.sum(w.reported)
        sw = g.sum(weight)
        weighted = g.sum(np.where(bounded, weight * w.value, 0.0)) / sw
        plain = g.sum(np.where(w.est, w.value, 0.0)) / n_est
        with_intervals = (n_est > 0) & (n_reported == n_est) & (sw > 0)
        mean = np.where(with_intervals, weighted, plain)
        half = Z95 / np.sqrt(sw)
    return {
        "n_est": n_est,
        "with_intervals": with_intervals,
        "mean": mean,
        "low": np.where(with_intervals, mean - half, -np.inf),
        "high": np.where(with_intervals, mean + half, np.inf),
    }


def _agreement(w: _Intervals, g: _Groups, pool: dict[str, np.ndarray]) -> np.ndarray:
    """Per source row: True where it disagrees beyond the intervals with another row of its group.

    Two intervals disagree when they are disjoint; all intervals of a group share a point exactly when the
    largest lower end is at most the smallest upper end, so a row disagrees with some other row exactly when
    its interval lies above that smallest upper end or below that largest lower end. A censoring bound that
    the pooled estimate's interval does not reach disagrees as well.
    """
    c, codes = w.contributing, g.codes
    largest_low = g.max(np.where(c, w.low, -np.inf))[codes]
    smallest_high = g.min(np.where(c, w.high, np.inf))[codes]
    pairwise = c & ((w.low > smallest_high) | (w.high < largest_low))
    has_est = pool["n_est"][codes] > 0
    beyond_pool = has_est & (
        (w.right & (w.low > pool["high"][codes])) | (w.left & (w.high < pool["low"][codes]))
    )
    return pairwise | beyond_pool


def consensus(source: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Consensus rows, one per :data:`~doseatlas.schemas.CONSENSUS_KEY` group, and the per-row disagreement.

    Parameters
    ----------
    source
        Source label rows (:func:`source_labels`).

    Returns
    -------
    The consensus rows (``dataset`` = ``consensus``, sorted by the key) and a boolean array over ``source``
    (True: the row disagrees beyond its interval with another source row of its group).

    The rows are pooled in a canonical order (key, data set, status, bounds, value), so the consensus does not
    depend on the order of the source rows, to the bit.
    """
    order = [c for c in (*S.CONSENSUS_KEY, S.DATASET, S.STATUS, S.LOWER, S.UPPER, S.VALUE) if c in source]
    positions = source.reset_index(drop=True).sort_values(order, kind="stable").index.to_numpy()
    rows, in_order = _consensus_sorted(source.iloc[positions].reset_index(drop=True))
    disagrees = np.empty(len(source), dtype=bool)
    disagrees[positions] = in_order
    return rows, disagrees


def _consensus_sorted(source: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    key = list(S.CONSENSUS_KEY)
    codes = source.groupby(key, sort=True, dropna=False).ngroup().to_numpy()
    g = _Groups(codes)
    w = _intervals(source)
    pool = _pool(w, g)
    disagrees = _agreement(w, g, pool)
    counts = {"n_src": g.sum(w.contributing), "n_dis": g.sum(disagrees), "n_est": pool["n_est"]}
    lower, upper = source[S.LOWER].to_numpy(float), source[S.UPPER].to_numpy(float)
    bounds = {  # on the value's own scale, so that a bound is copied exactly
        "right": g.max(np.where(w.right, lower, -np.inf)),  # the largest right-censoring bound
        "left": g.min(np.where(w.left, upper, np.inf)),  # the smallest left-censoring bound
    }
    first = np.unique(codes, return_index=True)[1]
    rows = source.iloc[first][key].reset_index(drop=True)
    rows.insert(0, S.DATASET, S.CONSENSUS_DATASET)
    rows = _labels_of_groups(rows, source, w=w, g=g, pool=pool, bounds=bounds, counts=counts)
    mask = w.contributing | (counts["n_src"][codes] == 0)
    for column in SHARED:
        rows[column] = _shared(source[column], g, mask)
    return rows, disagrees


def _labels_of_groups(
    rows: pd.DataFrame,
    source: pd.DataFrame,
    *,
    w: _Intervals,
    g: _Groups,
    pool: dict[str, np.ndarray],
    bounds: dict[str, np.ndarray],
    counts: dict[str, np.ndarray],
) -> pd.DataFrame:
    """Status, value, interval, reason and flag of every consensus row (see the module docstring)."""
    n_src, n_dis, n_est = counts["n_src"], counts["n_dis"], counts["n_est"]
    lo_b, hi_b = bounds["right"], bounds["left"]
    log = g.max(w.log.astype(float)) > 0
    single = (n_src == 1) & (n_dis == 0)
    pick = g.max(np.where(w.contributing, np.arange(len(source)), -1)).astype(np.int64)
    picked = source.iloc[np.maximum(pick, 0)].reset_index(drop=True)
    refused, disagree = n_src == 0, n_dis > 0
    estimated = ~refused & ~disagree & ~single & (n_est > 0)
    censored = ~refused & ~disagree & ~single & (n_est == 0)
    with np.errstate(over="ignore"):  # back to the value's scale, then inside the censoring bounds
        value, low, high = (np.minimum(np.maximum(np.where(log, 10.0**a, a), lo_b), hi_b) for a in
                            (pool["mean"], pool["low"], pool["high"]))  # fmt: skip
    with_iv = pool["with_intervals"]
    low = np.where(estimated, np.where(with_iv, low, np.nan), np.where(log & np.isneginf(lo_b), 0.0, lo_b))
    high = np.where(estimated, np.where(with_iv, high, np.nan), hi_b)
    censored_status = np.where(
        np.isinf(hi_b),
        St.RIGHT_CENSORED.value,
        np.where(np.isinf(lo_b), St.LEFT_CENSORED.value, S.INTERVAL_CENSORED),
    )
    rows[S.STATUS] = np.select(
        [refused | disagree, single, estimated],
        [St.REFUSED.value, picked[S.STATUS].to_numpy(object), St.ESTIMATED.value],
        censored_status,
    )
    rows[S.VALUE] = np.select([single, estimated], [picked[S.VALUE].to_numpy(float), value], np.nan)
    rows[S.LOWER] = np.select([single, estimated | censored], [picked[S.LOWER].to_numpy(float), low], np.nan)
    rows[S.UPPER] = np.select([single, estimated | censored], [picked[S.UPPER].to_numpy(float), high], np.nan)
    rows[S.REASON] = np.select(
        [refused, disagree],
        [S.RefusalReason.ALL_SOURCES_REFUSED.value, S.RefusalReason.SOURCES_DISAGREE.value],
        None,
    )
    rows[S.CONSENSUS_FLAG] = np.select(
        [refused, disagree, n_src == 1, ~with_iv & (n_est > 0)],
        [Flag.NO_SOURCE.value, Flag.DISAGREE.value, Flag.SINGLE_SOURCE.value, Flag.NO_INTERVAL.value],
        Flag.AGREE.value,
    )
    rows[S.N_SOURCES] = n_src.astype(np.int64)
    rows[S.N_DISAGREEING] = n_dis.astype(np.int64)
    return rows


def _shared(values: pd.Series, g: _Groups, mask: np.ndarray) -> pd.Series:
    """Per group: the one value its masked rows share, null where they hold none or several."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    ok = mask & (codes >= 0)
    lowest = g.min(np.where(ok, codes, np.inf))
    highest = g.max(np.where(ok, codes, -np.inf))
    same = np.isfinite(highest) & (lowest == highest)
    if len(uniques) == 0:
        return pd.Series(np.nan, index=range(g.n), dtype=values.dtype)
    taken = pd.Series(uniques.take(np.where(same, highest, 0).astype(np.int64)), dtype=values.dtype)
    return taken.where(same)


# ------------------------------------------------------------------------------------------ labels
def _null_counts(n: int) -> pd.arrays.IntegerArray:
    return pd.arrays.IntegerArray(np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool))


def build_labels(
    metrics: pd.DataFrame, *, options: ExportOptions, seeding: pd.DataFrame | None = None
) -> pd.DataFrame:
    """``labels.parquet``: every selected source row (in the run's order), then the consensus rows (sorted)."""
    source = source_labels(select_rows(metrics, options=options), seeding=seeding)
    rows, disagrees = consensus(source)
    source[S.DISAGREES] = pd.arrays.BooleanArray(disagrees, np.zeros(len(source), dtype=bool))
    source[S.N_SOURCES] = _null_counts(len(source))
    source[S.N_DISAGREEING] = _null_counts(len(source))
    source[S.CONSENSUS_FLAG] = pd.Series(np.nan, index=source.index, dtype="str")
    rows = log10_targets(rows)
    rows[S.DISAGREES] = pd.arrays.BooleanArray(
        np.zeros(len(rows), dtype=bool), np.ones(len(rows), dtype=bool)
    )
    rows[S.N_SOURCES] = rows[S.N_SOURCES].astype("Int64")
    rows[S.N_DISAGREEING] = rows[S.N_DISAGREEING].astype("Int64")
    for name, value in ((BASIS, np.nan), (SOURCE_DURATION_H, np.nan)):
        rows[name] = rows[name] if name in rows else value
    return pd.concat([source[LABEL_COLUMNS], rows[LABEL_COLUMNS]], ignore_index=True)


# ------------------------------------------------------------------------------------------ matrices
MATRIX_PARTS: tuple[tuple[str, str], ...] = (
    ("", S.VALUE),
    ("_lower", S.LOWER),
    ("_upper", S.UPPER),
    ("_status", S.STATUS),
)


def matrices(labels: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Wide cell line x perturbagen tables of the consensus labels, four per metric.

    ``matrix_<metric>`` holds the consensus value, ``matrix_<metric>_lower`` / ``_upper`` / ``_status`` the
    interval and status of the same cells (same rows in the same order, same columns); a pair that was not
    measured is null in all four. The first column is ``cell_line``, the others are the perturbagens (sorted).
    """
    rows = labels[labels[S.DATASET].eq(S.CONSENSUS_DATASET)]
    types = rows[S.PERTURBATION_TYPE].unique()
    if len(types) > 1:
        raise ConfigError(f"a matrix holds one perturbation type, got {', '.join(map(str, types))}")
    out: dict[str, pd.DataFrame] = {}
    for metric, block in rows.groupby(S.METRIC, sort=True):
        if block.duplicated([S.CELL_LINE, S.PERTURBAGEN]).any():
            raise ConfigError(f"metric {metric!r} has two consensus rows for one cell line and perturbagen")
        row_codes, row_names = pd.factorize(block[S.CELL_LINE], sort=True)
        col_codes, col_names = pd.factorize(block[S.PERTURBAGEN], sort=True)
        if S.CELL_LINE in set(col_names):
            raise ConfigError(f"a perturbagen is named {S.CELL_LINE!r}, the matrices' first column")
        for suffix, column in MATRIX_PARTS:
            text = column == S.STATUS
            grid = np.full(
                (len(row_names), len(col_names)), None if text else np.nan, dtype=object if text else float
            )
            grid[row_codes, col_codes] = block[column].to_numpy(object if text else float)
            frame = pd.DataFrame(grid, columns=[str(c) for c in col_names])
            frame.insert(0, S.CELL_LINE, np.asarray(row_names, dtype=object))
            out[f"matrix_{metric}{suffix}"] = frame
    return out


# ------------------------------------------------------------------------------------------ drevalpy
# drevalpy's custom data set (drevalpy.datasets.loader.load_dataset / load_custom): <name>/<name>.csv with
# these identifier columns, and the id lists its baseline models read as features.
DREVALPY_CELL_LINE = "cell_line_name"
DREVALPY_DRUG = "pubchem_id"
DREVALPY_DRUG_NAME = "drug_name"
DREVALPY_RESPONSE = "response"
DREVALPY_CELL_LINES_FILE = "cell_line_names.csv"
DREVALPY_DRUGS_FILE = "drug_names.csv"
PUBCHEM_PREFIX = "PUBCHEM:"


def drevalpy_name(metric: str) -> str:
    """Name of the drevalpy data set of ``metric`` (its folder and response file)."""
    return f"doseatlas_{metric}"


def drevalpy_tables(labels: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """drevalpy custom data sets, one per drug metric: relative path -> table (CSV).

    Rows: the estimated consensus labels of drugs (censored, refused and disagreeing labels have no point
    value; they stay in labels.parquet with their interval targets). ``response`` is ln(value in µM) for
    concentration metrics (GDSC's LN_IC50 convention, also written as ``LN_<METRIC>``) and the value itself
    otherwise. ``pubchem_id`` is the PubChem CID where the perturbagen id is one, else the canonical name.
    """
    rows = labels[
        labels[S.DATASET].eq(S.CONSENSUS_DATASET)
        & labels[S.PERTURBATION_TYPE].eq(S.PerturbationType.DRUG.value)
        & labels[S.STATUS].eq(St.ESTIMATED.value)
    ]
    out: dict[str, pd.DataFrame] = {}
    for metric, block in rows.groupby(S.METRIC, sort=True):
        name, conc = drevalpy_name(str(metric)), block[S.UNIT].eq(MOLAR).to_numpy()
        values = block[S.VALUE].to_numpy(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            response = np.where(conc, np.log(np.where(conc, values, 1.0) / 1e-6), values)
        ids = block[S.PERTURBAGEN_ID].astype(object)
        cid = ids.where(ids.str.startswith(PUBCHEM_PREFIX, na=False)).str.slice(len(PUBCHEM_PREFIX))
        table = pd.DataFrame(
            {
                DREVALPY_CELL_LINE: block[S.CELL_LINE].to_numpy(object),
                DREVALPY_DRUG: cid.fillna(block[S.PERTURBAGEN]).to_numpy(object),
                DREVALPY_DRUG_NAME: block[S.PERTURBAGEN].to_numpy(object),
                DREVALPY_RESPONSE: response,
                S.CELL_LINE_ID: block[S.CELL_LINE_ID].to_numpy(object),
                S.PERTURBAGEN_ID: block[S.PERTURBAGEN_ID].to_numpy(object),
                S.N_SOURCES: block[S.N_SOURCES].to_numpy(),
            }
        )
        if conc.all():
            table.insert(4, f"LN_{str(metric).upper()}", response)
        out[f"{name}/{name}.csv"] = table
        cells = table[[DREVALPY_CELL_LINE, S.CELL_LINE_ID]].drop_duplicates(DREVALPY_CELL_LINE)
        out[f"{name}/{DREVALPY_CELL_LINES_FILE}"] = cells.sort_values(DREVALPY_CELL_LINE, ignore_index=True)
        drugs = table[[DREVALPY_DRUG, DREVALPY_DRUG_NAME, S.PERTURBAGEN_ID]].drop_duplicates(DREVALPY_DRUG)
        out[f"{name}/{DREVALPY_DRUGS_FILE}"] = drugs.sort_values(DREVALPY_DRUG, ignore_index=True)
    return out


# ------------------------------------------------------------------------------------------ all of it
def export_tables(
    metrics: pd.DataFrame, *, options: ExportOptions, seeding: pd.DataFrame | None = None
) -> Export:
    """Labels, matrices, drevalpy tables and a summary of one export (see :class:`ExportOptions`)."""
    labels = build_labels(metrics, options=options, seeding=seeding)
    is_consensus = labels[S.DATASET].eq(S.CONSENSUS_DATASET)
    rows = labels[is_consensus]
    summary = {
        "perturbation_type": options.perturbation_type,
        "metrics": sorted(rows[S.METRIC].unique().tolist()),
        "source_rows": int((~is_consensus).sum()),
        "consensus_rows": int(is_consensus.sum()),
        "consensus_status": {str(k): int(v) for k, v in rows[S.STATUS].value_counts().sort_index().items()},
        "consensus_flag": {
            str(k): int(v) for k, v in rows[S.CONSENSUS_FLAG].value_counts().sort_index().items()
        },
    }
    tables = matrices(labels)
    drevalpy = drevalpy_tables(labels) if options.perturbation_type == S.PerturbationType.DRUG else {}
    summary["matrices"] = sorted(n for n in tables if not n.endswith(tuple(s for s, _ in MATRIX_PARTS[1:])))
    summary["drevalpy_datasets"] = sorted({path.split("/")[0] for path in drevalpy})
    return Export(labels=labels, matrices=tables, drevalpy=drevalpy, summary=summary)
