"""Reader of generic plate-reader matrix exports joined with a plate map.

Matrix file (comma or tab separated, detected from the first non-blank line), one or more blocks::

    Plate: P1                 <- header line naming the plate ("Plate: <id>", "Plate <id>" or "<id>")
    ,1,2,3,...,24             <- column numbers (first cell empty or a label)
    A,101,99,...              <- one line per plate row, values = signals (empty = not read)
    B,...

Blank lines are ignored. A file without any plate header is one plate named after the file.
Plate map (CSV): ``well`` plus the canonical columns ``role, cell_line, perturbation_type, perturbagen,
concentration, concentration_unit, time_h, readout, dataset`` (optional ``plate`` - empty or ``*``
means every plate -, ``replicate``, ``seeding_density``). A matrix cell absent from the map keeps an
role ``not_in_plate_map`` (ledger: unknown role); a mapped well absent from the matrix gets an empty signal (ledger:
missing signal), pointing to its line in the map.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pandas as pd

from doseatlas import schemas as S
from doseatlas.errors import InputFileError
from doseatlas.ingest._common import canonical_well, finish, require, text_table

MAP_COLUMNS = (
    S.ROLE,
    S.CELL_LINE,
    S.PERTURBATION_TYPE,
    S.PERTURBAGEN,
    S.CONCENTRATION,
    S.CONCENTRATION_UNIT,
    S.TIME_H,
    S.READOUT,
    S.DATASET,
)
#: role of a matrix cell the plate map does not describe (goes to the ledger as an unknown role)
NOT_IN_MAP = S.RowReason.NOT_IN_PLATE_MAP.value
_ROW = re.compile(r"^[A-Za-z]{1,2}$")
_PLATE = re.compile(r"^\s*plate\s*(?:id)?\s*[:=]?\s*(.*)$", re.IGNORECASE)


def read(path: str | Path, *, plate_map: str | Path) -> pd.DataFrame:
    """Read a plate-reader matrix file and its plate map into the canonical well table.

    Raises
    ------
    InputFileError
        Unreadable file, a malformed block (data row before the column header, a row longer than
        the header, a repeated well) or a plate map without its required columns; the message names
        the file, the line and the column.
    """
    path, map_path = Path(path), Path(plate_map)
    cells = parse_matrix(path)
    return join_plate_map(cells, read_plate_map(map_path), path=path, map_path=map_path)


def read_plate_map(map_path: Path, *, columns: tuple[str, ...] = MAP_COLUMNS) -> pd.DataFrame:
    """The plate map with canonical well names, its file line per row (``_map_line``) and ``plate`` (``*`` =
    every plate where empty or absent); ``columns`` are required."""
    layout = text_table(map_path)
    require(layout, (S.WELL, *columns), path=map_path, what="plate map")
    layout = layout.assign(
        **{S.WELL: layout[S.WELL].map(canonical_well), "_map_line": layout.index.to_numpy() + 2}
    )
    if S.PLATE not in layout:
        layout[S.PLATE] = "*"
    layout[S.PLATE] = layout[S.PLATE].str.strip().replace("", "*")
    return layout


def join_plate_map(cells: pd.DataFrame, layout: pd.DataFrame, *, path: Path, map_path: Path) -> pd.DataFrame:
    specific = layout[layout[S.PLATE] != "*"]
    generic = layout[layout[S.PLATE] == "*"].drop(columns=S.PLATE)
    twice = pd.concat([specific[specific.duplicated([S.PLATE, S.WELL])], generic[generic.duplicated(S.WELL)]])
    if len(twice):
        line = int(twice["_map_line"].min())
        raise InputFileError(str(map_path), "well listed twice for the same plate", column=S.WELL, line=line)
    on_plate = cells.merge(specific, on=[S.PLATE, S.WELL], how="left")
    by_well = cells.merge(generic, on=S.WELL, how="left")
    use_specific = on_plate["_map_line"].notna().to_numpy()
    joined = on_plate.copy()
    for column in [c for c in layout.columns if c not in (S.PLATE, S.WELL)]:
        joined[column] = np.where(use_specific, on_plate[column], by_well[column])
    joined[S.SOURCE_FILE] = str(path)
    unread = _unread(cells, specific, generic, map_path=map_path)
    out = pd.concat([joined, unread], ignore_index=True)
    out[S.ROLE] = out[S.ROLE].fillna(NOT_IN_MAP)  # validation: ledger reason not_in_plate_map
    for column in MAP_COLUMNS:
        out[column] = out[column].fillna("")
    return finish(out.drop(columns="_map_line"), path=path, lines=out[S.SOURCE_LINE])


def _unread(
    cells: pd.DataFrame, specific: pd.DataFrame, generic: pd.DataFrame, *, map_path: Path
) -> pd.DataFrame:
    """Mapped wells with no value in the matrix (empty signal, pointing to the map line)."""
    read_keys = set(zip(cells[S.PLATE], cells[S.WELL], strict=True))
    keys = zip(specific[S.PLATE], specific[S.WELL], strict=True)
    missing = specific[[key not in read_keys for key in keys]]
    generic_missing = [
        generic[~generic[S.WELL].isin(cells.loc[cells[S.PLATE] == p, S.WELL])].assign(**{S.PLATE: p})
        for p in cells[S.PLATE].unique()
    ]
    out = pd.concat([missing, *generic_missing], ignore_index=True)
    out[S.SIGNAL] = ""
    out[S.SOURCE_FILE] = str(map_path)
    out[S.SOURCE_LINE] = out["_map_line"]
    return out


def _split(line: str, sep: str) -> list[str]:
    return [c.strip() for c in next(csv.reader([line], delimiter=sep))] if line.strip() else []


def parse_matrix(path: str | Path) -> pd.DataFrame:
    """Parse the matrix file into rows ``plate, well, signal, source_line`` (signal as text)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(str(path), "file not found")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(str(path), f"cannot be read as text: {exc}") from exc
    first = next((ln for ln in lines if ln.strip()), "")
    sep = "\t" if first.count("\t") > first.count(",") else ","
    state = {"plate": path.stem, "header": None, "named": False}
    records: list[tuple[str, str, str, int]] = []
    seen: set[tuple[str, str]] = set()
    for number, line in enumerate(lines, start=1):
        fields = _split(line, sep)
        if not any(fields):
            continue
        _consume(fields, number, state, records, seen, path=path)
    if not records:
        raise InputFileError(
            str(path), "no plate data found (expected a column header line and rows A, B, ...)"
        )
    return pd.DataFrame(records, columns=[S.PLATE, S.WELL, S.SIGNAL, S.SOURCE_LINE])


def _consume(fields: list[str], number: int, state: dict, records: list, seen: set, *, path: Path) -> None:
    head, rest = fields[0], fields[1:]
    while rest and rest[-1] == "":
        rest = rest[:-1]
    if rest and all(re.fullmatch(r"\d{1,3}", c) for c in rest) and not _ROW.match(head):
        state["header"] = [int(c) for c in rest]  # column numbers
        return
    if _ROW.match(head) and state["header"] is not None:
        if len(rest) > len(state["header"]):
            raise InputFileError(
                str(path),
                f"row {head} has {len(rest)} values but the header has {len(state['header'])} columns",
                line=number,
                column=str(len(state["header"]) + 2),
            )
        for col, value in zip(state["header"], rest, strict=False):
            well = canonical_well(f"{head}{col}")
            if (state["plate"], well) in seen:
                raise InputFileError(
                    str(path), f"well {well} of plate {state['plate']} appears twice", line=number
                )
            seen.add((state["plate"], well))
            records.append((state["plate"], well, value, number))
        return
    if _ROW.match(head) and rest:
        raise InputFileError(
            str(path), "data row before a column header line (,1,2,3,...)", line=number, column="1"
        )
    match = _PLATE.match(head)
    name = (match.group(1).strip() if match else head) or (rest[0] if rest else "")
    if not name:
        raise InputFileError(str(path), "plate header line without a plate id", line=number, column="1")
    state.update(plate=name, header=None, named=True)
