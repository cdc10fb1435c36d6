"""Helpers shared by the format readers (reading text tables, well names, provenance)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from doseatlas import schemas as S
from doseatlas._canon import number_text  # noqa: F401 - re-exported to the readers
from doseatlas.errors import InputFileError
from doseatlas.ingest._files import parquet_table, text_table  # noqa: F401 - re-exported to the readers
from doseatlas.ingest.canonical import canonical_columns

#: role given to rows the source itself marks as excluded (e.g. GDSC ``UN-USED`` wells): validation
#: sends them to the ledger with the reason ``excluded_by_source`` instead of dropping them silently.
EXCLUDED_BY_SOURCE = S.RowReason.EXCLUDED_BY_SOURCE.value


def require(table: pd.DataFrame, columns: Iterable[str], *, path: str | Path, what: str = "") -> None:
    """Raise one :class:`InputFileError` naming every missing column."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        kind = f" of a {what} file" if what else ""
        raise InputFileError(
            str(path),
            f"required column(s){kind} missing: {', '.join(missing)} (found: {', '.join(map(str, table.columns))})",
            column=missing[0],
        )


def pick(table: pd.DataFrame, names: Sequence[str]) -> str | None:
    """First of ``names`` that is a column of ``table`` (None when none is)."""
    return next((n for n in names if n in table.columns), None)


def row_letters(index: np.ndarray) -> np.ndarray:
    """0-based row index -> plate row label (A..Z, AA..AZ, BA..)."""
    index = np.asarray(index, dtype=np.int64)
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"), dtype=object)
    first = np.where(index >= 26, letters[np.clip(index // 26 - 1, 0, 25)], "")
    return first + letters[index % 26]


def well_names(position0: np.ndarray, *, n_columns: int) -> np.ndarray:
    """0-based row-wise well index -> well name like ``A01`` (``AF48`` on a 1536-well plate)."""
    position0 = np.asarray(position0, dtype=np.int64)
    rows = row_letters(position0 // n_columns)
    cols = np.char.zfill((position0 % n_columns + 1).astype(str), 2).astype(object)
    return rows + cols


_WELL = re.compile(r"^\s*([A-Za-z]{1,2})\s*0*(\d{1,3})\s*$")


def canonical_well(name: str) -> str:
    """``a1``, ``A1``, ``A001`` -> ``A01``; anything else is returned stripped, unchanged."""
    match = _WELL.match(str(name))
    if not match:
        return str(name).strip()
    return f"{match.group(1).upper()}{int(match.group(2)):02d}"


def finish(
    table: pd.DataFrame, *, path: str | Path, lines: Sequence[int] | np.ndarray, attrs: dict | None = None
) -> pd.DataFrame:
    """Attach provenance (``source_file``, ``source_line``) and check/order columns."""
    table = table.copy()
    if S.SOURCE_FILE not in table.columns:  # a reader joining several files sets it per row
        table[S.SOURCE_FILE] = str(path)
    table[S.SOURCE_LINE] = np.asarray(lines, dtype=np.int64)
    out = canonical_columns(table, source=str(path))
    out.attrs.update(attrs or {})
    return out


def parse_duration_hours(text: str) -> float:
    """``'3 d'``, ``'72h'``, ``'3 days'``, ``'72'`` (hours) -> hours; NaN when not understood."""
    match = re.match(r"^\s*([0-9.]+)\s*([a-zA-Z]*)\s*$", str(text))
    if not match:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2).lower()
    factors = {"": 1.0, "h": 1.0, "hr": 1.0, "hrs": 1.0, "hour": 1.0, "hours": 1.0, "d": 24.0, "day": 24.0}
    factors["days"] = 24.0
    return value * factors[unit] if unit in factors else float("nan")
