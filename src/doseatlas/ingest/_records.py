"""Reading a delimited text file record by record, each record pointing at its physical line.

The canonical and the mapping readers read text through :func:`read_records`. Unlike a plain
``pandas.read_csv`` it keeps what a careful reader of the file would see:

* ``source_line`` is the physical line where the record *starts* (a quoted cell may span lines;
  line ends ``\\n``, ``\\r\\n`` and ``\\r`` each end a line);
* a blank line (no value in any field) is a row with ``record_problem = "blank_line: ..."``;
* a line with more or fewer fields than the header is a row with ``record_problem =
  "wrong_field_count: ..."`` (its values are not trusted: validation sends it to the ledger);
* a header naming one column twice is an :class:`InputFileError` naming that column.

Values are parsed by pandas' C parser (fast); the record structure (where each record starts, how
many fields it has) by a scan of the lines, and by Python's ``csv`` module for the few records with
quotes. When the two disagree (stray quote characters inside unquoted fields) the whole file is read
by the ``csv`` module, so that values and lines always come from one parse.
"""

from __future__ import annotations

import csv
import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from doseatlas import schemas as S
from doseatlas.errors import InputFileError

_SEPARATORS = {".csv": ",", ".tsv": "\t", ".txt": "\t"}
_LINE_END = re.compile(r"\r\n|\r|\n")
_QUOTE = '"'
_SPACE = " \t\f\v"
BLANK = S.RowReason.BLANK_LINE.value
WRONG_COUNT = S.RowReason.WRONG_FIELD_COUNT.value


@dataclass(frozen=True)
class _Lines:
    """The physical lines of a text (without their line ends) and the offset where each starts."""

    text: str
    lines: list[str]
    offsets: np.ndarray  # len(lines) + 1 entries: start of each line, then the end of the text

    @classmethod
    def of(cls, text: str) -> _Lines:
        if "\r" in text:
            lines = _LINE_END.split(text)
            ends = np.array([len(e) for e in _LINE_END.findall(text)] + [0], dtype=np.int64)
        else:  # the common case, split by the fast str.split
            lines = text.split("\n")
            ends = np.ones(len(lines), dtype=np.int64)
        if lines and lines[-1] == "":  # the text ends with a line end (or is empty): no further line
            lines.pop()
        lengths = np.fromiter((len(x) for x in lines), dtype=np.int64, count=len(lines))
        offsets = np.concatenate([[0], np.cumsum(lengths + ends[: len(lines)])])
        return cls(text=text, lines=lines, offsets=offsets)

    def span(self, first: int, last: int) -> str:
        """Text of lines ``first`` to ``last`` (0-based, inclusive), line ends between them kept."""
        return self.text[self.offsets[first] : self.offsets[last + 1]]


def read_records(path: str | Path, *, sep: str | None = None, skip_rows: int = 0) -> pd.DataFrame:
    """Read a delimited text file: every value as text, one row per record after the header.

    Parameters
    ----------
    path
        The file (UTF-8, a byte-order mark is skipped).
    sep
        One character; default from the suffix (``.csv`` comma, ``.tsv``/``.txt`` tab).
    skip_rows
        Physical lines before the header.

    Returns
    -------
    pandas.DataFrame
        The header's columns (names stripped), ``source_line`` (1-based physical line where the record
        starts) and ``record_problem`` (empty for a well-formed record).

    Raises
    ------
    InputFileError
        The file is missing, not UTF-8, has no header line, a header naming a column twice, or cannot be
        parsed (an unterminated quote).
    """
    path = Path(path)
    sep = sep or _SEPARATORS.get(path.suffix.lower().removesuffix(".gz"), ",")
    text = _text(path)
    plain = _QUOTE not in text and "\r" not in text  # one line per record: no scan of the lines needed
    table = _plain(path, text, sep=sep, skip_rows=skip_rows) if plain else None
    return table if table is not None else _scanned(path, text, sep=sep, skip_rows=skip_rows)


def _plain(path: Path, text: str, *, sep: str, skip_rows: int) -> pd.DataFrame | None:
    """A text without quotes and carriage returns: every line is one record (None when pandas finds a line
    with two or more fields beyond the header's, so that the lines must be scanned)."""
    parts = text.split("\n", skip_rows + 1)
    if len(parts) <= skip_rows or (len(parts) == skip_rows + 1 and parts[skip_rows] == ""):
        raise InputFileError(str(path), f"no header line (the file has {min(len(parts), skip_rows)} line(s))")
    header = _header(path, parts[skip_rows].split(sep), line=skip_rows + 1)
    rest = parts[skip_rows + 1] if len(parts) > skip_rows + 1 else ""
    counts = _field_counts(rest, sep)
    values = _parse(path, sep=sep, skip=skip_rows + 1, width=max(len(header), int(counts.max(initial=0))),
                    n=len(counts), text=None)  # fmt: skip
    if values is None or len(values) != len(counts):
        return None
    maybe = (counts == 1) | values[0].str.strip(sep + _SPACE).eq("").to_numpy()  # a blank line starts blank
    blank = np.zeros(len(values), dtype=bool)
    blank[maybe] = values[maybe].fillna("").apply(lambda c: c.str.strip(_SPACE).eq("")).all(axis=1)
    first = np.arange(len(values), dtype=np.int64) + skip_rows + 1
    return _table(values, header, first=first, counts=counts, blank=blank)


def _field_counts(text: str, sep: str) -> np.ndarray:
    """Fields on each line of a text without quotes: separators + 1 (counted on the UTF-8 bytes when the
    separator is one byte)."""
    if not text:
        return np.zeros(0, dtype=np.int64)
    if len(sep.encode("utf-8")) != 1:
        lines = text.split("\n")
        lines = lines[:-1] if text.endswith("\n") else lines
        return np.fromiter((x.count(sep) + 1 for x in lines), dtype=np.int64, count=len(lines))
    data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    ends = np.flatnonzero(data == 10)
    if not text.endswith("\n"):
        ends = np.append(ends, len(data))
    starts = np.concatenate([[0], ends[:-1] + 1])
    seps = np.flatnonzero(data == ord(sep))
    return np.searchsorted(seps, ends) - np.searchsorted(seps, starts) + 1


def _scanned(path: Path, text: str, *, sep: str, skip_rows: int) -> pd.DataFrame:
    """Any text: the records found by a scan of the lines (quotes may span lines)."""
    lines = _Lines.of(text)
    if skip_rows >= len(lines.lines):
        raise InputFileError(str(path), f"no header line (the file has {len(lines.lines)} line(s))")
    first, counts, blank = _structure(lines, sep=sep, skip_rows=skip_rows)
    header = _header(path, _fields(lines.span(first[0], first[1] - 1), sep), line=skip_rows + 1)
    first, counts, blank = first[1:], counts[1:], blank[1:]
    width = max([len(header), *counts.tolist()])
    start = int(first[0])
    direct = _QUOTE not in text[: lines.offsets[start]] and "\r" not in text[: lines.offsets[start]]
    values = _parse(path, sep=sep, skip=start if direct else 0, width=width, n=len(counts),
                    text=None if direct else text[lines.offsets[start] :])  # fmt: skip
    if values is None or len(values) != len(counts):  # stray quotes: one parse for values and lines
        first, counts, blank, values = _csv_records(lines, sep=sep, start=start)
    return _table(values, header, first=np.asarray(first[: len(counts)]), counts=counts, blank=blank)


def _table(values: pd.DataFrame, header: list[str], **records: np.ndarray) -> pd.DataFrame:
    table = values.iloc[:, : len(header)].fillna("")
    table.columns = header
    table[S.SOURCE_LINE] = np.asarray(records["first"], dtype=np.int64) + 1
    counts, blank = np.asarray(records["counts"]), np.asarray(records["blank"], dtype=bool)
    table[S.RECORD_PROBLEM] = _problems(counts, blank, len(header))
    return table.reset_index(drop=True)


def _text(path: Path) -> str:
    if not path.is_file():
        raise InputFileError(str(path), "file not found")
    try:
        return path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(str(path), f"cannot be read as UTF-8 text: {exc}") from exc


def _fields(record: str, sep: str) -> list[str]:
    try:
        return next(csv.reader(io.StringIO(record, newline=""), delimiter=sep, strict=False), [])
    except csv.Error:
        return [record]


def _header(path: Path, fields: list[str], *, line: int) -> list[str]:
    """Stripped column names (an empty name becomes ``Unnamed: i``); a name given twice is an error."""
    names = [f.strip() or f"Unnamed: {i}" for i, f in enumerate(fields)]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InputFileError(
                str(path), f"the header names the column {name!r} twice", column=name, line=line
            )
        seen.add(name)
    return names


def _structure(lines: _Lines, *, sep: str, skip_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each record (header included) starts (0-based line, plus the end as last entry), how many
    fields it has and whether it is blank, from the lines after ``skip_rows``."""
    rest = lines.lines[skip_rows:]
    n = len(rest)
    quotes = np.fromiter((x.count(_QUOTE) for x in rest), dtype=np.int64, count=n)
    ends = np.cumsum(quotes) % 2 == 0  # a record ends on a line where the quotes seen so far pair up
    ends[-1] = True  # an unterminated quote runs to the end of the file (the value parser refuses it)
    last = np.flatnonzero(ends)
    first = np.concatenate([[0], last[:-1] + 1]).astype(np.int64)
    counts = np.fromiter((x.count(sep) + 1 for x in rest), dtype=np.int64, count=n)[first]
    blank = np.fromiter((not x.strip(sep + _SPACE) for x in rest), dtype=bool, count=n)[first]
    for k in np.flatnonzero((last > first) | (quotes[first] > 0)):  # quoted records: parsed as CSV
        fields = _fields(lines.span(skip_rows + first[k], skip_rows + last[k]), sep)
        counts[k], blank[k] = len(fields), not "".join(fields).strip(_SPACE)
    return np.append(first, n) + skip_rows, counts, blank


def _parse(path: Path, *, sep: str, skip: int, width: int, n: int, text: str | None) -> pd.DataFrame | None:
    """``n`` records by pandas' C parser, from the file after ``skip`` lines or from ``text``; None when it
    cannot split them into ``width`` columns."""
    if n == 0:
        return pd.DataFrame(columns=range(width), dtype=object)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pd.errors.ParserWarning)
            return pd.read_csv(
                path if text is None else io.StringIO(text),
                skiprows=skip if text is None else 0,
                encoding="utf-8",
                sep=sep,
                header=None,
                names=list(range(width)),
                index_col=False,
                dtype=str,
                keep_default_na=False,
                na_values=[],
                skip_blank_lines=False,
                engine="c",
            )
    except (ValueError, pd.errors.ParserError) as exc:
        if "EOF inside string" in str(exc):
            raise InputFileError(str(path), "a quoted value is never closed (unterminated quote)") from exc
        return None


def _csv_records(lines: _Lines, *, sep: str, start: int | None) -> tuple[list, list, list, pd.DataFrame]:
    """Records after the header by the ``csv`` module alone: start lines, field counts, blanks, values."""
    text = lines.text[lines.offsets[start] :] if start is not None else ""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=False)
    first, counts, blank, rows = [], [], [], []
    previous = 0
    for record in reader:
        first.append(start + previous)
        counts.append(len(record))
        blank.append(not "".join(record).strip(_SPACE))
        rows.append(record)
        previous = reader.line_num
    width = max(counts, default=0)
    values = pd.DataFrame([r + [None] * (width - len(r)) for r in rows], columns=range(width), dtype=object)
    return first, counts, blank, values


def _problems(counts: np.ndarray, blank: np.ndarray, width: int) -> np.ndarray:
    out = np.full(len(counts), "", dtype=object)
    wrong = ~blank & (counts != width)
    out[blank] = f"{BLANK}: blank line (no value in any field)"
    if wrong.any():
        out[wrong] = [f"{WRONG_COUNT}: the line has {c} field(s), the header {width}" for c in counts[wrong]]
    return out
