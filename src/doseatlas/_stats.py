"""Grouped statistics that are deterministic to the bit.

pandas' grouped reductions are exact up to rounding, but the rounding depends on the order of the rows and, in
the last bit, on what else is in the table; a partitioned run, or the same rows in another order, would then
give other last bits, and a fit started from them another optimum within its tolerance. These reductions sort
each group's values first and sum them sequentially, so they depend only on the multiset of values per group.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numba import njit

__all__ = ["group_summary", "group_value_order", "summary_by_code", "t975"]


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
    return pd.Series(
        summary_by_code(codes, values, grouped.ngroups, method=method), index=grouped.size().index
    )


def summary_by_code(codes: np.ndarray, values: np.ndarray, n_groups: int, *, method: str) -> np.ndarray:
    """:func:`group_summary` on integer group codes (``0 <= codes < n_groups``, one per value; NaN values must
    be dropped by the caller): an array of ``n_groups`` results, bit for bit the same as ``group_summary``
    gives for the same groups. A group without a value gets NaN (``sum``: 0). For callers that code their
    key once and summarize several columns, or subsets of rows, with it.

    ``values`` may also be 2-D, one row of values per column summarized by the same codes: the codes are then
    sorted once for all of them, and the result has one row of ``n_groups`` results per column (each the same
    to the bit as the column alone gives).
    """
    if method not in ("mean", "median", "trimmed_mean", "std", "sum"):
        raise ValueError(f"unknown group summary {method!r}")
    codes = np.asarray(codes, dtype=np.int64)
    values = np.asarray(values, dtype=float)
    if values.ndim == 2:
        orders = _value_orders(codes, values, n_groups)
        rows = [_summary(codes, v, order, n_groups, method) for v, order in zip(values, orders, strict=True)]
        return np.stack(rows) if rows else np.zeros((0, n_groups))
    return _summary(codes, values, group_value_order(codes, values, n_groups), n_groups, method)


def _summary(
    codes: np.ndarray, values: np.ndarray, order: np.ndarray, n_groups: int, method: str
) -> np.ndarray:
    """:func:`summary_by_code` of one column, its rows in ``order`` (:func:`group_value_order`)."""
    v, c = values[order], codes[order]
    if method in ("mean", "std", "sum"):  # every value
        total = np.bincount(c, weights=v, minlength=n_groups)
        count = np.bincount(c, minlength=n_groups)
    else:
        n = np.bincount(c, minlength=n_groups)
        rank = np.arange(len(c)) - (np.cumsum(n) - n)[c]
        if method == "median":
            keep = (rank == (n[c] - 1) // 2) | (rank == n[c] // 2)
        else:
            cut = (0.25 * n).astype(np.int64)[c]
            keep = (rank >= cut) & (rank < n[c] - cut)
        total = np.bincount(c[keep], weights=v[keep], minlength=n_groups)
        count = np.bincount(c[keep], minlength=n_groups)
    if method == "sum":
        return total
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        if method != "std":
            return mean
        squares = np.bincount(c, weights=(v - mean[c]) ** 2, minlength=n_groups)
        return np.where(count > 1, np.sqrt(squares / (count - 1)), np.nan)


def _value_orders(codes: np.ndarray, columns: np.ndarray, n_groups: int) -> list[np.ndarray]:
    """:func:`group_value_order` of each row of ``columns`` by the same ``codes``, with one stable sort of the
    codes for all of them when the groups are small (each group's values then ordered by insertion sorts:
    close to one pass where they repeat, as a curve's wells carry the summaries of a few plates)."""
    count = np.bincount(codes, minlength=n_groups)
    if count.max(initial=0) > 256:  # insertion sorts: quadratic in a group's length at worst
        return [group_value_order(codes, values, n_groups) for values in columns]
    by_code = np.argsort(codes, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(count)])
    return [_insertion_runs(by_code, bounds, values) for values in columns]


@njit(cache=True)
def _insertion_runs(order, bounds, y):
    """Each run ``order[bounds[r]:bounds[r + 1]]`` stably sorted by ``y`` (ascending, NaN last) by insertion
    sorts."""
    out = order.copy()
    for r in range(bounds.size - 1):
        for i in range(bounds[r] + 1, bounds[r + 1]):
            item = out[i]
            key = y[item]
            j = i - 1
            while j >= bounds[r] and not np.isnan(key) and (np.isnan(y[out[j]]) or key < y[out[j]]):
                out[j + 1] = out[j]
                j -= 1
            out[j + 1] = item
    return out


def group_value_order(codes: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """``np.lexsort((values, codes))`` (rows by group code, then by value, NaN last, ties in row order), faster:
    a stable sort of the codes, then each group's values sorted in a row of a (group, rank) grid when groups are
    small (replicates of a dose), else two stable argsorts (by value, then by code)."""
    codes = np.asarray(codes, dtype=np.int64)
    values = np.asarray(values, dtype=float)
    n = np.bincount(codes, minlength=n_groups)
    width = int(n.max(initial=0))
    if not len(codes) or width > 64 or len(n) * width > 4 * len(codes):
        by_value = np.argsort(values, kind="stable")
        return by_value[np.argsort(codes[by_value], kind="stable")]
    by_code = np.argsort(codes, kind="stable")
    start = np.cumsum(n) - n
    sorted_codes = codes[by_code]
    grid = np.full(
        (len(n), width), np.nan
    )  # a group's row: its values, then NaN (sorted after any NaN value)
    grid[sorted_codes, np.arange(len(codes)) - start[sorted_codes]] = values[by_code]
    within = np.argsort(grid, axis=1, kind="stable")
    return by_code[(start[:, None] + within)[np.arange(width) < n[:, None]]]


def t975(df) -> np.ndarray:
    """``scipy.stats.t.ppf(0.975, df)`` elementwise, computed once per distinct ``df`` (degrees of freedom of
    curves take few distinct values; the quantile function is the slow part): the same values to the bit."""
    from scipy import stats

    df = np.asarray(df, dtype=float)
    distinct, inverse = np.unique(df, return_inverse=True)
    return stats.t.ppf(0.975, distinct)[inverse.reshape(df.shape)]
