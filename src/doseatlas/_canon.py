"""One text form for every value read as an identifier or compared as text.

A value that arrives as a *number* (a Parquet float column, a TOML constant, a reader's own arithmetic)
gets one canonical text: an integral finite float is written as an integer (``1.0`` -> ``"1"``), as the
same identifier typed into a CSV file reads; other numbers as Python writes them (``0.1``, ``inf``).
Text stays the text that was written (stripped): ``"1.0"`` typed in a CSV file is not rewritten.
"""

from __future__ import annotations

import decimal
import math

import numpy as np
import pandas as pd

from doseatlas._codes import factorize

#: integral floats below this magnitude are exact integers (2**53), written without ``.0``
INTEGRAL_LIMIT = 2.0**53


def float_text(values: np.ndarray) -> np.ndarray:
    """Floats as canonical text: integral finite values (``|v| < 2**53``) as integers, others by ``repr``."""
    values = np.asarray(values, dtype=float)
    finite = np.isfinite(values)
    integral = finite & (np.abs(values) < INTEGRAL_LIMIT)
    integral[integral] = np.mod(values[integral], 1.0) == 0
    out = np.array([repr(float(v)) for v in values], dtype=object)
    out[integral] = values[integral].astype(np.int64).astype(str)
    return out


def value_text(value: object) -> str:
    """One value as canonical text (missing -> empty string). The definition :func:`stripped_text` vectorizes."""
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return "" if math.isnan(value) else str(float_text(np.array([value]))[0])
    if isinstance(value, decimal.Decimal) and value.is_finite() and value == value.to_integral_value():
        return str(int(value))
    return str(value).strip()


def stripped_text(series: pd.Series) -> pd.Series:
    """Values as canonical text (:func:`value_text`), missing as empty string: the texts of :func:`text_codes`
    taken to every row (each distinct value converted once where the dtype allows)."""
    codes, texts = text_codes(series)
    return pd.Series(texts[codes], index=series.index, dtype=object)


def text_codes(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The canonical text (:func:`value_text`, missing as empty string) of every value, factorized: (code per
    value, the distinct texts as an object array), so that ``uniques[codes]`` is :func:`stripped_text`. Each
    distinct value is converted once (values that differ only by surrounding spaces share a code), except in a
    column of mixed Python objects (``1``, ``1.0`` and ``True`` are one value to a hash, not one text)."""
    kind = series.dtype.kind
    if isinstance(series.dtype, pd.StringDtype) or kind in "fiu":
        codes, uniques = factorize(series) if kind == "O" else pd.factorize(series, use_na_sentinel=True)
        texts = _distinct_texts(uniques, kind)
    else:
        codes, uniques = factorize(series.to_numpy(dtype=object))
        if all(isinstance(u, str) for u in uniques):  # text (and missing values) as such
            texts = [u.strip() for u in uniques]
        else:  # booleans, other objects (numbers...): each value's text, then its distinct texts
            codes, texts = pd.factorize(_object_text(series))
            return np.asarray(codes, dtype=np.intp), np.asarray(texts, dtype=object)
    texts.append("")  # the text of a missing value (code -1: the last one)
    inner, distinct = pd.factorize(np.array(texts, dtype=object))
    return inner[codes], np.asarray(distinct, dtype=object)


def _distinct_texts(uniques, kind: str) -> list[str]:
    """The canonical text of each distinct value of a text or number column."""
    if kind == "f":
        return list(float_text(np.asarray(uniques, dtype=float)))
    if kind in "iu":  # as ``astype(str)`` writes an integer
        return [str(int(u)) for u in uniques]
    return [u.strip() for u in uniques]


def _object_text(series: pd.Series) -> np.ndarray:
    """:func:`value_text` of every value of a column of booleans or mixed Python objects (missing -> empty
    string)."""
    out = series.astype(str) if series.dtype.kind == "b" else series.astype(object).map(value_text)
    return out.where(~series.isna(), "").to_numpy(dtype=object)


def number_text(values: pd.Series | np.ndarray) -> pd.Series:
    """Numbers, and text that reads as a number, as canonical text (``3.0``, ``"3.0"`` -> ``3``); missing ->
    empty; other text kept, stripped. For readers that build values from numbers (doses, durations, ids).

    Each distinct value is formatted once (doses, durations and plate ids repeat across a screen).
    """
    series = pd.Series(values)
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    if len(uniques) == 0:
        return pd.Series("", index=series.index, dtype=object)
    distinct = pd.Series(np.asarray(uniques, dtype=object))
    numeric = pd.to_numeric(distinct, errors="coerce").to_numpy(dtype=float)
    finite = np.isfinite(numeric)
    text = np.where(distinct.isna().to_numpy(), "", distinct.astype(str).str.strip().to_numpy()).astype(
        object
    )
    text[finite] = float_text(numeric[finite])
    out = np.where(codes >= 0, text[np.maximum(codes, 0)], "").astype(object)
    return pd.Series(out, index=series.index, dtype=object)
