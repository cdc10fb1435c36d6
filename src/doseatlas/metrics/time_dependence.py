"""Time-dependent drugs: an effect that grows with the duration beyond the exponential model.

Under the model of :mod:`doseatlas.metrics.convert` (a constant effect on the growth rate from the start),
GR50 does not depend on the duration. Where a data set measured the same cell line x drug (same readout) at
two or more durations, the GR50 of the shortest and of the longest are compared on log10:

- both estimated: ``shift = log10 GR50(T_short) - log10 GR50(T_long)``, ``z = shift / sqrt(se_s^2 + se_l^2)``
  with each SE from its 95% interval; **time_dependent** when ``shift >= min_shift`` and ``z`` passes the
  one-sided 2.5% level Bonferroni-corrected for the number of pairs tested in the run (``z >= 3.1`` for 31
  pairs: many pairs are tested at once, and a GR curve that levels off near 0.5 makes GR50 hypersensitive);
- censoring: right-censored at ``T_short`` (above its bound ``b``) and estimated at ``T_long`` with the upper
  end of its interval ``min_shift`` below ``b`` (or left-censored at ``T_long`` with its bound that far below
  ``b``) is time_dependent too (the effect appeared only later).

A time-dependent pair's values are not converted to another duration (the converted rows are refused with
``time_dependent``): its short-duration values are not representative of its effect.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from doseatlas import schemas as S

PAIR_KEY = [k for k in S.CURVE_KEY if k != S.DURATION_H]
SHORT_H, LONG_H = "short_duration_h", "long_duration_h"
SHIFT = "shift_log10"
Z = "z"
TIME_DEPENDENT = "time_dependent"
MIN_SHIFT = 0.3  # log10 units (a two-fold change): smaller shifts are within what fits and plates vary by
Q975 = 1.959963984540054
COLUMNS = [*PAIR_KEY, S.METRIC, SHORT_H, LONG_H, "short_status", "long_status", "short_value", "long_value",
           SHIFT, Z, TIME_DEPENDENT]  # fmt: skip


def time_dependence(metrics: pd.DataFrame, *, min_shift: float = MIN_SHIFT) -> pd.DataFrame:
    """One row per drug pair measured at two or more durations: the GR50 comparison and its verdict."""
    # the rows and columns read below, taken once (the metric test first: it is the narrowest)
    wanted = (metrics[S.METRIC] == "gr50").to_numpy(bool)
    columns = [*PAIR_KEY, S.DURATION_H, S.STATUS, S.VALUE, S.LOWER, S.UPPER]
    gr50 = metrics.loc[wanted, list(dict.fromkeys(columns))]
    gr50 = gr50[
        (gr50[S.PERTURBATION_TYPE] == S.PerturbationType.DRUG)
        & (gr50[S.STATUS] != S.MetricStatus.REFUSED.value)
    ]
    if not len(gr50):
        return pd.DataFrame(columns=COLUMNS)
    ordered = gr50.sort_values([*PAIR_KEY, S.DURATION_H], kind="stable")
    first, last = _pair_runs(ordered)  # a pair's rows together, by duration (missing last)
    durations = ordered[S.DURATION_H].to_numpy(float)
    top = np.maximum.reduceat(np.where(np.isnan(durations), -np.inf, durations), first)  # (nunique > 1)
    several = durations[first] < top  # two durations or more (the first: the shortest)
    short = ordered.iloc[first[several]].set_index(PAIR_KEY)
    long = ordered.iloc[last[several]].set_index(PAIR_KEY)  # row for row the same pairs as ``short``
    if not len(short):
        return pd.DataFrame(columns=COLUMNS)
    critical = stats.norm.ppf(1.0 - 0.025 / len(short))
    shift, z, flagged = _compare(short, long, min_shift=min_shift, critical=critical)
    out = pd.DataFrame(
        {
            S.METRIC: "gr50",
            SHORT_H: short[S.DURATION_H].to_numpy(float),
            LONG_H: long[S.DURATION_H].to_numpy(float),
            "short_status": short[S.STATUS].to_numpy(),
            "long_status": long[S.STATUS].to_numpy(),
            "short_value": short[S.VALUE].to_numpy(float),
            "long_value": long[S.VALUE].to_numpy(float),
            SHIFT: shift,
            Z: z,
            TIME_DEPENDENT: flagged,
        },
        index=short.index,
    )
    return out.reset_index()[COLUMNS]


def _pair_runs(ordered: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(first row, last row) of each pair (``PAIR_KEY``) of a table sorted by it: the pairs in the order of a
    ``groupby(PAIR_KEY, dropna=False, sort=False)``, its ``head(1)`` and ``tail(1)`` (each key column compared
    by its codes, so that missing values are one value)."""
    change = np.zeros(len(ordered), dtype=bool)
    change[0] = True
    for column in PAIR_KEY:
        codes = pd.factorize(ordered[column])[0]
        change[1:] |= codes[1:] != codes[:-1]
    first = np.flatnonzero(change)
    return first, np.r_[first[1:], len(ordered)] - 1


def _compare(short: pd.DataFrame, long: pd.DataFrame, *, min_shift: float, critical: float):
    est = S.MetricStatus.ESTIMATED.value
    with np.errstate(divide="ignore", invalid="ignore"):
        ls, ll = np.log10(short[S.VALUE].to_numpy(float)), np.log10(long[S.VALUE].to_numpy(float))
        se_s = (np.log10(short[S.UPPER].to_numpy(float)) - np.log10(short[S.LOWER].to_numpy(float))) / (
            2 * Q975
        )
        se_l = (np.log10(long[S.UPPER].to_numpy(float)) - np.log10(long[S.LOWER].to_numpy(float))) / (
            2 * Q975
        )
        shift = ls - ll
        z = shift / np.sqrt(se_s**2 + se_l**2)
        both = (short[S.STATUS].to_numpy() == est) & (long[S.STATUS].to_numpy() == est)
        by_estimate = both & (shift >= min_shift) & (z >= critical)
        bound = np.log10(short[S.LOWER].to_numpy(float))  # right-censored short: GR50 > lower
        right_short = short[S.STATUS].to_numpy() == S.MetricStatus.RIGHT_CENSORED.value
        long_top = np.where(
            long[S.STATUS].to_numpy() == est,
            np.log10(long[S.UPPER].to_numpy(float)),
            np.where(
                long[S.STATUS].to_numpy() == S.MetricStatus.LEFT_CENSORED.value,
                np.log10(long[S.UPPER].to_numpy(float)),
                np.inf,
            ),
        )
        by_censoring = right_short & (long_top <= bound - min_shift)
    shift = np.where(both, shift, np.where(by_censoring, bound - long_top, np.nan))
    return shift, np.where(both, z, np.nan), by_estimate | by_censoring
