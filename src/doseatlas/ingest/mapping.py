"""Reader of any tabular file through a declarative mapping (TOML).

Example ``map.toml``::

    [source]              # optional
    sep = ","             # default from the suffix (.csv comma, .tsv/.txt tab); Parquet by suffix
    skip_rows = 0         # lines to skip before the header

    [columns]             # source column -> canonical column
    "Cell Line" = "cell_line"
    "Dose (nM)" = "concentration"
    "Lum" = "signal"

    [constants]           # canonical column -> value for every row (only for columns the file lacks)
    time_h = 72
    readout = "atp"
    dataset = "labX"
    concentration_unit = "nM"

    [values.role]         # per canonical column: source value -> canonical value
    DMSO = "vehicle"
    cpd = "treated"

Constants are recorded in ``table.attrs["defaults"]`` (they come from the mapping, not the file).
A table that ends up with a ``response_scale`` column is a response table, else a well table.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pandas as pd

from doseatlas import schemas as S
from doseatlas.errors import InputFileError
from doseatlas.ingest._common import finish, parquet_table, text_table

SECTIONS = {"source", "columns", "constants", "values"}
KNOWN = set(S.RESPONSE_TABLE_COLUMNS) | set(S.WELL_COLUMNS) | {S.ROLE, S.SIGNAL}


def load_mapping(path: str | Path) -> dict:
    """Load and check a mapping TOML; every problem raises one :class:`InputFileError`."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(str(path), "mapping file not found")
    try:
        spec = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputFileError(str(path), f"not a valid TOML file: {exc}") from exc
    unknown = set(spec) - SECTIONS
    if unknown:
        raise InputFileError(str(path), f"unknown section(s) {sorted(unknown)} (use {sorted(SECTIONS)})")
    for section in SECTIONS:
        if not isinstance(spec.get(section, {}), dict):
            raise InputFileError(
                str(path), f"[{section}] must be a table of key = value pairs", column=section
            )
    targets = (
        list(spec.get("columns", {}).values())
        + list(spec.get("constants", {}))
        + list(spec.get("values", {}))
    )
    bad = [t for t in targets if not isinstance(t, str) or t not in KNOWN]
    if bad:
        raise InputFileError(
            str(path),
            f"unknown canonical column(s) {bad!r} (use {', '.join(sorted(KNOWN))})",
            column=str(bad[0]),
        )
    source = spec.get("source", {})
    if not isinstance(source.get("skip_rows", 0), int) or not isinstance(source.get("sep", ","), str):
        raise InputFileError(
            str(path), "[source] skip_rows must be an integer and sep a string", column="source"
        )
    for column, table in spec.get("values", {}).items():
        if not isinstance(table, dict) or not all(isinstance(v, str | int | float) for v in table.values()):
            raise InputFileError(
                str(path), f"[values.{column}] must map source values to values", column=column
            )
    return spec


def read(path: str | Path, *, mapping: str | Path) -> pd.DataFrame:
    """Read ``path`` with the mapping file ``mapping`` into the canonical well or response table.

    Raises
    ------
    InputFileError
        Bad mapping (names the mapping file and the key), a mapped source column absent from the
        file, a constant for a column the file has, or required canonical columns still missing.
    """
    path, map_path = Path(path), Path(mapping)
    spec = load_mapping(map_path)
    source = spec.get("source", {})
    parquet = path.suffix.lower() == ".parquet"
    if parquet:
        table = parquet_table(path).astype(object)
    else:
        table = text_table(path, sep=source.get("sep"), skip_rows=int(source.get("skip_rows", 0)))
    renames = spec.get("columns", {})
    absent = [c for c in renames if c not in table.columns]
    if absent:
        raise InputFileError(
            str(path), f"column(s) named in {map_path.name} not found: {', '.join(absent)}", column=absent[0]
        )
    out = table[list(renames)].rename(columns=renames) if renames else table.copy()
    if out.columns.duplicated().any():
        raise InputFileError(str(map_path), "two source columns map to the same canonical column")
    constants = spec.get("constants", {})
    clash = [c for c in constants if c in out.columns]
    if clash:
        raise InputFileError(
            str(map_path), f"constant given for a column the file has: {clash[0]}", column=clash[0]
        )
    for column, value in constants.items():
        out[column] = str(value)
    for column, table_map in spec.get("values", {}).items():
        if column in out:
            text = out[column].astype(str).str.strip()
            out[column] = text.map({str(k): str(v) for k, v in table_map.items()}).fillna(text)
    first_line = 1 if parquet else 2 + int(source.get("skip_rows", 0))
    attrs = {"defaults": dict(constants), "mapping_file": str(map_path)}
    return finish(out, path=path, lines=np.arange(len(out)) + first_line, attrs=attrs)
