"""Left merges on a key taken by position when the right table holds the left's keys row for row (as the fit and
the grouped steps of the metrics give them): no hashing of the text key columns, the same table as
``pandas.merge``."""

from __future__ import annotations

import pandas as pd

from doseatlas._codes import same_values


def key_casts(left: pd.DataFrame, right: pd.DataFrame, key: list[str]) -> dict[str, type] | None:
    """Whether ``right`` holds the ``key`` values of ``left`` row for row (same length, equal values as Python
    objects, missing where the other is missing): the casts that give ``left``'s key columns the dtype of
    ``left.merge(right, on=key)`` (text of object beside text of the str dtype: object), or None when the rows
    do not match or the dtypes differ otherwise (the caller merges then)."""
    if len(left) != len(right):
        return None
    cast = {}
    for column in key:
        a, b = left[column], right[column]
        if a.dtype != b.dtype:
            if {str(a.dtype), str(b.dtype)} != {"object", "str"}:
                return None
            cast[column] = object
        if not same_values(a, b):
            return None
    return cast


def joined_by_position(left: pd.DataFrame, right: pd.DataFrame, key: list[str]) -> pd.DataFrame | None:
    """``left.merge(right, on=key, how="left")`` when ``right`` holds the keys of ``left`` row for row
    (:func:`key_casts`) and ``key`` are the only columns they share: ``left`` beside the other columns of
    ``right``; None otherwise (the caller merges)."""
    if set(left.columns) & set(right.columns) != set(key):
        return None
    right = right.reset_index(drop=True)
    cast = key_casts(left, right, key)
    if cast is None:
        return None
    return pd.concat([left.astype(cast) if cast else left, right.drop(columns=key)], axis=1)
