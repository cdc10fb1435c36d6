"""Integer codes of key columns, for grouping and matching the rows of large tables on the run path: the one
home of both numberings.

A pandas ``groupby`` or ``merge`` on several text columns hashes tuples of Python objects, each time it is
called; here each column is factorized once (one hash per value) and the columns of a key are combined one at
a time into the number of each distinct combination (:func:`combine`): a mark table over the codes (a hash
when the codes are sparse), so the numbers stay below the number of rows times one column's codes. Missing
values are one value, as a merge or a grouping with ``dropna=False`` match them.

Two numberings of a column's values, and so of the combinations:

* *first appearance* (:func:`factorize`, :func:`column_codes`, :func:`joint_codes`): ``pd.factorize``'s
  order, for matching rows (tables coded together share one numbering, so matching the rows of one table
  against another is an index into a boolean array);
* *sorted* (:func:`ordered_codes`, :func:`key_codes`, :func:`sorted_key_codes`, :func:`pair_codes`): the
  order of ``groupby(key, sort=True, dropna=False)`` (missing last), for grouped steps whose output is in key
  order; the grouped statistics then run on the codes (:func:`doseatlas._stats.summary_by_code`,
  ``numpy.bincount``, or a pandas groupby on one integer array).

Runs of equal keys (a table in plate, cell line or curve order) are found by one run detector
(:func:`value_changes`, :func:`run_starts`).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "column_codes",
    "combine",
    "factorize",
    "first_code_rows",
    "joint_codes",
    "key_codes",
    "n_distinct",
    "ordered_codes",
    "pair_codes",
    "per_distinct",
    "run_joint_codes",
    "run_starts",
    "same_values",
    "sorted_key_codes",
    "text_column",
    "value_changes",
]


def factorize(values: pd.Series | np.ndarray, *, sort: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``pd.factorize(values, sort=sort)`` (codes as int64, missing: -1; uniques) of one column. A column whose
    values come in runs (a table in plate, cell line or curve order) is factorized on the first value of each
    run only (:func:`value_changes`; the codes are the same: numbered in the order of first appearance, or of
    the sorted values)."""
    array = (
        values.to_numpy() if isinstance(values, pd.Series) and isinstance(values.dtype, np.dtype) else values
    )
    if isinstance(array, pd.Series):
        array = array.array  # (pandas' text: its arrow array)
    plain = isinstance(array, np.ndarray) and array.dtype.kind in "biufO"
    if len(array) > 1024 and (plain or _arrow_text(array) is not None) and _in_runs(array):
        heads = np.ones(len(array), dtype=bool)
        heads[1:] = _run_changes(array)  # (a missing value starts a run, and stays missing)
        if np.count_nonzero(heads) < len(array) // 4:
            codes, uniques = pd.factorize(array[heads], sort=sort, use_na_sentinel=True)
            runs = np.diff(np.r_[np.flatnonzero(heads), len(array)])
            return np.repeat(codes.astype(np.int64), runs), uniques
    codes, uniques = pd.factorize(values, sort=sort, use_na_sentinel=True)
    return np.asarray(codes, dtype=np.int64), uniques


def _in_runs(values: np.ndarray | pd.api.extensions.ExtensionArray, *, sample: int = 4096) -> bool:
    """Whether the first ``sample`` values come in runs (fewer than a quarter start one): else the column is
    factorized whole at once, not after a search for its runs that would not pay (the codes are the same)."""
    return np.count_nonzero(_run_changes(values[:sample])) < sample // 4


def _object_changes(array: np.ndarray) -> np.ndarray | None:
    """:func:`value_changes` of an object array whose values come in runs of one object (a column a step took
    to the rows from its distinct values): an object differs from itself only where it is not equal to itself
    (NaN), so only the first object of each run is compared, with itself and with the object before it. None
    when the runs are short (a quarter of the rows or more start one) or a value has no plain truth value."""
    moved = _identity_changes(array)
    heads = np.flatnonzero(moved) + 1
    if len(heads) >= len(array) // 4:
        return None
    first = array[np.r_[0, heads]]
    try:
        not_itself = np.asarray(first != first, dtype=bool)  # (NaN: True)
        # the flag of a row after the first within its run: its run's object against itself
        changed = not_itself[np.cumsum(moved)] if not_itself.any() else np.zeros(len(moved), dtype=bool)
        changed[heads - 1] = np.asarray(array[heads] != array[heads - 1], dtype=bool)
    except (TypeError, ValueError):  # values without a plain truth value (pd.NA)
        return None
    return changed


def _identity_changes(values: np.ndarray) -> np.ndarray:
    """Where an element of an object array is another object than the one before (``len(values) - 1`` flags),
    read off the addresses of the elements."""
    array = np.ascontiguousarray(values)
    address = np.ctypeslib.as_array((ctypes.c_ssize_t * len(array)).from_address(array.ctypes.data))
    return address[1:] != address[:-1]


def _run_changes(values: np.ndarray | pd.api.extensions.ExtensionArray) -> np.ndarray:
    """Where a run of :func:`factorize` starts (``len(values) - 1`` flags): :func:`value_changes`, except in an
    object array, where an object differs from the one before by identity (the address of each element: one
    object is one value to ``pd.factorize``, whatever it is; the flags hold every change of value, and the
    runs of equal values held by different objects are split, which changes no code). Text a step took to the
    rows from its distinct values (``uniques[codes]``) is so compared without a Python comparison per row."""
    if not (isinstance(values, np.ndarray) and values.dtype == object):
        return value_changes(values)
    return _identity_changes(values)


def _arrow_text(values: object) -> pa.ChunkedArray | None:
    """The arrow array of pandas' text (a Series, an Index or their array of pyarrow storage), else None."""
    array = values.array if isinstance(values, pd.Series | pd.Index) else values
    dtype = getattr(array, "dtype", None)
    if isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow":
        return array.__arrow_array__()
    return None


def value_changes(values: pd.Series | np.ndarray) -> np.ndarray:
    """Where a value differs from the one before (``len(values) - 1`` flags): compared as they are (numbers,
    Python objects, pandas' text in arrow: a missing value may differ from a missing one before it), other
    columns and values without a plain equality (``pd.NA``) by their ``pd.factorize`` codes."""
    arrow = _arrow_text(values)
    if arrow is not None:
        changed = pc.fill_null(pc.not_equal(arrow[1:], arrow[:-1]), True)
        return np.asarray(changed.to_numpy(zero_copy_only=False), dtype=bool)
    array = values.to_numpy() if isinstance(values, pd.Series) and values.dtype.kind in "biufO" else values
    if not (isinstance(array, np.ndarray) and array.dtype.kind in "biufO"):
        array = pd.factorize(values)[0]
    changed = _object_changes(array) if array.dtype == object and len(array) > 1024 else None
    if changed is not None:
        return changed
    try:
        return np.asarray(array[1:] != array[:-1], dtype=bool)
    except (TypeError, ValueError):  # values without a plain truth value (pd.NA)
        codes = pd.factorize(values)[0]
        return codes[1:] != codes[:-1]


def same_values(left: pd.Series, right: pd.Series) -> bool:
    """Whether two columns of one length hold equal values row for row (missing where the other is missing),
    as Python objects; two columns of pandas' text in arrow compared in arrow (no Python string per row)."""
    a, b = _arrow_text(left), _arrow_text(right)
    if (a is None) != (b is None):  # text in arrow beside text in Python objects: the objects in arrow
        a, b = (a, _as_arrow_text(right, a.type)) if a is not None else (_as_arrow_text(left, b.type), b)
    if a is not None and b is not None and a.type == b.type:  # (pc.all of no row: None, as all of none: True)
        if pc.all(pc.equal(pc.is_null(a), pc.is_null(b))).as_py() is False:
            return False
        return pc.all(pc.fill_null(pc.equal(a, b), True)).as_py() is not False
    a, b = left.to_numpy(dtype=object), right.to_numpy(dtype=object)
    missing = pd.isna(a)
    return bool(np.array_equal(missing, pd.isna(b)) and (a[~missing] == b[~missing]).all())


def _as_arrow_text(values: pd.Series, kind: pa.DataType) -> pa.Array | None:
    """An object column of Python strings (missing: None or NaN) as arrow text of type ``kind``; None for other
    columns or values (compared as objects then)."""
    if values.dtype != object:
        return None
    try:
        array = pa.array(values.to_numpy(), from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError):
        return None
    if not (
        pa.types.is_string(array.type)
        or pa.types.is_large_string(array.type)
        or array.null_count == len(array)
    ):
        return None
    return array.cast(kind)


def run_starts(frame: pd.DataFrame, key: Sequence[str]) -> np.ndarray:
    """Positions of the rows whose ``key`` differs from the row before (and the first row): the first row of
    every key is one of them."""
    change = np.ones(len(frame), dtype=bool)
    if len(frame) > 1:
        change[1:] = False
        for column in key:
            change[1:] |= value_changes(frame[column])
    return np.flatnonzero(change)


def run_joint_codes(
    tables: Sequence[pd.DataFrame], keys: Sequence[Sequence[str]]
) -> tuple[list[np.ndarray], int]:
    """:func:`joint_codes` (the number of each row's key, one numbering across the tables; the number of keys) of
    tables whose rows come in runs of one key (a table in plate, curve or metric order), computed on the rows that
    start a run (:func:`run_starts`) only, each head's number repeated over its run."""
    heads = [run_starts(t, k) for t, k in zip(tables, keys, strict=True)]
    codes, n = joint_codes([t.iloc[h] for t, h in zip(tables, heads, strict=True)], keys)
    runs = [np.diff(np.r_[h, len(t)]) for t, h in zip(tables, heads, strict=True)]
    return [np.repeat(c, r) for c, r in zip(codes, runs, strict=True)], n


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
    among them): read off the runs of values already in order, else a mark table when ``size`` is small, else
    a hash of the values."""
    if len(combined) > 1 and (combined[1:] >= combined[:-1]).all():  # (a table sorted by its key)
        heads = np.empty(len(combined), dtype=bool)
        heads[0], heads[1:] = True, combined[1:] != combined[:-1]
        return combined[heads], np.cumsum(heads, dtype=np.int64) - 1
    if size <= 4 * len(combined) + 4096:
        present = np.zeros(size, dtype=bool)
        present[combined] = True
        slots = np.flatnonzero(present)
        rank = np.empty(size, dtype=np.int32 if len(slots) < 2**31 else np.int64)  # (read only at the slots)
        rank[slots] = np.arange(len(slots), dtype=rank.dtype)
        return slots, rank[combined].astype(np.int64)
    codes, uniques = pd.factorize(combined)  # sparse: hashed (no sort of every row), then put in order
    order = np.argsort(uniques, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return uniques[order], rank[codes]


def combine(columns: Iterable[tuple[np.ndarray, int]], n: int) -> tuple[np.ndarray, list[np.ndarray]]:
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
        group *= width  # (in place: ``group`` is this function's own array)
        group += codes
        n_groups *= width
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


# the sorted numbering (a sorted groupby's)


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
    (``pd.factorize(sort=True)``) this is ``groupby(columns, sort=True, dropna=False).ngroup()``. The
    combination of :func:`combine`, a missing value being the code after the last."""
    coded = [(_missing_last(codes, n_values), n_values + 1) for codes, n_values in columns]
    return combine(coded, n)[0]


def _missing_last(codes: np.ndarray, n_values: int) -> np.ndarray:
    """``codes`` with -1 (missing) as ``n_values``, the code after every value."""
    return np.where(codes < 0, n_values, codes) if len(codes) and codes.min() < 0 else codes


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
    factorized = (factorize(c, sort=True) for c in columns)  # (on the runs of a column in runs)
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


#: pandas' text dtype (what a column of Python strings becomes)
_TEXT = pd.StringDtype("pyarrow", na_value=np.nan)


def text_column(
    codes: np.ndarray, texts: Sequence[str], *, missing: object = None
) -> np.ndarray | pd.api.extensions.ExtensionArray:
    """The column a table makes of the object array ``texts[codes]`` (code -1: ``missing``, None or NaN):
    pandas' text where a value is text (a missing value is its missing value), else an object array of
    ``missing``; built in arrow from the codes (no Python object per row). The one builder of a text column
    from distinct values (:meth:`doseatlas.normalize._Coded.column`, :func:`doseatlas.pipeline.text_dtypes`)."""
    codes = np.asarray(codes)
    if not len(texts) or not (codes >= 0).any():
        return np.full(len(codes), missing, dtype=object)
    indices = pa.array(codes, mask=codes < 0)
    return pd.array(pc.take(pa.array(list(texts), type=pa.large_string()), indices), dtype=_TEXT)
