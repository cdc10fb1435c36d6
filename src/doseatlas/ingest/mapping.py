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
from doseatlas._canon import stripped_text, value_text
from doseatlas.errors import InputFileError
from doseatlas.ingest._common import finish, parquet_table
from doseatlas.ingest._records import read_records
from doseatlas.ingest.canonical import check_unique_columns

SECTIONS = {"source", "columns", "constants", "values"}
SOURCE_KEYS = {"sep", "skip_rows"}
KNOWN = set(S.RESPONSE_TABLE_COLUMNS) | set(S.WELL_COLUMNS) | {S.ROLE, S.SIGNAL}
_PROVENANCE = [S.SOURCE_LINE, S.RECORD_PROBLEM]


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
    _check_source(spec.get("source", {}), path=path)
    for column, table in spec.get("values", {}).items():
        if not isinstance(table, dict) or not all(isinstance(v, str | int | float) for v in table.values()):
            raise InputFileError(
                str(path), f"[values.{column}] must map source values to values", column=column
            )
    return spec


def _check_source(source: dict, *, path: Path) -> None:
    """``[source]``: only ``sep`` (one character) and ``skip_rows`` (an integer >= 0); errors name the key."""
    unknown = sorted(set(source) - SOURCE_KEYS)
    if unknown:
        raise InputFileError(
            str(path),
            f"unknown key [source] {unknown[0]} (use {', '.join(sorted(SOURCE_KEYS))})",
            column=unknown[0],
        )
    skip = source.get("skip_rows", 0)
    if isinstance(skip, bool) or not isinstance(skip, int) or skip < 0:
        raise InputFileError(
            str(path), f"[source] skip_rows must be an integer >= 0, not {skip!r}", column="skip_rows"
        )
    sep = source.get("sep", ",")
    if not isinstance(sep, str) or len(sep) != 1 or sep in '"\r\n':
        raise InputFileError(
            str(path),
            f"[source] sep must be one character (not a quote or line end), not {sep!r}",
            column="sep",
        )


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
        table.columns = [str(c).strip() for c in table.columns]
        check_unique_columns(table, path=path)
        table[S.SOURCE_LINE] = np.arange(len(table)) + 1  # Parquet: row index + 1 (no header line)
    else:  # every line accounted for: blank and malformed lines are rows with a record_problem
        table = read_records(path, sep=source.get("sep"), skip_rows=source.get("skip_rows", 0))
    renames = spec.get("columns", {})
    absent = [c for c in renames if c not in table.columns]
    if absent:
        raise InputFileError(
            str(path), f"column(s) named in {map_path.name} not found: {', '.join(absent)}", column=absent[0]
        )
    out = (
        table[list(renames)].rename(columns=renames)
        if renames
        else table.drop(columns=_PROVENANCE, errors="ignore")
    )
    if out.columns.duplicated().any():
        raise InputFileError(str(map_path), "two source columns map to the same canonical column")
    constants = spec.get("constants", {})
    clash = [c for c in constants if c in out.columns]
    if clash:
        raise InputFileError(
            str(map_path), f"constant given for a column the file has: {clash[0]}", column=clash[0]
        )
    for column, value in constants.items():
        out[column] = value_text(value)
    for column, table_map in spec.get("values", {}).items():
        if column in out:
            text = stripped_text(out[column])
            out[column] = text.map({value_text(k): value_text(v) for k, v in table_map.items()}).fillna(text)
    if S.RECORD_PROBLEM in table:
        out[S.RECORD_PROBLEM] = table[S.RECORD_PROBLEM]
    attrs = {"defaults": dict(constants), "mapping_file": str(map_path)}
    return finish(out, path=path, lines=table[S.SOURCE_LINE].to_numpy(), attrs=attrs)
