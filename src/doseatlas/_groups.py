"""Group codes computed once per table and key, for grouped steps on the run path.

A pandas ``groupby`` on text columns hashes every value of every key column each time it is called; a step that
groups the same table by the same key several times pays that each time. Here the grouping is done once by
pandas itself (``sort=True, dropna=False``, so the group order, the key values and the treatment of missing
values are pandas' own) and kept as an integer code per row plus the table of keys; the grouped statistics
then run on the codes (:func:`doseatlas._stats.summary_by_code`, ``numpy.bincount``, or a pandas groupby on
one integer array).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

__all__ = ["first_code_rows", "key_codes", "n_distinct", "ordered_codes", "pair_codes", "sorted_key_codes"]


def key_codes(frame: pd.DataFrame, key: Sequence[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """(code per row, key table) of ``frame`` grouped by ``key`` as ``frame.groupby(key, sort=True,
    dropna=False)`` groups it: row ``i`` of the key table (a RangeIndex, one column per key column, with the
    values and dtypes of that groupby's index) is the group of the rows whose code is ``i``."""
    grouped = frame.groupby(list(key), dropna=False, sort=True)
    codes = grouped.ngroup().to_numpy(dtype=np.int64)
    keys = grouped.size().index.to_frame(index=False)
    keys.columns = pd.Index(
        list(keys.columns), dtype=object
    )  # as a reset_index of the grouped result names them
    return codes, keys


def ordered_codes(columns: Iterable[tuple[np.ndarray, int]], n: int) -> np.ndarray:
    """Dense group number of each of ``n`` rows by the combination of coded columns, numbered in the order of
    the codes (first column first): each column is ``(codes, number of distinct values)`` with code -1 for a
    missing value, which comes after every value. With each column's codes in its values' sorted order
    (``pd.factorize(sort=True)``) this is ``groupby(columns, sort=True, dropna=False).ngroup()``. The codes are
    folded into one int64 per row, renumbered densely (order kept) before a column could overflow it."""
    combined, bound = np.zeros(n, dtype=np.int64), 1
    for codes, n_values in columns:
        width = n_values + 1
        if bound > 2**62 // width:
            combined = pd.factorize(combined, sort=True)[0].astype(np.int64)
            bound = int(combined.max(initial=0)) + 1
        combined = combined * width + np.where(codes < 0, n_values, codes)
        bound *= width
    return pd.factorize(combined, sort=True)[0].astype(np.int64, copy=False)


def sorted_key_codes(frame: pd.DataFrame, key: Sequence[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """:func:`key_codes`, faster on a long table of text keys: each key column factorized once (sorted, missing
    last, as the sorted groupby orders them) and the codes combined (:func:`ordered_codes`); the key table is
    pandas' own grouping of the first row of each key (values and dtypes as :func:`key_codes` gives them).
    Falls back to :func:`key_codes` for other column types (categorical) or where the small grouping does not
    confirm the order."""
    columns = [frame[k] for k in key]
    if not len(frame) or not all(
        c.dtype == object or str(c.dtype) == "str" or c.dtype.kind in "biuf" for c in columns
    ):
        return key_codes(frame, key)
    factorized = (pd.factorize(c, sort=True, use_na_sentinel=True) for c in columns)
    codes = ordered_codes(((code, len(uniques)) for code, uniques in factorized), len(frame))
    first = np.unique(codes, return_index=True)[1]
    check, keys = key_codes(frame.take(first), key)
    if not np.array_equal(check, np.arange(len(first))):
        return key_codes(frame, key)
    return codes, keys


def pair_codes(codes: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Groups of (group code, value) pairs, sorted by code then value (missing values last, as a sorted
    groupby puts them): (pair code per row, group code of each pair, value of each pair)."""
    if not len(codes):
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.asarray(values).dtype)
    value_code, uniques = pd.factorize(values, sort=True, use_na_sentinel=True)
    width = len(uniques) + 1
    value_code = np.where(value_code < 0, len(uniques), value_code)  # missing after every value
    pairs, inverse = np.unique(np.asarray(codes, dtype=np.int64) * width + value_code, return_inverse=True)
    filled = np.append(np.asarray(uniques), np.nan)  # the value of the missing code
    return inverse.ravel(), pairs // width, filled[pairs % width]


def n_distinct(codes: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Distinct non-missing ``values`` per group (as pandas' grouped ``nunique``), for ``n_groups`` groups."""
    keep = ~pd.isna(values)
    codes, values = np.asarray(codes)[keep], np.asarray(values)[keep]
    if not len(codes):
        return np.zeros(n_groups, dtype=np.int64)
    value_code, _ = pd.factorize(values)
    distinct = np.unique(codes.astype(np.int64) * (int(value_code.max()) + 1) + value_code)
    return np.bincount(distinct // (int(value_code.max()) + 1), minlength=n_groups)


def first_code_rows(codes: np.ndarray) -> np.ndarray:
    """Position of the first row of each code, in the order of first appearance (as ``drop_duplicates``)."""
    _, first = np.unique(codes, return_index=True)
    return np.sort(first)
