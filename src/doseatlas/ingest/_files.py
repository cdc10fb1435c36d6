"""Reading delimited text and Parquet files with one error type (shared by every reader)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from doseatlas.errors import InputFileError

_SEPARATORS = {".csv": ",", ".tsv": "\t", ".txt": "\t"}


def text_table(
    path: str | Path, *, sep: str | None = None, skip_rows: int = 0, keep_blank_lines: bool = False
) -> pd.DataFrame:
    """Read a delimited text file with every value as text (missing = empty string).

    The separator is taken from ``sep``, else from the suffix (``.csv`` comma, ``.tsv``/``.txt`` tab).
    ``keep_blank_lines`` keeps an empty line as an empty row, so that row numbers stay file lines.
    Raises :class:`InputFileError` naming the file when it is missing or unreadable.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(str(path), "file not found")
    sep = sep or _SEPARATORS.get(path.suffix.lower().removesuffix(".gz"), ",")
    try:
        table = pd.read_csv(
            path,
            sep=sep,
            dtype=str,
            keep_default_na=False,
            na_values=[],
            skiprows=skip_rows,
            skip_blank_lines=not keep_blank_lines,
            encoding="utf-8",
        )
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise InputFileError(str(path), f"cannot be read as a delimited text table: {exc}") from exc
    table.columns = [str(c).strip() for c in table.columns]
    return table


def parquet_table(path: str | Path) -> pd.DataFrame:
    """Read a Parquet file, wrapping every failure into :class:`InputFileError`."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(str(path), "file not found")
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises its own error types for corrupt files
        raise InputFileError(
            str(path), f"cannot be read as Parquet: {exc.__class__.__name__}: {exc}"
        ) from exc
