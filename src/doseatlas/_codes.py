"""Integer codes of key columns, for grouping and matching the rows of large tables on the run path.

A pandas ``groupby`` or ``merge`` on several text columns hashes tuples of Python objects; here each column is
factorized once (one hash per value) and the columns of a key are combined one at a time into the number of
each distinct combination: a mark table over the codes (a hash when the codes are sparse), so the numbers stay
below the number of rows times one column's codes. Missing values are one value, as a merge or a grouping with
``dropna=False`` match them. Tables coded together (:func:`joint_codes`) share one numbering, so matching rows
of one table against another is an index into a boolean array.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

__all__ = ["column_codes", "combine", "factorize", "joint_codes", "per_distinct"]


def factorize(values: pd.Series | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``pd.factorize`` (codes as int64, missing: -1; uniques) of one column. A column of Python objects (text)
    whose values come in runs (a table in plate, cell line or curve order) is factorized on the first value of
    each run only (the codes are the same: numbered in the order of first appearance)."""
    array = values.to_numpy() if isinstance(values, pd.Series) and values.dtype == object else values
    if isinstance(array, np.ndarray) and array.dtype == object and len(array) > 1024:
        heads = np.ones(len(array), dtype=bool)
        try:  # (missing values never equal: each starts a run, and stays missing)
            heads[1:] = array[1:] != array[:-1]
        except (TypeError, ValueError):  # values without a plain equality (e.g. pd.NA): hash every row
            heads[:] = True
        if np.count_nonzero(heads) < len(array) // 4:
            codes, uniques = pd.factorize(array[heads], use_na_sentinel=True)
            runs = np.diff(np.r_[np.flatnonzero(heads), len(array)])
            return np.repeat(codes.astype(np.int64), runs), uniques
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return np.asarray(codes, dtype=np.int64), uniques


def column_codes(values: pd.Series | np.ndarray) -> tuple[np.ndarray, int]:
    """(code of every row, number of codes) of one column: the missing values share the last code."""
    codes, uniques = factorize(values)
    codes, n_uniques = np.array(codes, dtype=np.int64), len(uniques)
    missing = codes < 0
    if missing.any():
        codes[missing] = n_uniques
        return codes, n_uniques + 1
    return codes, n_uniques


def _compress(combined: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct values of ``combined`` (integers in ``[0, size)``), sorted; the position of every value
    among them): a mark table when ``size`` is small, else a hash of the values."""
    if size <= 4 * len(combined) + 4096:
        present = np.zeros(size, dtype=bool)
        present[combined] = True
        rank = np.cumsum(present, dtype=np.int64) - 1
        return np.flatnonzero(present), rank[combined]
    codes, uniques = pd.factorize(combined)  # sparse: hashed (no sort of every row), then put in order
    order = np.argsort(uniques, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return uniques[order], rank[codes]


def combine(columns: Sequence[tuple[np.ndarray, int]], n: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """(combination number of every row, per column the code of each combination) of ``n`` rows of coded
    columns (``(codes, number of codes)`` each, e.g. from :func:`column_codes`). Combinations are numbered in
    the order of their codes (first column first). Columns are folded into one number while it stays small
    enough for a mark table, and renumbered densely only then."""
    group, n_groups = np.zeros(n, dtype=np.int64), 1
    per_group: list[np.ndarray] = []
    pending: list[int] = []  # the widths folded in since the last renumbering
    for codes, width in columns:
        if pending and n_groups * width > 4 * n + 4096:
            group, n_groups, per_group = _renumber(group, n_groups, per_group, pending)
            pending = []
        group, n_groups = group * width + codes, n_groups * width
        pending.append(width)
    if pending:
        group, n_groups, per_group = _renumber(group, n_groups, per_group, pending)
    return group, per_group


def _renumber(
    group: np.ndarray, size: int, per_group: list[np.ndarray], widths: list[int]
) -> tuple[np.ndarray, int, list[np.ndarray]]:
    """Dense numbers for ``group`` (numbers below ``size`` made of earlier dense numbers and the codes of
    columns of ``widths``): (new numbers, how many, per column the code of each new number)."""
    slots, group = _compress(group, size)
    rest, codes = slots, []
    for width in reversed(widths):
        rest, code = np.divmod(rest, width)
        codes.append(code)
    return group, len(slots), [g[rest] for g in per_group] + codes[::-1]


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
