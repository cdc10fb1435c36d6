"""Time courses: the DIP rate of every well (Harris et al., Nat Methods 13:497-500, 2016).

The drug-induced proliferation (DIP) rate is the slope of log2(cell count) against time once the response
has settled into a steady exponential rate. Per treated well it is the least-squares slope over the reads
from a first time point on, that first point chosen as thunor chooses it (``tyson1``): among the windows
"read i to the last read" with at least 4 reads, the one that maximizes
``adjusted R^2 x (1 - RMSE)^2 x (n - 3)^(1/4)`` (windows of 3 reads score 0; the first best wins; a well with
exactly 3 reads is fitted over all of them, with 2 reads by the straight line through them). Control wells
(vehicle, untreated) are fitted over all their reads. The standard error is the slope's OLS standard error.
Units: doublings per hour.

Vectorized over wells: reads are laid out in a (wells x reads) array and every window's regression comes
from suffix sums of ``t, y, t^2, t y, y^2``; there is no loop over wells.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from doseatlas import schemas as S
from doseatlas._codes import factorize
from doseatlas._stats import group_summary

WELL_KEY = [S.DATASET, S.PLATE, S.WELL]
DIP_RATE = "dip_rate"  # doublings per hour
DIP_SE = "dip_se"
DIP_FIRST_TIME_H = "dip_first_time_h"
DIP_INTERCEPT = "dip_intercept"  # log2 cell count at t = 0 of the fitted line
N_READS = "n_reads"
_LAST_TIME = "last_time_h"
CONTROL_ROLES = (S.Role.VEHICLE.value, S.Role.UNTREATED.value)
DESCRIBE = [S.CELL_LINE, S.ROLE, S.PERTURBATION_TYPE, S.PERTURBAGEN, S.SERIES, S.CONCENTRATION, S.READOUT,
            S.SEEDING_DENSITY]  # fmt: skip


def dip_rates(reads: pd.DataFrame) -> pd.DataFrame:
    """One row per well with at least two reads after time zero: its DIP rate and the fit's details.

    Parameters
    ----------
    reads
        Canonical well rows (validated), several per well (one per read time), with ``well`` filled. Rows of
        role treated, vehicle or untreated with ``time_h > 0`` and a positive signal are used.
    """
    if not {S.ROLE, S.WELL, S.SIGNAL, S.TIME_H} <= set(reads.columns):
        return _empty()
    rows, codes = _well_rows(reads)
    if not len(rows):
        return _empty()
    # the actual read times (time_h is the nominal duration once validated)
    times = reads[S.READ_TIME_H if S.READ_TIME_H in reads else S.TIME_H].to_numpy(float)[rows]
    order = np.lexsort((times, codes))  # wells in sorted order: by well, then read time (a stable sort)
    well = codes[order]
    starts = np.flatnonzero(np.r_[True, well[1:] != well[:-1]])
    n = np.diff(np.r_[starts, len(well)])  # reads per well
    position = np.arange(len(well)) - np.repeat(starts, n)
    width = position.max() + 1
    fitted = n >= 2  # the wells of the table; the others are not fitted
    read = fitted[well]
    well = np.cumsum(fitted)[well[read]] - 1
    t = np.full((int(fitted.sum()), width), np.nan)
    y = np.full((int(fitted.sum()), width), np.nan)
    t[well, position[read]] = times[order[read]]
    y[well, position[read]] = np.log2(reads[S.SIGNAL].to_numpy(float)[rows[order[read]]])
    needed = [*WELL_KEY, *DESCRIBE]
    first = reads[[c for c in reads.columns if c in needed]].take(rows[order[starts[fitted]]])
    n = n[fitted]
    control = first[S.ROLE].isin(CONTROL_ROLES).to_numpy()
    fit = _window_fits(t, y, n, whole=control)
    out = first[[*WELL_KEY, *[c for c in DESCRIBE if c in first]]].reset_index(drop=True)
    for name, values in fit.items():
        out[name] = values
    out[N_READS] = n
    out[_LAST_TIME] = np.nanmax(t, axis=1) if len(t) else np.zeros(0)
    return out


def _well_rows(reads: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the reads used (role treated, vehicle or untreated, ``time_h > 0``, positive signal, a well
    name) and the code of their well, numbered as ``groupby(WELL_KEY, sort=True).ngroup()`` numbers them. Each
    column is coded once over the whole table (on its runs, :func:`doseatlas._codes.factorize`: data set and
    plate by their sorted codes, the well names ranked, the roles named once), the codes of the reads used read
    as the digits of one number and ranked among those present (the order of the sorted groupby)."""
    with np.errstate(invalid="ignore"):
        used = (reads[S.TIME_H].to_numpy(float) > 0) & (reads[S.SIGNAL].to_numpy(float) > 0)
    role, roles = factorize(reads[S.ROLE])
    wanted = np.array([u in (S.Role.TREATED.value, *CONTROL_ROLES) for u in roles] + [False], dtype=bool)
    names, uniques = factorize(reads[S.WELL])  # -1: no well name
    rows = np.flatnonzero(used & wanted[role] & (names >= 0))
    if not len(rows):
        return rows, names[rows]
    plate = np.zeros(len(rows), dtype=np.int64)  # the data set's and the plate's sorted codes as digits
    for column in WELL_KEY[:2]:
        codes, n_values = _sorted_codes(reads[column])
        plate = plate * (n_values + 1) + np.where(codes[rows] < 0, n_values, codes[rows])  # missing last
    rank = np.empty(len(uniques), dtype=np.int64)
    rank[pd.Series(uniques, dtype=object).sort_values(kind="stable").index.to_numpy()] = np.arange(
        len(uniques)
    )
    number = plate * len(uniques) + rank[names[rows]]
    size = (int(plate.max()) + 1) * len(uniques)
    if size > 4 * len(rows) + 4096:  # sparse: ranked by a sorted factorize
        return rows, pd.factorize(number, sort=True)[0].astype(np.int64)
    present = np.zeros(size, dtype=bool)
    present[number] = True
    return rows, (np.cumsum(present) - 1)[number]


def _sorted_codes(values: pd.Series) -> tuple[np.ndarray, int]:
    """(sorted codes, -1 where missing; how many values) of a column, found on its runs."""
    codes, uniques = factorize(values, sort=True)
    return codes, len(uniques)


def _window_fits(t: np.ndarray, y: np.ndarray, n: np.ndarray, *, whole: np.ndarray) -> dict[str, np.ndarray]:
    """Slope, SE, first time and intercept of the chosen window of every well (rows of ``t``, ``y``)."""
    valid = ~np.isnan(t)
    tz, yz = np.where(valid, t, 0.0), np.where(valid, y, 0.0)

    def suffix(a):
        return np.cumsum(a[:, ::-1], axis=1)[:, ::-1]

    sx, sy, sxx, sxy, syy = (suffix(a) for a in (tz, yz, tz * tz, tz * yz, yz * yz))
    start = np.arange(t.shape[1])[None, :]
    ns = (n[:, None] - start).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ssxx, ssyy, ssxy = sxx - sx * sx / ns, syy - sy * sy / ns, sxy - sx * sy / ns
        ok = (ns >= 2) & (ssxx > 0)
        slope = np.where(ok, ssxy / ssxx, np.nan)
        intercept = (sy - slope * sx) / ns
        r2 = np.where(ok & (ssyy > 0), ssxy * ssxy / (ssxx * ssyy), 0.0)
        adj = 1.0 - (1.0 - r2) * (ns - 1) / (ns - 2)
        resid = np.maximum(ssyy - slope * ssxy, 0.0)
        rmse = np.sqrt(resid / ns)
        score = np.where(ok & (ns > 3), adj * (1.0 - rmse) ** 2 * (ns - 3) ** 0.25, 0.0)
    candidates = (start <= (n[:, None] - 3)) | (start == 0)  # windows of >= 3 reads (the whole series always)
    score = np.where(candidates, score, -np.inf)
    best = np.where(whole | (n <= 3), 0, np.argmax(score, axis=1))
    rows = np.arange(len(n))
    pick = {k: v[rows, best] for k, v in (("slope", slope), ("icpt", intercept), ("resid", resid),
                                           ("ssxx", ssxx), ("ns", ns))}  # fmt: skip
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(pick["resid"] / ((pick["ns"] - 2) * pick["ssxx"]))
    se = np.where(pick["ns"] > 2, se, np.nan)
    return {
        DIP_RATE: pick["slope"],
        DIP_SE: se,
        DIP_FIRST_TIME_H: t[rows, best],
        DIP_INTERCEPT: pick["icpt"],
    }


def _empty() -> pd.DataFrame:
    columns = [*WELL_KEY, *DESCRIBE, DIP_RATE, DIP_SE, DIP_FIRST_TIME_H, DIP_INTERCEPT, N_READS, _LAST_TIME]
    return pd.DataFrame(columns=columns)


# ------------------------------------------------------------------------------------ DIP dose-response
def dip_responses(dip: pd.DataFrame) -> pd.DataFrame:
    """Per treated well its DIP rate over the control DIP rate, shaped like a responses table (scale
    :data:`doseatlas.schemas.DIP_RELATIVE`), with the control wells as dose-0 points of every drug curve of their
    cell line (as thunor enters them into its DIP fits; the fitted top is not fixed to 1).

    The control rate is the mean DIP rate of the vehicle and untreated wells of the data set, cell line, seeding density and
    readout. ``time_h`` is the end of the time course (the latest read of the curve's wells), so a curve's
    wells share it. Refusals: ``no_vehicle_control`` (no control well), ``no_growth_in_control`` (control rate
    <= 0), ``no_time_course`` (fewer than 3 reads).
    """
    group = [S.DATASET, S.CELL_LINE, S.READOUT, S.SEEDING_DENSITY]  # densities never pooled
    dip = S.with_series(dip)
    controls = dip[dip[S.ROLE].isin(CONTROL_ROLES) & dip[DIP_RATE].notna()]
    ctrl = group_summary(controls, group, DIP_RATE, method="mean").rename("_ctrl").reset_index()
    treated = dip[dip[S.ROLE] == S.Role.TREATED.value].merge(ctrl, on=group, how="left")
    pairs = treated[[*group, S.PERTURBATION_TYPE, S.PERTURBAGEN]].drop_duplicates()
    per_drug = (
        controls.drop(columns=[S.PERTURBATION_TYPE, S.PERTURBAGEN])
        .merge(ctrl, on=group)
        .merge(pairs, on=group)
    )
    points = pd.concat([treated, per_drug], ignore_index=True)
    points = points[points[S.PERTURBATION_TYPE].notna()].reset_index(drop=True)
    points[S.CONCENTRATION] = points[S.CONCENTRATION].where(points[S.ROLE] == S.Role.TREATED.value, 0.0)
    curve = [*group, S.PERTURBATION_TYPE, S.PERTURBAGEN, S.SERIES]  # with the density
    points[S.TIME_H] = points.groupby(curve, dropna=False)[_LAST_TIME].transform("max")
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = points[DIP_RATE] / points["_ctrl"]
    reason = np.select(
        [points["_ctrl"].isna(), ~(points["_ctrl"] > 0), points[N_READS] < 3],
        [
            S.RefusalReason.NO_VEHICLE_CONTROL.value,
            S.RefusalReason.NO_GROWTH_IN_CONTROL.value,
            S.RefusalReason.NO_TIME_COURSE.value,
        ],
        default="",
    )
    points[S.DIP_RELATIVE] = np.where(reason == "", relative, np.nan)
    points[S.reason_column(S.DIP_RELATIVE)] = pd.Series(reason, index=points.index).replace("", None)
    return points.drop(columns=["_ctrl"])


def dip_curves_and_metrics(
    dip: pd.DataFrame, *, fit_options: dict, metric_options
) -> tuple[pd.DataFrame, ...]:
    """The DIP dose-response curves (scale ``dip_relative``) and their metrics (``dip_*`` of the registry),
    in the columns of the curves and metrics tables."""
    from doseatlas.fit import fit_curves
    from doseatlas.metrics.compute import OUTPUT_COLUMNS, _scale_metrics

    responses = dip_responses(dip)
    if not len(responses):
        return fit_curves(responses.iloc[:0], scale=S.DIP_RELATIVE), pd.DataFrame(columns=OUTPUT_COLUMNS)
    curves = fit_curves(responses, scale=S.DIP_RELATIVE, **fit_options)
    frames = _scale_metrics(responses, curves, S.DIP_RELATIVE, metric_options)
    metrics = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=OUTPUT_COLUMNS)
    return curves, metrics
