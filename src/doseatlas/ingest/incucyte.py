"""Reader of IncuCyte (Zoom) time-course exports joined with a plate map (``--format incucyte``).

Export (tab separated, as thunor's ``read_incucyte`` reads it)::

    Label: <plate name>          <- optional; the plate is the file's stem without it
    Cell Type: <cell line>       <- optional; fills the plate map's empty cell_line
    Date Time<TAB>Elapsed<TAB>A1<TAB>B1 ...     <- header: read time, hours since treatment, one column per well
    3/27/2018 2:20:00 PM<TAB>0<TAB>3<TAB>796 ...

Columns named ``A1, Image 2`` are further images of well A1: their counts are summed (as thunor does; the
further images are counted in ``attrs["records_folded"]``, which the run reports in ``summary.json``). Each
cell becomes one row: the well at ``time_h = Elapsed``, ``signal`` = the count. A read at ``Elapsed = 0`` is the
well read at drug addition: its role is ``time_zero`` (blank wells stay blank), so GR values and percent growth
have their reference. The plate map is the one of ``plate-matrix`` (``well``, ``role``, ``cell_line``, ...,
``readout``, ``dataset``), without times: they come from the export (a ``time_h`` column must be empty).
Empty cells are wells not read at that time (no row).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from doseatlas import schemas as S
from doseatlas.errors import InputFileError
from doseatlas.ingest._common import canonical_well
from doseatlas.ingest.plate_matrix import MAP_COLUMNS, join_plate_map, read_plate_map

_LABEL, _CELL_TYPE = "label:", "cell type:"
_IMAGE_SUFFIX = re.compile(r",.*$")


def read(path: str | Path, *, plate_map: str | Path) -> pd.DataFrame:
    """Read an IncuCyte export and its plate map into the canonical well table.

    Raises
    ------
    InputFileError
        No ``Date Time / Elapsed`` header, a data line longer than the header, a plate map without its
        columns or with times; the message names the file, line and column.
    """
    path, map_path = Path(path), Path(plate_map)
    cells, cell_type = parse_incucyte(path)
    layout = read_plate_map(map_path, columns=tuple(c for c in MAP_COLUMNS if c != S.TIME_H))
    if S.TIME_H in layout and layout[S.TIME_H].astype(str).str.strip().ne("").any():
        raise InputFileError(str(map_path), "read times come from the IncuCyte export: leave time_h empty",
                             column=S.TIME_H)  # fmt: skip
    layout = layout.drop(columns=[S.TIME_H], errors="ignore")
    if cell_type:
        layout[S.CELL_LINE] = layout[S.CELL_LINE].where(layout[S.CELL_LINE].str.strip().ne(""), cell_type)
    layout[S.PLATE] = "*"  # one export is one plate
    out = join_plate_map(cells, layout, path=path, map_path=map_path)
    at_start = out[S.TIME_H].astype(str).str.strip().map(_is_zero) & out[S.ROLE].ne(S.Role.BLANK.value)
    out.loc[at_start, S.ROLE] = S.Role.TIME_ZERO.value
    out.attrs[S.RECORDS_FOLDED] = cells.attrs[S.RECORDS_FOLDED]
    return out


def _is_zero(text: str) -> bool:
    try:
        return float(text) == 0.0
    except ValueError:
        return False


def parse_incucyte(path: str | Path) -> tuple[pd.DataFrame, str | None]:
    """The cells of an export as rows ``plate, well, time_h, signal, source_line`` (text), and its cell type."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    except OSError as exc:
        raise InputFileError(str(path), f"cannot be read: {exc}") from exc
    plate, cell_type, header_at = path.stem, None, None
    for number, line in enumerate(lines):
        lowered = line.strip().lower()
        if lowered.startswith(_LABEL) and line.split(":", 1)[1].strip():
            plate = line.split(":", 1)[1].strip()
        elif lowered.startswith(_CELL_TYPE) and line.split(":", 1)[1].strip():
            cell_type = line.split(":", 1)[1].strip()
        elif [f.strip().lower() for f in line.split("\t")[:2]] == ["date time", "elapsed"]:
            header_at = number
            break
    if header_at is None:
        raise InputFileError(str(path), "no 'Date Time<TAB>Elapsed' header: not an IncuCyte export")
    wells = [canonical_well(_IMAGE_SUFFIX.sub("", f.strip())) for f in lines[header_at].split("\t")[2:]]
    return _cells(lines, header_at, wells, plate=plate, path=path), cell_type


def _cells(lines: list[str], header_at: int, wells: list[str], *, plate: str, path: Path) -> pd.DataFrame:
    records, further_images = [], 0
    for number in range(header_at + 1, len(lines)):
        fields = lines[number].split("\t")
        if not "".join(fields).strip():
            continue
        if len(fields) > len(wells) + 2:
            raise InputFileError(str(path), "more values than wells in the header", line=number + 1)
        elapsed = fields[1].strip() if len(fields) > 1 else ""
        values: dict[str, list[str]] = {}
        for well, value in zip(wells, fields[2:], strict=False):
            if value.strip():
                values.setdefault(well, []).append(value.strip())
        records += [(plate, w, elapsed, _summed(v), number + 1) for w, v in values.items()]
        further_images += sum(len(v) - 1 for v in values.values())
    cells = pd.DataFrame(records, columns=[S.PLATE, S.WELL, S.TIME_H, S.SIGNAL, S.SOURCE_LINE])
    cells.attrs[S.RECORDS_FOLDED] = {"further_images_summed_into_their_well": further_images}
    return cells


def _summed(values: list[str]) -> str:
    """One well's count: several images of it are summed; a value that is not a number is kept for the ledger."""
    if len(values) == 1:
        return values[0]
    numbers = pd.to_numeric(pd.Series(values), errors="coerce")
    return repr(float(numbers.sum())) if numbers.notna().all() else " + ".join(values)


__all__ = ["parse_incucyte", "read"]
