"""Nominal durations: read times that differ by a few minutes are one duration.

Plates of one design are read one after another, so a "72 h" screen has reads at 72.0, 72.1 and 72.3 h; keyed by
the exact time, each becomes a curve of its own. Rule, per data set, on its distinct read times after time zero
(sorted): a time joins the group of the previous one when the gap is at most the tolerance
``max(abs_h, rel * t)`` (defaults 0.5 h and 2 %). A group's nominal duration is the nearest whole hour when every
time of the group is within the tolerance of it, else the group's median rounded to 0.1 h (unrounded where that
would give 0). Time-zero reads (``time_h`` = 0) stay 0; no later read becomes 0.

The actual time stays on every row (``read_time_h``); ``time_h`` becomes the nominal duration, so controls,
curves and metrics are keyed by it. The mapping is computed from the distinct times of the whole input (the
partitioned engine computes it in its planning pass), so it does not depend on how the input is split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from doseatlas import schemas as S
from doseatlas._canon import text_codes
from doseatlas._codes import first_code_rows
from doseatlas.errors import ConfigError

NOMINAL = "_nominal"


@dataclass(frozen=True)
class DurationOptions:
    """Tolerance of the nominal-duration rule: ``max(abs_h, rel * t)`` hours."""

    abs_h: float = 0.5
    rel: float = 0.02

    def __post_init__(self) -> None:
        if not (
            np.isfinite(self.abs_h) and self.abs_h >= 0 and np.isfinite(self.rel) and 0 <= self.rel < 0.5
        ):
            raise ConfigError(
                f"time tolerance must be abs_h >= 0 and 0 <= rel < 0.5, got {self.abs_h}, {self.rel}"
            )


def distinct_times(
    table: pd.DataFrame, *, datasets: tuple[np.ndarray, np.ndarray] | None = None
) -> pd.DataFrame:
    """Distinct (dataset, read time) pairs of a (raw or clean) well table, times parsed as numbers
    (``datasets``: the data set column's :func:`doseatlas._canon.text_codes`, when known)."""
    if S.TIME_H not in table or S.DATASET not in table:
        return pd.DataFrame({S.DATASET: pd.Series(dtype=object), S.TIME_H: pd.Series(dtype=float)})
    times = pd.to_numeric(table[S.TIME_H], errors="coerce").to_numpy()
    codes, datasets = datasets if datasets is not None else text_codes(table[S.DATASET])
    rows = np.flatnonzero(np.isfinite(times))
    rows = rows[first_code_rows(_pairs(codes[rows], times[rows]))]  # each pair's first row, in row order
    names = pd.Series(datasets[codes[rows]], dtype=object)
    # (the names as pandas' text, as a column of Python strings becomes, when the table has rows)
    names = names.astype(pd.StringDtype(na_value=np.nan)) if len(table) else names
    return pd.DataFrame({S.DATASET: names, S.TIME_H: times[rows]})


def _pairs(codes: np.ndarray, times: np.ndarray) -> np.ndarray:
    """A code per distinct (code, time) pair, numbered in the order of the rows (times equal as ``==`` says,
    NaN equal to NaN, as ``drop_duplicates`` and ``merge`` compare them)."""
    time_codes, _ = pd.factorize(times, use_na_sentinel=False)
    return pd.factorize(codes.astype(np.int64) * (int(time_codes.max(initial=0)) + 1) + time_codes)[0]


def nominal_map(times: pd.DataFrame, *, options: DurationOptions | None = None) -> pd.DataFrame:
    """(dataset, time_h) -> nominal duration, by the rule of this module (vectorized)."""
    options = options or DurationOptions()
    t = times.drop_duplicates().sort_values([S.DATASET, S.TIME_H], kind="stable").reset_index(drop=True)
    value = t[S.TIME_H].to_numpy(float)
    same_set = t[S.DATASET].eq(t[S.DATASET].shift()).to_numpy()
    gap = value - np.roll(value, 1)
    tolerance = np.maximum(options.abs_h, options.rel * value)
    joins = same_set & (gap <= tolerance) & (value > 0) & (np.roll(value, 1) > 0)
    group = np.cumsum(~joins)
    frame = t.assign(_group=group, _tol=tolerance)
    grouped = frame.groupby("_group", sort=False)
    hour = np.round(grouped[S.TIME_H].transform("median"))
    near = (np.abs(frame[S.TIME_H] - hour) <= frame["_tol"]).groupby(frame["_group"]).transform("all")
    exact = grouped[S.TIME_H].transform("median")
    median = np.where(
        np.round(exact, 1) > 0, np.round(exact, 1), exact
    )  # a read after time zero never becomes 0
    nominal = np.where(near & (hour > 0), hour, median)
    return t.assign(**{NOMINAL: np.where(value > 0, nominal, value)})


def apply_nominal(
    clean: pd.DataFrame, mapping: pd.DataFrame, *, datasets: tuple[np.ndarray, np.ndarray] | None = None
) -> pd.DataFrame:
    """``clean`` with the actual time in ``read_time_h`` and the nominal duration in ``time_h`` (``datasets``:
    the data set column's :func:`doseatlas._canon.text_codes`, when known)."""
    if S.TIME_H not in clean or not len(clean):
        return clean.assign(**{S.READ_TIME_H: clean[S.TIME_H] if S.TIME_H in clean else np.nan})
    codes, datasets = datasets if datasets is not None else text_codes(clean[S.DATASET])
    read = clean[S.TIME_H].astype(float)
    times = read.to_numpy()
    pairs = _pairs(codes, times)
    first = first_code_rows(pairs)  # each distinct (dataset, time) pair is looked up once
    key = pd.DataFrame({S.DATASET: datasets[codes[first]], S.TIME_H: times[first]})
    nominal = key.merge(mapping, on=[S.DATASET, S.TIME_H], how="left")[NOMINAL].to_numpy()[pairs]
    return clean.assign(**{S.READ_TIME_H: read, S.TIME_H: np.where(np.isnan(nominal), times, nominal)})
