"""The ``cell_line,doubling_time_h`` table of ``--doubling-times`` / ``run(doubling_times=PATH)``: a strict reader
whose every message names the file, line and column."""

from __future__ import annotations

import csv
import math
from io import StringIO
from pathlib import Path

from doseatlas import schemas as S
from doseatlas.errors import InputFileError

_DOUBLING_COLUMNS = (S.CELL_LINE, S.DOUBLING_TIME_H)


def read_doubling_time_table(path: Path | None) -> dict[str, float] | None:
    """``{cell_line: hours}`` from a CSV/TSV with columns ``cell_line`` and ``doubling_time_h``.

    Raises
    ------
    InputFileError
        Naming the file (and line and column) when it cannot be read or decoded, has no header or no rows,
        lacks a column, or a row has an empty cell line, a doubling time that is not a positive finite number
        of hours, or repeats a cell line with another doubling time (the same value twice is accepted).
    """
    if path is None:
        return None
    rows = _doubling_rows(path)
    times: dict[str, float] = {}
    lines: dict[str, int] = {}
    for line, line_name, text in rows:
        hours = _doubling_time(path, line, text)
        if line_name in times and times[line_name] != hours:
            raise InputFileError(
                str(path),
                f"cell line {line_name!r} has doubling time {times[line_name]:g} h on line {lines[line_name]} "
                f"and {hours:g} h here",
                column=S.DOUBLING_TIME_H,
                line=line,
            )
        times.setdefault(line_name, hours)
        lines.setdefault(line_name, line)
    return times


def _doubling_rows(path: Path) -> list[tuple[int, str, str]]:
    """(line, cell line, doubling-time text) of every non-blank row; InputFileError for an unusable file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputFileError(str(path), f"cannot be read: {exc.strerror or exc}") from None
    try:
        table = list(_csv_rows(data.decode("utf-8-sig")))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputFileError(str(path), f"is not a UTF-8 CSV/TSV text file ({exc})") from None
    need = f"needs columns {' and '.join(_DOUBLING_COLUMNS)}"
    if not table:
        raise InputFileError(str(path), f"is empty: {need}")
    header = [name.strip() for name in table[0][1]]
    for column in _DOUBLING_COLUMNS:
        if column not in header:
            raise InputFileError(str(path), need, column=column, line=1)
    at = [header.index(c) for c in _DOUBLING_COLUMNS]
    rows = [(line, *(cells[i].strip() if i < len(cells) else "" for i in at)) for line, cells in table[1:]]
    if not rows:
        raise InputFileError(str(path), "has a header but no rows")
    for line, name, _ in rows:
        if not name:
            raise InputFileError(str(path), "the cell line is empty", column=S.CELL_LINE, line=line)
    return rows


def _csv_rows(text: str):
    """(line number, cells) of the non-blank rows; the delimiter (tab, semicolon or comma) from the header."""
    header = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in header else ";" if ";" in header and "," not in header else ","
    reader = csv.reader(StringIO(text, newline=""), delimiter=delimiter)
    for cells in reader:
        if any(cell.strip() for cell in cells):
            yield reader.line_num, cells


def _doubling_time(path: Path, line: int, text: str) -> float:
    """A doubling time in hours: a positive finite number, else InputFileError naming line and column."""
    try:
        hours = float(text)
    except ValueError:
        hours = None
    if hours is None or not (math.isfinite(hours) and hours > 0):
        raise InputFileError(
            str(path),
            f"doubling time {text!r} is not a positive finite number of hours",
            column=S.DOUBLING_TIME_H,
            line=line,
        )
    return hours
