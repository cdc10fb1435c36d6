"""Reader of the canonical well table (CSV, TSV or Parquet)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from doseatlas import schemas as S
from doseatlas._canon import stripped_text
from doseatlas.errors import InputFileError
from doseatlas.ingest._files import parquet_table
from doseatlas.ingest._records import read_records

_TEXT_SUFFIXES = (".csv", ".tsv", ".txt")


def read_canonical(
    path: str | Path,
    *,
    partition_values: dict[str, str] | None = None,
    defaults: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Read one canonical well table file.

    Values are kept as text (for CSV/TSV) so that validation can report a bad value as it
    was written. The file must have every required column; optional ones are added empty.
    A text line that is not a well-formed record (blank, more or fewer fields than the header) is
    kept as a row with its ``record_problem``: validation sends it to the ledger.

    Parameters
    ----------
    path
        A ``.csv``, ``.tsv``/``.txt`` (tab separated) or ``.parquet`` file.
    partition_values
        Column values the file's folders give its rows (a Parquet data set's ``key=value`` folders): added
        where the file lacks the column, an error where its own column says otherwise.
    defaults
        Column values for columns the file lacks entirely (a manifest source's defaults; see
        :mod:`doseatlas.ingest.manifest`, which also fills the empty values of columns the file has).

    Returns
    -------
    pandas.DataFrame
        The canonical columns plus ``source_file`` and ``source_line`` (1-based line of
        the row in a text file, header = line 1; row number + 1 for Parquet).

    Raises
    ------
    InputFileError
        The file cannot be read, names a column twice, lacks required columns (all missing ones are
        named) or contradicts a partition value.
    """
    path = Path(path)
    table = _read_raw(path)
    table.columns = [str(c).strip() for c in table.columns]
    check_unique_columns(table, path=path)
    table = _with_partition_values(table, partition_values or {}, path=path)
    for column, value in (defaults or {}).items():
        if column not in table.columns:
            table[column] = value
    return canonical_columns(with_parquet_lines(table, path), source=str(path))


def _with_partition_values(table: pd.DataFrame, values: dict[str, str], *, path: Path) -> pd.DataFrame:
    for column, value in values.items():
        if column not in table.columns:
            table[column] = value
        elif not stripped_text(table[column]).eq(stripped_text(pd.Series([value])).iloc[0]).all():
            raise InputFileError(
                str(path), f"its {column!r} column contradicts its folder {column}={value}", column=column
            )
    return table


def check_unique_columns(table: pd.DataFrame, *, path: Path) -> None:
    """A file that names a column twice (after stripping) is one :class:`InputFileError` naming it."""
    twice = table.columns[table.columns.duplicated()]
    if len(twice):
        raise InputFileError(str(path), f"the file names the column {twice[0]!r} twice", column=str(twice[0]))


def with_parquet_lines(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    """A Parquet file has no header line: its rows' ``source_line`` is the row index + 1 (text files: the
    line number, header = line 1, set by the text reader)."""
    if path.suffix.lower() == ".parquet" and S.SOURCE_LINE not in table:
        table = table.assign(**{S.SOURCE_LINE: range(1, len(table) + 1)})
    return table


def canonical_columns(table: pd.DataFrame, *, source: str) -> pd.DataFrame:
    """Check and order the columns of a well table or a pre-normalized response table.

    A table with a ``response_scale`` column is a response table; otherwise a well table.
    Adds ``source_file`` and ``source_line`` (row number + 2, as in a file with a header) unless
    the reader already set them (a format reader points back into its own source file).
    """
    responses = S.RESPONSE_SCALE in table.columns
    required = S.REQUIRED_RESPONSE_COLUMNS if responses else S.REQUIRED_WELL_COLUMNS
    columns = S.RESPONSE_TABLE_COLUMNS if responses else S.WELL_COLUMNS
    path = source
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise InputFileError(
            str(path),
            f"required column(s) missing: {', '.join(missing)} (found: {', '.join(map(str, table.columns))})",
            column=missing[0],
        )
    identifiers = [c for c in (S.CELL_LINE_ID, S.PERTURBAGEN_ID) if c in table.columns]  # optional, kept
    out = table.reindex(columns=[*columns, *identifiers])
    out[S.SOURCE_FILE] = table[S.SOURCE_FILE].to_numpy() if S.SOURCE_FILE in table else str(path)
    out[S.SOURCE_LINE] = table[S.SOURCE_LINE].to_numpy() if S.SOURCE_LINE in table else range(2, len(out) + 2)
    if S.RECORD_PROBLEM in table:  # a text reader's note on lines that are not well-formed records
        out[S.RECORD_PROBLEM] = table[S.RECORD_PROBLEM].to_numpy()
    return out.reset_index(drop=True)


def read_inputs(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Read several canonical files into one table (rows keep their file and line)."""
    frames = [read_canonical(p) for p in paths]
    if not frames:
        raise InputFileError("<none>", "no input file given")
    kinds = {S.RESPONSE_SCALE in f.columns for f in frames}
    if len(kinds) > 1:
        names = ", ".join(str(p) for p in paths)
        raise InputFileError(
            names, "well tables and pre-normalized response tables cannot be mixed in one run"
        )
    return pd.concat(frames, ignore_index=True)


def _read_raw(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return parquet_table(path)
    if suffix in _TEXT_SUFFIXES:
        return read_records(path)
    if not path.is_file():
        raise InputFileError(str(path), "file not found")
    raise InputFileError(str(path), f"unknown file type {suffix!r}: use .csv, .tsv or .parquet")
