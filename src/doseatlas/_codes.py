"""Integer codes of key columns, for grouping and matching the rows of large tables on the run path.

A pandas ``groupby`` or ``merge`` on several text columns hashes tuples of Python objects; here each column is
factorized once (one hash per value) and the columns of a key are combined one at a time into the number of
each distinct combination: a mark table over the codes (a sort when the codes are sparse), so the numbers stay
below the number of rows times one column's codes. Missing values are one value, as a merge or a grouping with
``dropna=False`` match them. Tables coded together (:func:`joint_codes`) share one numbering, so matching rows
of one table against another is an index into a boolean array.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

__all__ = ["column_codes", "combine", "joint_codes", "per_distinct"]


def column_codes(values: pd.Series | np.ndarray) -> tuple[np.ndarray, int]:
    """(code of every row, number of codes) of one column: the missing values share the last code."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    codes = np.asarray(codes, dtype=np.int64)
    missing = codes < 0
    if missing.any():
        codes[missing] = len(uniques)
        return codes, len(uniques) + 1
    return codes, len(uniques)


def _compress(combined: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct values of ``combined`` (integers in ``[0, size)``), sorted; the position of every value
    among them): a mark table when ``size`` is small, else a sort."""
    if size <= 4 * len(combined) + 4096:
        present = np.zeros(size, dtype=bool)
        present[combined] = True
        rank = np.cumsum(present, dtype=np.int64) - 1
        return np.flatnonzero(present), rank[combined]
    slots, inverse = np.unique(combined, return_inverse=True)
    return slots, inverse.reshape(-1)


def combine(columns: Sequence[tuple[np.ndarray, int]], n: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """(combination number of every row, per column the code of each combination) of ``n`` rows of coded
    columns (``(codes, number of codes)`` each, e.g. from :func:`column_codes`). Combinations are numbered in
    the order of their codes (first column first)."""
    group, per_group, n_groups = np.zeros(n, dtype=np.int64), [], 1
    for codes, width in columns:
        slots, group = _compress(group * width + codes, n_groups * width)
        per_group = [g[slots // width] for g in per_group] + [slots % width]
        n_groups = len(slots)
    return group, per_group


def joint_codes(
    tables: Sequence[pd.DataFrame], keys: Sequence[Sequence[str]]
) -> tuple[list[np.ndarray], int]:
    """(combination number of every row of each table, number of combinations): one numbering across the
    tables, the key of ``tables[i]`` being its columns ``keys[i]`` (the same length for every table; the
    column names may differ). Rows of two tables get one number when their keys hold equal values (compared
    as Python objects, as after ``astype(object)``; missing values equal)."""
    sizes = [len(t) for t in tables]
    coded = []
    for position in range(len(keys[0])):
        parts = [t[k[position]] for t, k in zip(tables, keys, strict=True)]
        values = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
        same = len({p.dtype for p in parts}) == 1
        coded.append(column_codes(values if same else values.astype(object)))
    group, per = combine(coded, sum(sizes))
    n_groups = len(per[0]) if per else int(sum(sizes) > 0)
    return np.split(group, np.cumsum(sizes)[:-1]), n_groups


def per_distinct(
    table: pd.DataFrame, columns: Sequence[str], test: Callable[[pd.DataFrame], np.ndarray]
) -> np.ndarray:
    """``test(table)`` for a row-wise test whose answer depends only on ``columns`` (e.g. the readout
    registry's, on readout and metric): asked of one row per distinct combination, taken back to every row."""
    if not len(table):
        return np.asarray(test(table), dtype=bool)
    (group,), _ = joint_codes([table], [columns])
    _, first = np.unique(group, return_index=True)
    return np.asarray(test(table.iloc[first]), dtype=bool)[group]
