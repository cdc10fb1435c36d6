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
from doseatlas._canon import stripped_text
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


def distinct_times(table: pd.DataFrame) -> pd.DataFrame:
    """Distinct (dataset, read time) pairs of a (raw or clean) well table, times parsed as numbers."""
    if S.TIME_H not in table or S.DATASET not in table:
        return pd.DataFrame({S.DATASET: pd.Series(dtype=object), S.TIME_H: pd.Series(dtype=float)})
    times = pd.to_numeric(table[S.TIME_H], errors="coerce")
    pairs = pd.DataFrame({S.DATASET: stripped_text(table[S.DATASET]).to_numpy(), S.TIME_H: times.to_numpy()})
    return pairs[np.isfinite(pairs[S.TIME_H])].drop_duplicates().reset_index(drop=True)


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


def apply_nominal(clean: pd.DataFrame, mapping: pd.DataFrame) -> pd.DataFrame:
    """``clean`` with the actual time in ``read_time_h`` and the nominal duration in ``time_h``."""
    if S.TIME_H not in clean or not len(clean):
        return clean.assign(**{S.READ_TIME_H: clean[S.TIME_H] if S.TIME_H in clean else np.nan})
    key = pd.DataFrame({S.DATASET: stripped_text(clean[S.DATASET]), S.TIME_H: clean[S.TIME_H].astype(float)})
    nominal = key.merge(mapping, on=[S.DATASET, S.TIME_H], how="left")[NOMINAL].to_numpy()
    out = clean.copy()
    out[S.READ_TIME_H] = clean[S.TIME_H].astype(float)
    out[S.TIME_H] = np.where(np.isnan(nominal), out[S.READ_TIME_H], nominal)
    return out
