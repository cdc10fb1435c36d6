"""Grouped statistics that are deterministic to the bit.

pandas' grouped reductions are exact up to rounding, but the rounding depends on the order of the rows and, in
the last bit, on what else is in the table; a partitioned run, or the same rows in another order, would then
give other last bits, and a fit started from them another optimum within its tolerance. These reductions sort
each group's values first and sum them sequentially, so they depend only on the multiset of values per group.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["group_summary"]


def group_summary(frame: pd.DataFrame, key: list[str], column: str, *, method: str) -> pd.Series:
    """``mean``, ``median``, ``trimmed_mean`` (25 % cut from each end, as ``scipy.stats.trim_mean``), ``std``
    (sample SD, NaN for one value) or ``sum`` of ``column`` per group of ``key``, indexed by the key (groups
    sorted; NaN keys are groups; NaN values must be dropped by the caller).

    Vectorized, and deterministic to the bit: each group's values are summed in sorted order, so the result
    does not depend on the order of the rows or on what else is in the table (pandas' grouped mean does, in
    the last bit, which a partitioned run would inherit).
    """
    if method not in ("mean", "median", "trimmed_mean", "std", "sum"):
        raise ValueError(f"unknown group summary {method!r}")
    grouped = frame.groupby(key, dropna=False, sort=True)
    codes = grouped.ngroup().to_numpy()
    values = frame[column].to_numpy(dtype=float)
    order = np.lexsort((values, codes))
    v, c = values[order], codes[order]
    n = np.bincount(c, minlength=grouped.ngroups)
    rank = np.arange(len(c)) - (np.cumsum(n) - n)[c]
    if method in ("mean", "std", "sum"):
        keep = np.ones(len(c), dtype=bool)
    elif method == "median":
        keep = (rank == (n[c] - 1) // 2) | (rank == n[c] // 2)
    else:
        cut = (0.25 * n).astype(np.int64)[c]
        keep = (rank >= cut) & (rank < n[c] - cut)
    total = np.bincount(c[keep], weights=v[keep], minlength=grouped.ngroups)
    count = np.bincount(c[keep], minlength=grouped.ngroups)
    index = grouped.size().index
    if method == "sum":
        return pd.Series(total, index=index)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        if method != "std":
            return pd.Series(mean, index=index)
        squares = np.bincount(c, weights=(v - mean[c]) ** 2, minlength=grouped.ngroups)
        return pd.Series(np.where(count > 1, np.sqrt(squares / (count - 1)), np.nan), index=index)
