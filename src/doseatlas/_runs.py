"""Key codes of tables whose rows come in runs of one key (a table in plate, curve or metric order).

:func:`doseatlas._codes.joint_codes` factorizes every row of every key column. Where the rows of one key
follow each other (the run's tables are sorted), the rows that start a run (:func:`run_heads`: a key column
differs from the row before) are the only ones that need it: every other row has the key of the row before.
The first row holding a key is always a run head, so the first rows of each key are found among the heads too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from doseatlas._codes import joint_codes

__all__ = ["run_heads", "run_joint_codes"]


def _differs(values: pd.Series) -> np.ndarray:
    """True for each row after the first whose value may differ from the row before's. Loose on purpose (NaN
    differs from NaN, values that do not compare plainly differ): a head too many changes no code."""
    n = len(values) - 1
    if isinstance(values.dtype, np.dtype) and values.dtype.kind in "biufmM":
        array = values.to_numpy()
        return array[1:] != array[:-1]
    if isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow":
        import pyarrow.compute as pc

        array = values.array.__arrow_array__()
        return pc.not_equal(array[1:], array[:-1]).fill_null(True).to_numpy(zero_copy_only=False)
    if values.dtype == object:
        array = values.to_numpy()
        try:
            return np.asarray(array[1:] != array[:-1], dtype=bool)
        except (TypeError, ValueError):  # values without a plain equality (e.g. pd.NA)
            return np.ones(n, dtype=bool)
    return np.ones(n, dtype=bool)


def run_heads(table: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """True on the rows of ``table`` that start a run of one ``columns`` key (the first row, and each row where a
    key column may differ from the row before)."""
    heads = np.ones(len(table), dtype=bool)
    if len(table) > 1:
        heads[1:] = False
        for column in columns:
            heads[1:] |= _differs(table[column])
    return heads


def run_joint_codes(
    tables: Sequence[pd.DataFrame], keys: Sequence[Sequence[str]]
) -> tuple[list[np.ndarray], int]:
    """:func:`doseatlas._codes.joint_codes` (the number of each row's key, one numbering across the tables; the
    number of keys) computed on the run heads of each table only, each head's number repeated over its run."""
    heads = [np.flatnonzero(run_heads(t, k)) for t, k in zip(tables, keys, strict=True)]
    parts = [t.iloc[h] for t, h in zip(tables, heads, strict=True)]
    codes, n = joint_codes(parts, keys)
    runs = [np.diff(np.r_[h, len(t)]) for t, h in zip(tables, heads, strict=True)]
    return [np.repeat(c, r) for c, r in zip(codes, runs, strict=True)], n
