"""Control growth: the vehicle's doubling time per data set, cell line, readout, seeding density and read time.

Under exponential growth the vehicle signal at read time ``T`` over the time-zero signal is
``C / Tz = exp(k0 T)``, so each plate with both reads gives a rate ``k0 = ln(C / Tz) / T`` and a doubling
time ``Td = ln 2 / k0``. Plates of one group and read time are combined by the mean of their rates; its 95%
interval comes from the spread between plates when there are at least two, otherwise from the wells' spread
(delta method: ``se(ln C) = sd_C / (C sqrt(n_C))``, the time-zero wells taken to have the vehicle's coefficient
of variation). A user table of doubling times (``--doubling-times``) gives rows with method ``user`` (its
source recorded, no interval). Flags:

- ``no_net_growth``: the vehicle did not grow past time zero (``C <= Tz``);
- ``doubling_longer_than_assay``: ``Td`` longer than the read time (less than one doubling: the duration
  correction and growth-based scales are poorly determined);
- ``growth_not_exponential``: with several read times, the mean rate over ``[0, T2]`` is below the rate over
  ``[0, T1]`` (``T1`` the first read time) by more than 10% and significantly (one-sided z >= 1.96 on their
  standard errors): the control slows down, e.g. confluence; set on every row of the group.

A pure function of the responses table (table in, table out).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from doseatlas import schemas as S
from doseatlas._codes import joint_codes, run_starts
from doseatlas._stats import group_summary

GROUP = [S.DATASET, S.CELL_LINE, S.READOUT, S.SEEDING_DENSITY]
KEY = [*GROUP, S.DURATION_H]
RATE = "growth_rate_per_h"
RATE_SE = "growth_rate_se"
METHOD = "method"
N_PLATES = "n_plates"
N_WELLS = "n_wells"
FLAGS = "flags"
COLUMNS = [*KEY, S.DOUBLING_TIME_H, S.LOWER, S.UPPER, RATE, RATE_SE, N_PLATES, N_WELLS, METHOD, FLAGS]

NO_NET_GROWTH = "no_net_growth"
LONGER_THAN_ASSAY = "doubling_longer_than_assay"
NOT_EXPONENTIAL = "growth_not_exponential"
SLOWDOWN = 0.10  # relative fall of the rate that counts as not exponential (beyond the intervals too)


def growth_table(responses: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, cell line, readout, seeding density, read time) with the control's growth.

    Parameters
    ----------
    responses
        Output of :func:`doseatlas.normalize.normalize` (the control summaries ride on every treated row).
    """
    plates = _plate_rates(responses)
    measured = _combine(plates) if len(plates) else pd.DataFrame(columns=COLUMNS)
    user = _user_rows(responses)
    table = (
        pd.concat([t for t in (measured, user) if len(t)], ignore_index=True)
        if len(user) or len(measured)
        else pd.DataFrame(columns=COLUMNS)
    )
    table = _flag(table)
    return table[COLUMNS].sort_values(KEY, kind="stable").reset_index(drop=True)


def _plate_rates(responses: pd.DataFrame) -> pd.DataFrame:
    """Rate of each plate that has a vehicle and a time-zero summary, with its delta-method variance."""
    plate_key = [S.DATASET, S.PLATE, S.CELL_LINE, S.READOUT, S.TIME_H]
    cols = [S.VEHICLE_SIGNAL, S.VEHICLE_SPREAD, S.N_VEHICLE, S.TIME_ZERO_SIGNAL, S.N_TIME_ZERO]
    if S.TIME_ZERO_SIGNAL not in responses or not len(responses):
        return pd.DataFrame()
    keep = (
        responses[S.TIME_ZERO_SIGNAL].notna()
        & responses[S.VEHICLE_SIGNAL].notna()
        & (responses[S.TIME_H] > 0)
    )
    if not keep.any():
        return pd.DataFrame()
    extra = [S.READ_TIME_H] if S.READ_TIME_H in responses else []
    seeding_column = [S.SEEDING_DENSITY] if S.SEEDING_DENSITY in responses else []
    read = [*plate_key, *extra, *cols, *seeding_column]
    # the first row of each plate (as drop_duplicates keeps it), found on the plate key's codes
    # a plate's first kept row starts a run of its key or follows a row not kept: only those rows are coded
    kept = keep.to_numpy(bool)
    heads = np.zeros(len(kept), dtype=bool)
    heads[run_starts(responses, plate_key)] = True
    positions = np.flatnonzero(kept & (heads | np.r_[True, ~kept[:-1]]))
    (plate,), _ = joint_codes([responses[plate_key].iloc[positions]], [plate_key])
    first = positions[np.unique(plate, return_index=True)[1]]  # sorted: in the order of the rows
    rows = responses[list(dict.fromkeys(read))].iloc[first]  # the columns read below, copied once
    seeding = rows[S.SEEDING_DENSITY] if S.SEEDING_DENSITY in rows else np.nan
    plates = rows.assign(**{S.SEEDING_DENSITY: seeding})[[*plate_key, *extra, S.SEEDING_DENSITY, *cols]]
    actual = S.READ_TIME_H if S.READ_TIME_H in plates else S.TIME_H  # growth over the actual read time
    c, tz, t = (plates[k].to_numpy(float) for k in (S.VEHICLE_SIGNAL, S.TIME_ZERO_SIGNAL, actual))
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.log(c / tz) / t
        cv2 = (plates[S.VEHICLE_SPREAD].to_numpy(float) / c) ** 2
        var = (
            cv2 * (1 / plates[S.N_VEHICLE].to_numpy(float) + 1 / plates[S.N_TIME_ZERO].to_numpy(float)) / t**2
        )
    plates = plates.assign(**{RATE: np.where((c > 0) & (tz > 0), rate, np.nan), "_var": var, "_n": 1})
    plates[N_WELLS] = plates[S.N_VEHICLE] + plates[S.N_TIME_ZERO]
    return plates.rename(columns={S.TIME_H: S.DURATION_H})


def _combine(plates: pd.DataFrame) -> pd.DataFrame:
    """Mean rate per group and read time, with a t interval (between plates) or the delta-method one."""
    plates = plates[np.isfinite(plates[RATE])]
    if not len(plates):
        return pd.DataFrame(columns=COLUMNS)
    mean = group_summary(plates, KEY, RATE, method="mean")
    sd = group_summary(plates, KEY, RATE, method="std")
    var_within = group_summary(plates, KEY, "_var", method="mean")
    grouped = plates.groupby(KEY, dropna=False, sort=True)
    n = grouped["_n"].sum()
    out = pd.DataFrame({RATE: mean, N_PLATES: n, N_WELLS: grouped[N_WELLS].sum()})
    between = n >= 2
    se = np.where(between, sd / np.sqrt(n), np.sqrt(var_within / n))
    out[RATE_SE] = se
    q = np.where(between, stats.t.ppf(0.975, np.maximum(n - 1, 1)), stats.norm.ppf(0.975))
    lo_rate, hi_rate = out[RATE] - q * se, out[RATE] + q * se
    with np.errstate(divide="ignore", invalid="ignore"):
        out[S.DOUBLING_TIME_H] = np.where(out[RATE] > 0, np.log(2) / out[RATE], np.nan)
        # Td falls as the rate rises: the interval swaps ends; a rate interval reaching 0 gives Td up to inf
        out[S.LOWER] = np.where(hi_rate > 0, np.log(2) / hi_rate, np.nan)
        out[S.UPPER] = np.where(lo_rate > 0, np.log(2) / lo_rate, np.inf)
    out.loc[~(out[RATE] > 0), [S.LOWER, S.UPPER]] = np.nan
    out[METHOD] = np.where(between, "vehicle_vs_time_zero (between plates)", "vehicle_vs_time_zero (wells)")
    return out.reset_index()


def _user_rows(responses: pd.DataFrame) -> pd.DataFrame:
    """Rows for the doubling times a user supplied (used for GR where there is no time-zero read)."""
    if S.DOUBLING_TIME_H not in responses or not responses[S.DOUBLING_TIME_H].notna().any():
        return pd.DataFrame(columns=COLUMNS)
    rows = responses[responses[S.DOUBLING_TIME_H].notna() & (responses[S.TIME_H] > 0)]
    seeding = rows[S.SEEDING_DENSITY] if S.SEEDING_DENSITY in rows else np.nan
    rows = rows.assign(**{S.SEEDING_DENSITY: seeding}).rename(columns={S.TIME_H: S.DURATION_H})
    first = rows.drop_duplicates(KEY)
    td = first[S.DOUBLING_TIME_H].to_numpy(float)
    source = first[S.DOUBLING_TIME_SOURCE].astype(str) if S.DOUBLING_TIME_SOURCE in first else "user"
    return pd.DataFrame(
        {
            **{k: first[k].to_numpy() for k in KEY},
            S.DOUBLING_TIME_H: td,
            S.LOWER: np.nan,
            S.UPPER: np.nan,
            RATE: np.log(2) / td,
            RATE_SE: np.nan,
            N_PLATES: 0,
            N_WELLS: 0,
            METHOD: ("user: " + pd.Series(source, index=first.index)).to_numpy(),
        }
    )


def _flag(table: pd.DataFrame) -> pd.DataFrame:
    """The growth flags (comma-separated codes, empty when none)."""
    table = table.copy()
    if not len(table):
        table[FLAGS] = pd.Series(dtype=object)
        return table
    rate, td, t = (table[k].to_numpy(float) for k in (RATE, S.DOUBLING_TIME_H, S.DURATION_H))
    flags = pd.DataFrame(index=table.index)
    flags[NO_NET_GROWTH] = ~(rate > 0)
    flags[LONGER_THAN_ASSAY] = td > t
    flags[NOT_EXPONENTIAL] = _slowing(table)
    table[FLAGS] = _join_flags(flags)
    return table


def _slowing(table: pd.DataFrame) -> np.ndarray:
    """True on every row of a group whose mean rate over ``[0, T]`` falls from the first read time to a later
    one by more than :data:`SLOWDOWN` and significantly (one-sided z >= 1.96 on the two rates' SEs)."""
    measured = table[table[METHOD].str.startswith("vehicle")]
    if not len(measured):
        return np.zeros(len(table), dtype=bool)
    ordered = measured.sort_values([*GROUP, S.DURATION_H], kind="stable")
    grouped = ordered.groupby(GROUP, dropna=False, sort=False)
    first_rate, first_se = grouped[RATE].transform("first"), grouped[RATE_SE].transform("first")
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (first_rate - ordered[RATE]) / np.sqrt(first_se**2 + ordered[RATE_SE] ** 2)
    fell = (ordered[RATE] < first_rate * (1 - SLOWDOWN)) & (z >= 1.959963984540054)
    slowing_groups = ordered.loc[fell, GROUP].drop_duplicates()
    hit = table[GROUP].merge(slowing_groups.assign(_hit=True), on=GROUP, how="left")["_hit"]
    return hit.astype(object).fillna(False).to_numpy(bool)


def _join_flags(flags: pd.DataFrame) -> pd.Series:
    text = pd.Series("", index=flags.index, dtype=object)
    for name in flags.columns:
        on = flags[name].to_numpy(bool)
        text[on] = np.where(text[on] == "", name, text[on] + "," + name)
    return text
