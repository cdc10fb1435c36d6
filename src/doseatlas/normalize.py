"""Normalization onto the response scales the data can really support.

Per plate, per cell line, per read time (and readout):

* background = mean of blank wells on the plate (absent -> 0, recorded as null); a time-zero plate without
  blanks takes the blanks of its plate set (same data set, cell line and readout: :func:`time_zero_background`);
* relative viability ``RV = (x - blank) / (vehicle - blank)``: needs vehicle wells;
* NCI-60 percent growth ``PG = 100 (Ti - Tz)/(C - Tz)`` if ``Ti >= Tz`` else ``100 (Ti - Tz)/Tz``:
  needs time-zero reads;
* GR value ``GR = 2^(log2(x/x0) / log2(x_ctrl/x0)) - 1`` (Hafner et al. 2016): needs time-zero
  reads, or a user-supplied doubling time Td, then ``GR = 2 RV^(Td/T) - 1``.

Time-zero reads are matched to a treated plate first on the same plate, else on the time-zero
plates of the same data set, cell line and readout (the scope used is recorded). Responses are
never clipped; where a scale is not computable the row's ``<scale>_reason`` says why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import special

from doseatlas import schemas as S
from doseatlas._codes import combine, text_column
from doseatlas._stats import group_summary
from doseatlas.errors import ConfigError

Why = S.RefusalReason
PLATE_KEY = [S.DATASET, S.PLATE, S.CELL_LINE, S.TIME_H, S.READOUT]
#: controls are summarized per seeding density too: wells seeded at different densities are never pooled
#: (blanks, cell-free, are not: they hold no cells)
CONTROL_KEY = [*PLATE_KEY, S.SEEDING_DENSITY]
T0_KEY = [S.DATASET, S.CELL_LINE, S.READOUT, S.SEEDING_DENSITY]
CONTROL_SUMMARIES = ("trimmed_mean", "median", "mean")
T0_SCOPE = "time_zero_scope"


@dataclass(frozen=True)
class NormalizationOptions:
    """Options of :func:`normalize` (recorded in the run provenance).

    Parameters
    ----------
    control_summary
        Robust summary of vehicle and time-zero wells: ``trimmed_mean`` (25% cut at each end,
        the interquartile mean; plain mean for fewer than 4 wells), ``median`` or ``mean``.
    doubling_times
        Optional ``{cell_line: hours}`` used for GR where no time-zero read exists.
    doubling_time_source
        Free text naming where the doubling times come from (recorded per row).
    doubling_time_sources
        Optional ``{cell_line: source}`` for cell lines whose doubling time comes from elsewhere than
        ``doubling_time_source`` (e.g. the reader's annotation file, see
        :func:`doseatlas.pipeline.with_reader_metadata`).
    dataset_doubling_times, dataset_doubling_time_sources
        Optional ``{dataset: {cell_line: hours}}`` and ``{dataset: source text}``: doubling times that apply to
        one data set only (a study manifest's per-source tables); they take precedence over ``doubling_times``
        for the cell lines they list.
    """

    control_summary: str = "trimmed_mean"
    doubling_times: Mapping[str, float] | None = None
    doubling_time_source: str = "user"
    doubling_time_sources: Mapping[str, str] | None = None
    dataset_doubling_times: Mapping[str, Mapping[str, float]] | None = None
    dataset_doubling_time_sources: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        if self.control_summary not in CONTROL_SUMMARIES:
            raise ConfigError(
                f"control_summary must be one of {', '.join(CONTROL_SUMMARIES)}, got {self.control_summary!r}"
            )
        tables = [self.doubling_times or {}, *(self.dataset_doubling_times or {}).values()]
        for line, td in (item for table in tables for item in table.items()):
            if not (np.isfinite(td) and td > 0):
                raise ConfigError(f"doubling time of {line!r} must be a positive number of hours, got {td!r}")


def _grouped_median(group: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """``np.median`` of ``values`` per group id (0..n_groups-1), bit for bit; NaN for an empty group or one
    holding a NaN (as ``np.median``)."""
    order = np.lexsort((values, group))
    v, g = values[order], group[order]
    counts = np.bincount(g, minlength=n_groups)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    lo, hi = start + (counts - 1) // 2, start + counts // 2
    ok = counts > 0
    out = np.full(n_groups, np.nan)
    out[ok] = (v[lo[ok]] + v[hi[ok]]) / 2.0  # the mean of the middle one or two, as np.median takes it
    odd = ok & (counts % 2 == 1)
    out[odd] = v[lo[odd]]
    out[np.bincount(g, weights=np.isnan(v), minlength=n_groups) > 0] = np.nan
    return out


def robust_spread(grouped) -> pd.Series:
    """``scipy.stats.median_abs_deviation(values, scale="normal")`` per group of ``grouped`` (a pandas
    SeriesGroupBy), NaN for a group of fewer than two values; grouped numpy, no Python call per group."""
    group = grouped.ngroup().to_numpy()
    size = grouped.size()
    values = grouped.obj.to_numpy(float)
    median = _grouped_median(group, values, len(size))
    mad = _grouped_median(group, np.abs(values - median[group]), len(size)) / special.ndtri(0.75)
    return pd.Series(np.where(size.to_numpy() > 1, mad, np.nan), index=size.index, name=grouped.obj.name)


def control_summaries(keys: pd.DataFrame, roles: _Roles, *, options: NormalizationOptions) -> pd.DataFrame:
    """Per plate key and seeding density (each row of ``keys``, distinct :data:`CONTROL_KEY` values): blank
    mean (per plate key), vehicle summary and spread, counts (background-subtracted)."""
    blank_rows = roles.rows(S.Role.BLANK)
    blanks = group_summary(blank_rows, PLATE_KEY, S.SIGNAL, method="mean").rename(S.BLANK_SIGNAL)
    vehicle_rows = roles.rows(S.Role.VEHICLE)
    veh = vehicle_rows.groupby(CONTROL_KEY, dropna=False)[S.SIGNAL]
    vehicle = pd.DataFrame(
        {
            "_vehicle_raw": group_summary(
                vehicle_rows, CONTROL_KEY, S.SIGNAL, method=options.control_summary
            ),
            S.VEHICLE_SPREAD: robust_spread(veh),
            S.N_VEHICLE: veh.size(),
        }
    )
    out = keys.merge(blanks.reset_index(), on=PLATE_KEY, how="left")
    out = out.merge(vehicle.reset_index(), on=CONTROL_KEY, how="left")
    out[S.N_VEHICLE] = out[S.N_VEHICLE].fillna(0).astype("int64")
    out[S.VEHICLE_SIGNAL] = out["_vehicle_raw"] - out[S.BLANK_SIGNAL].fillna(0.0)
    return out.drop(columns="_vehicle_raw")


def time_zero_summaries(roles: _Roles, *, options: NormalizationOptions) -> tuple[pd.DataFrame, ...]:
    """Background-subtracted time-zero summaries, per plate and per (data set, cell line, readout)."""
    t0 = roles.rows(S.Role.TIME_ZERO)
    background = time_zero_background(roles.rows(S.Role.BLANK), t0)
    t0 = t0.assign(_x=t0[S.SIGNAL] - background.fillna(0.0).to_numpy())
    per_plate = _t0_table(
        t0, [S.DATASET, S.PLATE, S.CELL_LINE, S.READOUT, S.SEEDING_DENSITY], options, scope="plate"
    )
    per_line = _t0_table(t0, T0_KEY, options, scope="dataset")
    return per_plate, per_line


#: where a time-zero read's background comes from, first match wins (docs/plates.md, issue 14 item 7)
T0_BLANK_SCOPES: tuple[tuple[list[str], bool], ...] = (
    ([S.DATASET, S.PLATE, S.READOUT], True),  # blanks read at time zero on the same plate
    ([S.DATASET, S.CELL_LINE, S.READOUT], False),  # the plate set: this cell line's plates' blanks, any read
)


def time_zero_background(blanks: pd.DataFrame, t0: pd.DataFrame) -> pd.Series:
    """Background of each time-zero row (index of ``t0``; NaN where no blank applies: 0 is subtracted then),
    from the blank wells ``blanks``.

    The blank mean of the same plate read at time zero; a time-zero plate without blanks takes the blanks of
    its plate set (the plates of the same data set, cell line and readout: the mean of their per-plate blank
    means, any read time). Not wider: a partitioned run (scale.py) keeps a cell line's plates together, not a
    data set's, and both engines must give the same numbers. Blanks hold no cells, so the same readout's
    blanks measure the same medium-and-reagent background at any time: without them the time-zero signal keeps
    its background while the treated wells lose theirs, which biases percent growth and GR near zero growth.
    """
    background = pd.Series(np.nan, index=t0.index)
    per_plate = group_summary(blanks, PLATE_KEY, S.SIGNAL, method="mean").rename("_b").reset_index()
    for key, at_zero in T0_BLANK_SCOPES:
        source = blanks[blanks[S.TIME_H] == 0] if at_zero else per_plate
        column = S.SIGNAL if at_zero else "_b"
        if not len(source):
            continue
        means = group_summary(source, key, column, method="mean").rename("_m").reset_index()
        got = t0[key].merge(means, on=key, how="left")["_m"].to_numpy()
        background = background.fillna(pd.Series(got, index=t0.index))
    return background


def _t0_table(t0: pd.DataFrame, key: list[str], options: NormalizationOptions, *, scope: str) -> pd.DataFrame:
    grouped = t0.groupby(key, dropna=False)["_x"]
    table = pd.DataFrame(
        {
            S.TIME_ZERO_SIGNAL: group_summary(t0, key, "_x", method=options.control_summary),
            S.N_TIME_ZERO: grouped.size(),
        }
    ).reset_index()
    table[T0_SCOPE] = scope
    return table


def normalize(
    clean: pd.DataFrame,
    *,
    options: NormalizationOptions | None = None,
    codes: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> pd.DataFrame:
    """Compute relative viability, percent growth and GR value for every treated well.

    Parameters
    ----------
    clean
        Validated well table (:func:`doseatlas.validate.validate_wells`).
    options
        :class:`NormalizationOptions`; defaults when omitted.
    codes
        Text columns of ``clean`` already factorized (column -> (code per row, distinct texts), as
        :attr:`doseatlas.validate.ValidationResult.codes` gives them): used instead of factorizing them again.

    Returns
    -------
    pandas.DataFrame
        One row per treated well: identifiers, ``signal``, control summaries, the three
        response columns and, for each, a ``<scale>_reason`` column (null where computed).
    """
    options = options or NormalizationOptions()
    clean = S.with_series(clean)
    given = {c: v for c, v in (codes or {}).items() if len(v[0]) == len(clean)}
    roles = _Roles(clean, given.get(S.ROLE))
    is_treated = roles.mask(S.Role.TREATED)
    treated = clean[is_treated]
    codes, first = _control_groups(treated, {c: v[is_treated] for c, (v, _) in given.items()})
    groups = treated[CONTROL_KEY].iloc[first].reset_index(drop=True)  # each treated plate key once
    plates = control_summaries(groups, roles, options=options)
    per_plate, per_line = time_zero_summaries(roles, options=options)
    summaries = _attach_time_zero(groups.merge(plates, on=CONTROL_KEY, how="left"), per_plate, per_line)
    # (as a merge of every treated row with the summaries of its key: the left rows in order, then the columns)
    summaries = summaries.drop(columns=CONTROL_KEY).take(codes).reset_index(drop=True)
    treated = pd.concat([treated.reset_index(drop=True), summaries], axis=1)
    x = treated[S.SIGNAL] - treated[S.BLANK_SIGNAL].fillna(0.0)
    coded = _responses(x, treated, options=options)
    responses = {c: v.column() if isinstance(v, _Coded) else v for c, v in coded.items()}
    if set(responses) & set(treated.columns):  # (a column replaced in place, as ``assign`` replaces it)
        return treated.assign(**responses).drop(columns=[S.ROLE])
    return pd.concat([treated.drop(columns=[S.ROLE]), pd.DataFrame(responses, index=treated.index)], axis=1)


class _Roles:
    """The rows of a well table by role (the role column compared once per distinct role)."""

    def __init__(self, clean: pd.DataFrame, coded: tuple[np.ndarray, np.ndarray] | None = None):
        self.clean = clean
        if coded is None:
            coded = pd.factorize(clean[S.ROLE].to_numpy(), use_na_sentinel=False)
        self.codes, self.uniques = coded[0], np.asarray(coded[1], dtype=object)
        self._rows: dict[str, pd.DataFrame] = {}

    def mask(self, role: str) -> np.ndarray:
        return (self.uniques == role)[self.codes] if len(self.uniques) else np.zeros(0, dtype=bool)

    def rows(self, role: str) -> pd.DataFrame:
        """The rows of ``role`` (as ``clean[clean[role column] == role]``; selected once per role)."""
        if role not in self._rows:
            self._rows[role] = self.clean[self.mask(role)]
        return self._rows[role]


def _control_groups(table: pd.DataFrame, given: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(code per row, position of each code's first row) of the :data:`CONTROL_KEY` values of ``table``
    (values equal as ``merge`` matches them, missing equal to missing): the columns' codes combined
    (:func:`doseatlas._codes.combine`); a column of ``given`` (codes of its distinct values) is not factorized
    again."""

    def coded(column: str) -> tuple[np.ndarray, int]:
        if column in given:
            code = np.asarray(given[column])
        else:
            code = pd.factorize(table[column].to_numpy(), use_na_sentinel=False)[0]
        return code, int(code.max(initial=0)) + 1

    group, _ = combine((coded(c) for c in CONTROL_KEY), len(table))  # (one column at a time in memory)
    return group, np.unique(group, return_index=True)[1]


def responses_from_signal(
    x: pd.Series, treated: pd.DataFrame, *, options: NormalizationOptions | None = None
) -> dict[str, pd.Series | np.ndarray]:
    """The response columns (the three scales, their reasons, the GR source and doubling time) of treated rows
    whose control summaries are attached (a responses table), from background-subtracted signals ``x`` (e.g.
    less a compound's own signal: :mod:`doseatlas.interference`); the formulas of :func:`normalize`."""
    coded = _responses(x, treated, options=options or NormalizationOptions())
    return {c: v.objects() if isinstance(v, _Coded) else v for c, v in coded.items()}


def _responses(
    x: pd.Series, treated: pd.DataFrame, *, options: NormalizationOptions
) -> dict[str, pd.Series | np.ndarray | _Coded]:
    """The response columns of :func:`responses_from_signal`, the reasons and sources by codes."""
    return {
        **_relative_viability(x, treated),
        **_percent_growth(x, treated),
        **_gr(x, treated, options=options),
    }


def _attach_time_zero(treated: pd.DataFrame, per_plate: pd.DataFrame, per_line: pd.DataFrame) -> pd.DataFrame:
    plate_key = [S.DATASET, S.PLATE, S.CELL_LINE, S.READOUT, S.SEEDING_DENSITY]
    # only the keys go into each merge (one row per treated row: the summaries are unique per key)
    on_plate = treated[plate_key].merge(per_plate, on=plate_key, how="left")
    by_line = treated[T0_KEY].merge(per_line, on=T0_KEY, how="left")
    use_plate = on_plate[S.N_TIME_ZERO].notna().to_numpy()
    for column in (S.TIME_ZERO_SIGNAL, S.N_TIME_ZERO, T0_SCOPE):
        treated[column] = np.where(use_plate, on_plate[column], by_line[column])
    treated[S.N_TIME_ZERO] = pd.to_numeric(treated[S.N_TIME_ZERO]).fillna(0).astype("int64")
    treated[S.TIME_ZERO_SIGNAL] = pd.to_numeric(treated[S.TIME_ZERO_SIGNAL]).astype(float)
    return treated


class _Coded(NamedTuple):
    """A text column by codes: ``texts[code]`` per row, code -1 for None."""

    codes: np.ndarray
    texts: tuple[str, ...]

    def objects(self) -> np.ndarray:
        """The object array of the texts and None."""
        return np.array([*self.texts, None], dtype=object)[self.codes]

    def column(self) -> np.ndarray | pd.api.extensions.ExtensionArray:
        """The column a table makes of :meth:`objects` (:func:`doseatlas._codes.text_column`)."""
        return text_column(self.codes, self.texts)


def _reason(conditions: list[tuple[pd.Series | np.ndarray, S.RefusalReason]], n: int) -> _Coded:
    """First applicable reason per row (None where none applies)."""
    codes = np.full(n, -1, dtype=np.int8)
    for i, (mask, _) in reversed(list(enumerate(conditions))):
        codes[np.asarray(mask, dtype=bool)] = i
    return _Coded(codes, tuple(why.value for _, why in conditions))


def _none(reason: _Coded) -> np.ndarray:
    """Where :func:`_reason` found no reason."""
    return reason.codes < 0


def _relative_viability(x: pd.Series, t: pd.DataFrame) -> dict[str, pd.Series]:
    control = t[S.VEHICLE_SIGNAL]
    no_vehicle = t[S.N_VEHICLE].eq(0).to_numpy()
    bad_control = ~no_vehicle & ~(control > 0).to_numpy()
    reason = _reason([(no_vehicle, Why.NO_VEHICLE_CONTROL), (bad_control, Why.NON_POSITIVE_SIGNAL)], len(t))
    rv = (x / control).where(_none(reason))
    return {S.RELATIVE_VIABILITY: rv, S.reason_column(S.RELATIVE_VIABILITY): reason}


def _percent_growth(x: pd.Series, t: pd.DataFrame) -> dict[str, pd.Series]:
    tz, control = t[S.TIME_ZERO_SIGNAL], t[S.VEHICLE_SIGNAL]
    no_vehicle = t[S.N_VEHICLE].eq(0).to_numpy()
    no_t0 = t[S.N_TIME_ZERO].eq(0).to_numpy()
    bad_t0 = ~no_t0 & ~(tz > 0).to_numpy()
    no_growth = ~no_t0 & ~no_vehicle & ~(control > tz).to_numpy()
    reason = _reason(
        [
            (no_t0, Why.NO_TIME_ZERO),
            (no_vehicle, Why.NO_VEHICLE_CONTROL),
            (bad_t0, Why.NON_POSITIVE_SIGNAL),
            (no_growth, Why.NO_GROWTH_IN_CONTROL),
        ],
        len(t),
    )
    growth = 100.0 * (x - tz) / (control - tz)
    death = 100.0 * (x - tz) / tz
    pg = growth.where(x >= tz, death).where(_none(reason))
    return {S.PERCENT_GROWTH: pg, S.reason_column(S.PERCENT_GROWTH): reason}


def _read_time(t: pd.DataFrame) -> pd.Series:
    """The actual read time (``read_time_h``, kept beside the nominal ``time_h``), for growth over time."""
    return t[S.READ_TIME_H] if S.READ_TIME_H in t else t[S.TIME_H]


def _gr(x: pd.Series, t: pd.DataFrame, *, options: NormalizationOptions) -> dict[str, pd.Series]:
    tz, control = t[S.TIME_ZERO_SIGNAL], t[S.VEHICLE_SIGNAL]
    has_t0 = t[S.N_TIME_ZERO].gt(0).to_numpy()
    td, td_source = _doubling_times(t, options=options)
    use_td = ~has_t0 & td.notna().to_numpy()
    no_vehicle = t[S.N_VEHICLE].eq(0).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        gr_t0 = 2.0 ** (np.log2(x / tz) / np.log2(control / tz)) - 1.0
        rv = x / control
        gr_td = 2.0 * rv ** (td / _read_time(t)) - 1.0
    non_positive = np.where(use_td, ~(rv > 0), ~((x > 0) & (tz > 0)))
    no_growth = has_t0 & ~(control > tz).to_numpy()
    no_duration = use_td & ~(t[S.TIME_H] > 0).to_numpy()
    reason = _reason(
        [
            (~has_t0 & ~use_td, Why.NO_TIME_ZERO),
            (no_vehicle, Why.NO_VEHICLE_CONTROL),
            (no_duration, Why.NO_DURATION),
            (no_growth, Why.NO_GROWTH_IN_CONTROL),
            (non_positive, Why.NON_POSITIVE_SIGNAL),
        ],
        len(t),
    )
    ok = _none(reason)
    gr = pd.Series(np.where(use_td, gr_td, gr_t0), index=t.index).where(ok)
    source = np.where(has_t0, 0, np.where(use_td, 1, -1)).astype(np.int8)  # time_zero, doubling_time, None
    return {
        S.GR: gr,
        S.reason_column(S.GR): reason,
        S.GR_SOURCE: _Coded(np.where(ok, source, np.int8(-1)), ("time_zero", "doubling_time")),
        S.DOUBLING_TIME_H: td.where(use_td).to_numpy(),
        S.DOUBLING_TIME_SOURCE: np.where(use_td, td_source, None),
    }


def _doubling_times(t: pd.DataFrame, *, options: NormalizationOptions) -> tuple[pd.Series, np.ndarray]:
    """Doubling time of each row's cell line and its source: the row's data set's own table first (a study
    manifest's per-source table), then the run-wide one, whose source is the cell line's own
    (``doubling_time_sources``, e.g. a reader's annotation) or ``doubling_time_source`` (one lookup per data set
    with its own table, never per row)."""
    if not (options.doubling_times or options.doubling_time_sources or options.dataset_doubling_times):
        # (no table: no row has a doubling time, every source is the run-wide one)
        return pd.Series(np.nan, index=t.index), np.full(len(t), options.doubling_time_source, dtype=object)
    td = t[S.CELL_LINE].map(dict(options.doubling_times or {})).astype(float)
    per_line = t[S.CELL_LINE].map(dict(options.doubling_time_sources or {})).astype(object)
    source = np.array(per_line.where(per_line.notna(), options.doubling_time_source), dtype=object)
    sources = options.dataset_doubling_time_sources or {}
    for dataset, table in (options.dataset_doubling_times or {}).items():
        own = t[S.CELL_LINE].map(dict(table)).astype(float).where(t[S.DATASET].eq(dataset))
        found = own.notna().to_numpy()
        td = td.where(~found, own)
        source[found] = sources.get(dataset, options.doubling_time_source)
    return td, source


def from_response_table(clean: pd.DataFrame) -> pd.DataFrame:
    """Responses table from a validated pre-normalized table (:func:`doseatlas.validate.validate_responses`).

    The response goes to the column of its declared scale; the other scales are null with the
    reason ``not_provided_by_source`` (they cannot be derived from normalized values).
    """
    out = S.with_series(clean.drop(columns=[S.RESPONSE, S.RESPONSE_SCALE]))
    for scale in S.RESPONSE_SCALES:
        given = (clean[S.RESPONSE_SCALE] == scale).to_numpy()
        out[scale] = np.where(given, clean[S.RESPONSE].to_numpy(float), np.nan)
        out[S.reason_column(scale)] = np.where(given, None, Why.NOT_PROVIDED.value)
    out[S.SIGNAL] = np.nan
    for column in (S.BLANK_SIGNAL, S.VEHICLE_SIGNAL, S.VEHICLE_SPREAD, S.TIME_ZERO_SIGNAL):
        out[column] = np.nan
    out[S.N_VEHICLE] = 0
    out[S.N_TIME_ZERO] = 0
    return out
