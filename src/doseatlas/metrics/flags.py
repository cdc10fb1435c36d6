"""Flags on every number: what a metric row's value should be read with (it is kept, not refused).

Every flag code is declared once here (:data:`FLAGS`: name, definition, what raises it); ``docs/metrics.md``
lists them from these declarations. :func:`flag_metrics` adds the ``flags`` column to a run's metrics table:
the codes raised on the row, sorted and joined by ``;`` (an empty string when none). A plain string column is
what Parquet, pandas and the export all handle the same way; ``flags.str.split(";")`` gives the list and
:func:`has_flag` tests one code.

Pure functions of the run's tables (metrics, responses, plates, time dependence), vectorized (grouped pandas /
numpy), so both engines give the same column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from doseatlas import schemas as S
from doseatlas._codes import combine, factorize, joint_codes, per_distinct, run_joint_codes
from doseatlas.errors import ConfigError
from doseatlas.metrics.time_dependence import PAIR_KEY, TIME_DEPENDENT

SEPARATOR = ";"
PLATE_KEY: list[str] = [S.DATASET, S.PLATE, S.CELL_LINE, S.TIME_H, S.READOUT]
#: metric rows compared across readouts: the same cell line, perturbagen, duration and metric in any data set
READOUT_PAIR_KEY: list[str] = [S.CELL_LINE, S.PERTURBATION_TYPE, S.PERTURBAGEN, S.DURATION_H, S.METRIC]


@dataclass(frozen=True)
class Flag:
    """One flag code: its name (the code in the ``flags`` column), what it means and what raises it."""

    name: str
    definition: str
    raised_by: str


class FlagCode:
    """The flag codes (spelled once)."""

    EDGE_EFFECT = "edge_effect"
    LOW_Z_FACTOR = "low_z_factor"
    SIGNAL_INCREASE = "signal_increase"
    READOUT_DISCORDANT = "readout_discordant"
    READOUT_INTERFERENCE = "readout_interference"
    READOUT_CAVEAT = "readout_caveat"
    TIME_DEPENDENT = TIME_DEPENDENT
    BOUND_LIMITED = "bound_limited"


FLAGS: tuple[Flag, ...] = (
    Flag(
        FlagCode.EDGE_EFFECT,
        "a plate the curve's wells are on loses signal on its edge wells: its `edge_effect` (edge over interior "
        "wells, from a model of every well's log signal: plate gain + condition + edge term, doseatlas.spatial) is "
        "below `FlagOptions.min_edge_effect` (0.95) and `FlagOptions.edge_z` (2.5) standard errors below 1 on the "
        "log scale",
        "plate position model (`edge_effect`, `edge_effect_se` in plates.parquet)",
    ),
    Flag(
        FlagCode.LOW_Z_FACTOR,
        "a plate the curve's wells are on has a Z'-factor (vehicle against positive-control wells) below "
        "`FlagOptions.min_z_factor` (0.5): its controls do not separate well",
        "plate QC (`z_factor` in plates.parquet)",
    ),
    Flag(
        FlagCode.SIGNAL_INCREASE,
        "the signal at the highest tested dose rises above the vehicle's: the median relative viability of the "
        "curve's wells at its highest concentration exceeds 1 + `FlagOptions.signal_increase` (0.2) "
        "(hormesis, or a drug acting on the readout itself)",
        "the curve's responses (relative viability)",
    ),
    Flag(
        FlagCode.READOUT_DISCORDANT,
        "the same cell line x perturbagen was measured at the same duration with two or more readouts (in one "
        "or several data sets) and this metric's values disagree beyond their intervals: the 95% interval or "
        "censoring bound of one readout does not meet that of another readout, concentrations widened by "
        "`FlagOptions.discordant_fold` (2) on each side (readouts measure different things and differ by a little "
        "for ordinary reasons, e.g. resazurin saturating; estimates without an interval never disagree; rows of "
        "the same readout are not compared); every side of the disagreement is flagged",
        "metric rows of the same cell line, perturbation type, perturbagen, duration and metric",
    ),
    Flag(
        FlagCode.READOUT_INTERFERENCE,
        "the compound gives the readout a signal of its own: at one or more tested concentrations its "
        "compound-only wells (the drug in cell-free medium) read, over the plate's blank, more than "
        "`InterferenceOptions.threshold` (0.1) of the vehicle signal of its treated wells, or less than minus it "
        "(`interfering` in interference.parquet); every metric row of the compound in that data set, readout and "
        "duration is flagged, whether or not `--interference-correction subtract` corrected its responses",
        "compound-only wells (interference.parquet, doseatlas.interference)",
    ),
    Flag(
        FlagCode.READOUT_CAVEAT,
        "the readout supports the metric's response scale only with a caveat (the readout registry, "
        "docs/readouts.md): GR values and percent growth of a metabolic readout (ATP, resazurin, tetrazolium) "
        "treat its signal as a cell count",
        "the readout registry (doseatlas.readouts)",
    ),
    Flag(
        FlagCode.TIME_DEPENDENT,
        "the drug's effect grows with the duration beyond the exponential model (docs/time.md): every metric "
        "row of the pair, at every duration, is flagged",
        "the time step (`time_dependent` in time_dependence.parquet)",
    ),
    Flag(
        FlagCode.BOUND_LIMITED,
        "a free parameter of the curve's fit ended on the bound it was held to (`at_bound` in curves.parquet: "
        "e.g. hill at 10 for a step between two doses, the EC50 at the edge of its allowed range, a GR plateau "
        "at -1): the fit is the best one within the bounds, not the unconstrained least-squares fit, and its 95% "
        "interval does not account for the bound; raised on the curve's estimated fitted metrics (crossings, "
        "midpoint, plateau, area), not on observed ones",
        "the fit (`at_bound` in curves.parquet)",
    ),
)
FLAG_CODES: dict[str, Flag] = {f.name: f for f in FLAGS}


@dataclass(frozen=True)
class FlagOptions:
    """Thresholds of the flags (recorded in the run's provenance).

    Parameters
    ----------
    min_z_factor
        ``low_z_factor`` below this Z'-factor (0.5: the conventional limit of an excellent assay).
    min_edge_effect, edge_z
        ``edge_effect`` when a plate's edge effect (edge / interior, :mod:`doseatlas.spatial`) is below
        ``min_edge_effect`` and its log is more than ``edge_z`` standard errors below 0.
    signal_increase
        ``signal_increase`` when the median relative viability at the top dose exceeds 1 + this.
    discordant_fold
        ``readout_discordant`` on concentrations only when the intervals of two readouts are more than this factor
        apart (each widened by it: 2 = beyond a two-fold difference); other metrics compare their intervals.
    """

    min_z_factor: float = 0.5
    min_edge_effect: float = 0.95
    edge_z: float = 2.5
    signal_increase: float = 0.2
    discordant_fold: float = 2.0

    def __post_init__(self) -> None:
        if not self.discordant_fold >= 1:
            raise ConfigError(f"flags: discordant_fold must be >= 1, got {self.discordant_fold}")
        for name in ("min_z_factor", "min_edge_effect", "edge_z", "signal_increase"):
            value = getattr(self, name)
            if not np.isfinite(value):
                raise ConfigError(f"flags: {name} must be a finite number, got {value}")
        if not 0 < self.min_edge_effect <= 1:
            raise ConfigError(f"flags: min_edge_effect must be in (0, 1], got {self.min_edge_effect}")
        if self.signal_increase < 0:
            raise ConfigError(f"flags: signal_increase must be >= 0, got {self.signal_increase}")


def has_flag(flags: pd.Series, code: str) -> pd.Series:
    """True where the ``flags`` strings contain ``code`` (a whole code, not a prefix)."""
    if code not in FLAG_CODES:
        raise ConfigError(f"unknown flag {code!r}; flags: {', '.join(FLAG_CODES)}")
    text = SEPARATOR + flags.fillna("").astype(str) + SEPARATOR
    return text.str.contains(SEPARATOR + code + SEPARATOR, regex=False).astype(bool)


def join_flags(raised: dict[str, np.ndarray], n: int) -> np.ndarray:
    """The ``flags`` strings of ``n`` rows from a boolean array per code (codes sorted, ``;``-joined): each row's
    set of codes as bits of one number, each string built once per set."""
    codes = sorted(raised)
    if len(codes) > 16:  # (a table of every set would be too large)
        out = np.full(n, "", dtype=object)
        for code in codes:
            hit = np.asarray(raised[code], dtype=bool)
            out[hit] = np.where(out[hit] == "", code, out[hit] + SEPARATOR + code)
        return out
    text, bits = _flag_sets(raised, codes, n)
    return np.array(text, dtype=object)[bits]


def _flag_sets(raised: dict[str, np.ndarray], codes: list[str], n: int) -> tuple[list[str], np.ndarray]:
    """(the ``flags`` string of every set of ``codes``, the set of each of ``n`` rows as bits of one number)."""
    bits = np.zeros(n, dtype=np.int64)
    for i, code in enumerate(codes):
        bits |= np.asarray(raised[code], dtype=bool).astype(np.int64) << i
    text = [SEPARATOR.join(c for i, c in enumerate(codes) if s >> i & 1) for s in range(2 ** len(codes))]
    return text, bits


def _flags_column(raised: dict[str, np.ndarray], n: int) -> pd.Series | np.ndarray:
    """The ``flags`` column of ``n`` (> 0) rows, as :func:`join_flags` makes it and the column type pandas gives
    those strings (its string dtype): the strings of every set of codes converted once, then taken to the rows."""
    codes = sorted(raised)
    if len(codes) > 16:
        return join_flags(raised, n)
    text, bits = _flag_sets(raised, codes, n)
    return pd.Series(pd.array(text, dtype=pd.StringDtype(na_value=np.nan)).take(bits))


def flag_metrics(
    metrics: pd.DataFrame,
    *,
    responses: pd.DataFrame,
    plates: pd.DataFrame,
    dependence: pd.DataFrame,
    curves: pd.DataFrame | None = None,
    options: FlagOptions | None = None,
    interference: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """``metrics`` with the ``flags`` column (replaced when present); see :data:`FLAGS`. ``interference``: the
    run's interference table (:mod:`doseatlas.interference`; none: no compound-only wells). Without ``curves``
    (the run's curves table) ``bound_limited`` is not raised."""
    from doseatlas.interference import interfering_compounds
    from doseatlas.readouts import caveat_rows

    options = options or FlagOptions()
    metrics = S.with_series(metrics.drop(columns=[S.FLAGS], errors="ignore")).reset_index(drop=True)
    n = len(metrics)
    raised = {
        FlagCode.TIME_DEPENDENT: _time_dependent(metrics, dependence),
        FlagCode.READOUT_DISCORDANT: readout_discordant(metrics, fold=options.discordant_fold),
        FlagCode.READOUT_INTERFERENCE: _rows_of(
            metrics,
            interfering_compounds(interference if interference is not None else pd.DataFrame()),
            [S.DATASET, S.READOUT, S.DURATION_H, S.PERTURBATION_TYPE, S.PERTURBAGEN],
        ),
        FlagCode.READOUT_CAVEAT: per_distinct(metrics, [S.READOUT, S.METRIC], caveat_rows),
        **_curve_flags(metrics, responses, plates, options=options),
        FlagCode.BOUND_LIMITED: bound_limited(metrics, curves),
    }
    metrics[S.FLAGS] = _flags_column(raised, n) if n else np.array([], dtype=object)
    return metrics


def bound_limited(metrics: pd.DataFrame, curves: pd.DataFrame | None) -> np.ndarray:
    """True for estimated metric rows of a fitted kind whose curve (``curve_id``) has a parameter on a bound."""
    from doseatlas.fit.table import AT_BOUND
    from doseatlas.metrics.registry import METRICS

    none = np.zeros(len(metrics), dtype=bool)
    if curves is None or AT_BOUND not in curves or S.CURVE_ID not in metrics or not len(metrics):
        return none
    bound = curves.loc[curves[AT_BOUND].fillna("").astype(str).ne(""), S.CURVE_ID]
    fitted = {m.name for m in METRICS if m.kind in ("threshold", "midpoint", "parameter", "area")} - {
        "gr_aoc"
    }
    metric, names = pd.factorize(metrics[S.METRIC], use_na_sentinel=True)
    kind = np.array([name in fitted for name in names] + [False], dtype=bool)[
        metric
    ]  # (-1: a missing metric)
    rows = np.flatnonzero(kind & _status_is(metrics)(S.MetricStatus.ESTIMATED.value))
    out = none.copy()
    out[rows] = _is_in(metrics[S.CURVE_ID], rows, bound)  # the curve asked of these rows only
    return out


def _is_in(values: pd.Series, rows: np.ndarray, found: pd.Series) -> np.ndarray:
    """``values.iloc[rows].isin(set(found))``: by pyarrow's ``is_in`` where both are pandas' string dtype without a
    missing value (pandas' own isin of that dtype converts every value to a Python object first)."""
    text = pd.StringDtype("pyarrow", na_value=np.nan)
    if values.dtype == text and found.dtype == text and not values.hasnans and not found.hasnans:
        import pyarrow as pa
        import pyarrow.compute as pc

        value_set = pa.chunked_array(found.array.__arrow_array__()).combine_chunks()
        taken = values.array.__arrow_array__().take(pa.array(rows, type=pa.int64()))
        return pc.is_in(taken, value_set=value_set).to_numpy(zero_copy_only=False)
    return values.iloc[rows].isin(set(found)).to_numpy()


def _rows_of(metrics: pd.DataFrame, keys: pd.DataFrame, on: list[str]) -> np.ndarray:
    """True for the metric rows whose ``on`` columns match a row of ``keys``."""
    if not len(keys) or not len(metrics):
        return np.zeros(len(metrics), dtype=bool)
    # both sides numbered together (missing values match, as in a merge) instead of an object copy and a merge
    (rows, found), n = joint_codes([metrics, keys], [on, on])
    hit = np.zeros(n, dtype=bool)
    hit[found] = True
    return hit[rows]


def _time_dependent(metrics: pd.DataFrame, dependence: pd.DataFrame) -> np.ndarray:
    if not len(dependence) or TIME_DEPENDENT not in dependence:
        return np.zeros(len(metrics), dtype=bool)
    dependent = S.with_series(dependence[dependence[TIME_DEPENDENT].astype(bool)])
    return _rows_of(metrics, dependent, PAIR_KEY)


def _intervals(metrics: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each row's interval: estimated [lower, upper] (everything without one), censored up to / from its bound."""
    St = S.MetricStatus
    status = _status_is(metrics)
    lower, upper = metrics[S.LOWER].to_numpy(float), metrics[S.UPPER].to_numpy(float)
    lo = np.where(np.isnan(lower), -np.inf, lower)
    hi = np.where(np.isnan(upper), np.inf, upper)
    right, left = status(St.RIGHT_CENSORED.value), status(St.LEFT_CENSORED.value)
    lo, hi = np.where(left, -np.inf, lo), np.where(right, np.inf, hi)
    refused = status(St.REFUSED.value) | ~(right | left | status(St.ESTIMATED.value))
    return np.where(refused, np.nan, lo), np.where(refused, np.nan, hi)


def _status_is(metrics: pd.DataFrame):
    """A test ``value -> True for the rows whose status is value``, on the status column factorized once."""
    codes, uniques = pd.factorize(metrics[S.STATUS], use_na_sentinel=True)
    distinct = np.asarray(uniques, dtype=object)

    def status(value: str) -> np.ndarray:
        return np.append(distinct == value, False)[codes]  # (code -1, a missing status: never equal)

    return status


def readout_discordant(metrics: pd.DataFrame, *, fold: float = 1.0) -> np.ndarray:
    """True for metric rows whose interval does not meet that of the same metric by another readout (any data
    set: :data:`READOUT_PAIR_KEY`); rows of the same readout are not compared with each other. ``fold``: the
    intervals of concentration metrics are widened by this factor on each side first."""
    from doseatlas.metrics.registry import MOLAR, REGISTRY

    if not len(metrics):
        return np.zeros(0, dtype=bool)
    lo, hi = _intervals(metrics)
    metric, names = pd.factorize(metrics[S.METRIC], use_na_sentinel=True)
    molar_names = np.array([n in REGISTRY and REGISTRY[n].unit == MOLAR for n in names] + [False])
    molar = molar_names[metric]  # (code -1, a missing metric: the last entry)
    lo, hi = np.where(molar, lo / fold, lo), np.where(molar, hi * fold, hi)
    group = _pair_groups(metrics, np.where(metric < 0, len(names), metric), len(names) + 1)
    readout, readouts = factorize(metrics[S.READOUT])
    used = ~np.isnan(lo) & (readout >= 0)  # rows of a missing readout are not compared
    if not used.any():
        return np.zeros(len(metrics), dtype=bool)
    readout = np.where(readout < 0, len(readouts), readout)
    coded = [(group, int(group.max()) + 1), (readout, len(readouts) + 1)]
    pair, (pair_group, _) = combine(coded, len(metrics))
    pair_lo = pd.Series(lo[used]).groupby(pair[used]).max()  # each readout of a group: its intervals' overlap
    pair_hi = pd.Series(hi[used]).groupby(pair[used]).min()
    if np.bincount(pair_group[pair_lo.index]).max() < 2:  # no group has two readouts: nothing to compare
        return np.zeros(len(metrics), dtype=bool)
    o_lo = _others(pair_group[pair_lo.index], pair_lo.to_numpy(float), np.maximum)
    o_hi = _others(pair_group[pair_hi.index], pair_hi.to_numpy(float), np.minimum)
    other_lo = np.full(len(pair_group), np.nan)
    other_hi = np.full(len(pair_group), np.nan)
    other_lo[pair_lo.index], other_hi[pair_hi.index] = o_lo, o_hi
    with np.errstate(invalid="ignore"):
        apart = (other_lo[pair] > hi) | (other_hi[pair] < lo)
    return used & apart


def _pair_groups(metrics: pd.DataFrame, metric: np.ndarray, n_metrics: int) -> np.ndarray:
    """The number of each row's :data:`READOUT_PAIR_KEY` (``metric``: the metric codes, missing included): its
    columns but the metric coded on the rows that start a run (a table in curve order: one run per curve), then
    combined with the metric's codes (which change from row to row)."""
    pair_key = [c for c in READOUT_PAIR_KEY if c != S.METRIC]
    (rest,), n_rest = run_joint_codes([metrics], [pair_key])
    group, _ = combine([(rest, max(n_rest, 1)), (metric, n_metrics)], len(metrics))
    return group


def _others(group: np.ndarray, values: np.ndarray, best: np.ufunc) -> np.ndarray:
    """For each entry: ``best`` (np.maximum or np.minimum) of the values of the other entries of its group
    (NaN for an entry alone in its group); ``group`` sorted ascending."""
    sign = 1.0 if best is np.maximum else -1.0
    order = np.lexsort((-sign * values, group))  # per group, the best value first
    g, v = group[order], values[order]
    start = np.r_[True, g[1:] != g[:-1]]
    first = np.flatnonzero(start)
    size = np.diff(np.r_[first, len(g)])
    top = np.repeat(v[first], size)
    second = np.repeat(np.where(size > 1, v[np.minimum(first + 1, len(v) - 1)], np.nan), size)
    out = np.empty(len(values))
    out[order] = np.where(start, second, top)
    return out


def _curve_flags(
    metrics: pd.DataFrame, responses: pd.DataFrame, plates: pd.DataFrame, *, options: FlagOptions
) -> dict[str, np.ndarray]:
    """Flags raised on a curve (all its metric rows): from its plates and its responses (the curve keys of the
    metrics and the wells numbered once, together: a curve is flagged by an index into its flags)."""
    none = np.zeros(len(metrics), dtype=bool)
    out = {FlagCode.EDGE_EFFECT: none, FlagCode.LOW_Z_FACTOR: none, FlagCode.SIGNAL_INCREASE: none}
    if not len(responses) or not len(metrics):
        return out
    wells = S.with_series(responses).rename(columns={S.TIME_H: S.DURATION_H})
    curve = list(S.CURVE_KEY)
    # (both tables come in curve order: their curve keys are coded on the rows that start a run)
    (metric_curve, well_curve), n_curves = run_joint_codes([S.with_series(metrics), wells], [curve, curve])
    if len(plates) and S.PLATE in wells and all(c in plates for c in PLATE_KEY):
        bad = plate_flags(plates, options=options)
        if len(bad):
            out.update(_bad_plate_flags(wells, bad, well_curve, metric_curve, n_curves))
    rising = _signal_increase(wells, well_curve, options=options)
    hit = np.zeros(n_curves, dtype=bool)
    hit[rising] = True
    out[FlagCode.SIGNAL_INCREASE] = hit[metric_curve]
    return out


def _bad_plate_flags(
    wells: pd.DataFrame, bad: pd.DataFrame, well_curve: np.ndarray, metric_curve: np.ndarray, n_curves: int
) -> dict[str, np.ndarray]:
    """``edge_effect`` and ``low_z_factor`` of the metric rows: raised on every curve with a well on a flagged plate
    (``bad``, from :func:`plate_flags`). Only the wells whose plate name is one of the flagged plates' are matched
    on the whole plate key (the others cannot be on a flagged plate)."""
    on = [S.DURATION_H if c == S.TIME_H else c for c in PLATE_KEY]
    plate = wells[S.PLATE]
    named = np.flatnonzero((plate.isin(bad[S.PLATE].unique()) | plate.isna()).to_numpy(bool))
    # (missing plates kept: missing values match in joint_codes)
    (well_plate, bad_plate), n_plates = joint_codes([wells.iloc[named], bad], [on, PLATE_KEY])
    out = {}
    for code in (FlagCode.EDGE_EFFECT, FlagCode.LOW_Z_FACTOR):
        plate_hit = np.zeros(n_plates, dtype=bool)
        plate_hit[bad_plate[bad[code].to_numpy(bool)]] = True
        hit = np.zeros(n_curves, dtype=bool)
        hit[well_curve[named[plate_hit[well_plate]]]] = True
        out[code] = hit[metric_curve]
    return out


def plate_flags(plates: pd.DataFrame, *, options: FlagOptions) -> pd.DataFrame:
    """The plates (``PLATE_KEY``) with ``edge_effect`` or ``low_z_factor`` raised, and which."""
    from doseatlas.qc import Z_FACTOR
    from doseatlas.spatial import EDGE_EFFECT, EDGE_EFFECT_SE

    def column(name: str) -> pd.Series:
        return plates[name].astype(float) if name in plates else pd.Series(np.nan, index=plates.index)

    edge, se, z = column(EDGE_EFFECT), column(EDGE_EFFECT_SE), column(Z_FACTOR)
    with np.errstate(divide="ignore", invalid="ignore"):
        clear = np.log(edge) / se < -options.edge_z
    flagged = plates[PLATE_KEY].assign(
        **{
            FlagCode.EDGE_EFFECT: ((edge < options.min_edge_effect) & clear).to_numpy(),
            FlagCode.LOW_Z_FACTOR: (z < options.min_z_factor).to_numpy(),
        }
    )
    return flagged[flagged[FlagCode.EDGE_EFFECT] | flagged[FlagCode.LOW_Z_FACTOR]]


def _signal_increase(wells: pd.DataFrame, curve: np.ndarray, *, options: FlagOptions) -> np.ndarray:
    """The curves (``curve``: the curve number of every well) whose median relative viability at the highest
    concentration exceeds 1 + the margin."""
    if S.RELATIVE_VIABILITY not in wells:
        return np.zeros(0, dtype=np.int64)
    viability = wells[S.RELATIVE_VIABILITY].to_numpy(float)
    usable = ~np.isnan(viability)
    codes, dose = curve[usable], wells[S.CONCENTRATION].to_numpy(float)[usable]
    top = pd.Series(dose).groupby(codes).transform("max").to_numpy(float)
    at_top = dose == top
    median = pd.Series(viability[usable][at_top]).groupby(codes[at_top]).median()
    return median.index[median > 1.0 + options.signal_increase].to_numpy(np.int64)


def flag_counts(metrics: pd.DataFrame) -> dict[str, int]:
    """Metric rows carrying each flag code (``summary.json``; codes in declaration order, zeros left out)."""
    if S.FLAGS not in metrics or not len(metrics):
        return {}
    distinct = metrics[S.FLAGS].value_counts(dropna=False)  # each distinct flags string tested once
    texts = pd.Series(distinct.index, dtype=object)
    counts = {code: int(distinct.to_numpy()[has_flag(texts, code).to_numpy()].sum()) for code in FLAG_CODES}
    return {code: n for code, n in counts.items() if n}
