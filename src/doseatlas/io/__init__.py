"""Writing and reading output tables with their schema version and provenance.

Every table is a Parquet file whose schema metadata holds, under the key ``doseatlas``, a
JSON document with the schema version, the package version, the command, the parameters
and the checksums of the input files. The output directory itself (checked before any work,
written beside its final place, exchanged into it atomically, never anyone else's files) is
:mod:`doseatlas.io.outdir`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from doseatlas import schemas as S
from doseatlas._version import __version__
from doseatlas.io.outdir import (
    OUTPUT_MARKER,
    abandon_output,
    check_new_file,
    commit_output,
    new_file,
    output_directory,
    prepare_output,
)

METADATA_KEY = b"doseatlas"

__all__ = [
    "OUTPUT_MARKER",
    "RUN_TABLES",
    "abandon_output",
    "check_new_file",
    "commit_output",
    "file_checksum",
    "new_file",
    "output_directory",
    "prepare_output",
    "provenance",
    "read_metadata",
    "read_piece",
    "spill_directory",
    "write_piece",
    "write_run",
    "write_table",
]


def file_checksum(path: str | Path) -> str:
    """SHA-256 of a file, as ``sha256:<hex>``."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def provenance(*, inputs: list[str | Path], parameters: dict[str, Any], command: str | None = None) -> dict:
    """The provenance record stored with every output table."""
    return {
        "schema_version": S.SCHEMA_VERSION,
        "package": "doseatlas",
        "package_version": __version__,
        "command": command if command is not None else " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "parameters": parameters,
        "inputs": [{"path": str(p), "checksum": file_checksum(p)} for p in inputs],
    }


#: the unit of the output columns whose unit is given per row
_ROW_UNIT = "the unit named by the row's unit column"
_SCALE_UNIT = "the unit of the row's scale: " + ", ".join(
    f"{scale}: {S.COLUMN_UNITS[scale]}" for scale in S.FIT_SCALES
)


def column_unit(name: str, columns: pd.Index) -> str | None:
    """The unit of output column ``name`` in a table with ``columns`` (the ``unit`` field metadata)."""
    if name in (S.VALUE, S.LOWER, S.UPPER, S.CI_LOWER, S.CI_UPPER, S.BOUND) and S.UNIT in columns:
        return _ROW_UNIT
    if name in S.SCALE_UNIT_COLUMNS and S.SCALE in columns:
        return _SCALE_UNIT
    extra = {
        S.DURATION_H: "h",
        S.WINDOW_LOW: "M",
        S.WINDOW_HIGH: "M",
        "ec50": "M",
        "conc_min": "M",
        "conc_max": "M",
    }
    return {**S.COLUMN_UNITS, **extra}.get(name)


def _with_units(arrow: pa.Table, columns: pd.Index) -> pa.Table:
    fields = []
    for f in arrow.schema:
        unit = column_unit(f.name, columns)
        fields.append(f.with_metadata({**(f.metadata or {}), b"unit": unit.encode()}) if unit else f)
    return pa.Table.from_arrays(arrow.columns, schema=pa.schema(fields, metadata=arrow.schema.metadata))


def write_table(table: pd.DataFrame, path: str | Path, *, meta: dict[str, Any]) -> None:
    """Write ``table`` as Parquet with ``meta`` (JSON) in the schema metadata and the unit of every column that
    has one in its field metadata (``unit``)."""
    arrow = _with_units(pa.Table.from_pandas(table, preserve_index=False), table.columns)
    existing = arrow.schema.metadata or {}
    document = json.dumps({**meta, "table": Path(path).stem, "n_rows": len(table)}, default=str)
    arrow = arrow.replace_schema_metadata({**existing, METADATA_KEY: document.encode()})
    pq.write_table(arrow, path, use_dictionary=dictionary_columns(arrow.schema))


def dictionary_columns(schema: pa.Schema) -> list[str]:
    """The columns written dictionary-encoded: all but the numeric ones. Identifier and status columns repeat a
    few values (a dictionary makes them small); measured values are mostly distinct, where trying a dictionary
    first and falling back to plain encoding took most of the writing time. The values read back are the same."""
    return [f.name for f in schema if not (pa.types.is_floating(f.type) or pa.types.is_integer(f.type))]


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The provenance document stored in a doseatlas Parquet file."""
    metadata = pq.read_schema(path).metadata or {}
    return json.loads(metadata[METADATA_KEY]) if METADATA_KEY in metadata else {}


#: output tables written at the same time by :func:`write_run`
WRITE_THREADS = 2

RUN_TABLES = (
    "responses",
    "curves",
    "metrics",
    "ledger",
    "plates",
    "identities",
    "consistency",
    "growth",
    "converted",
    "time_dependence",
    "dip",
    "interference",
)


def write_run(result: Any, directory: str | Path, *, meta: dict[str, Any]) -> None:
    """Write every table of a :class:`doseatlas.pipeline.RunResult` into ``directory``."""
    from doseatlas.io.streamed import StreamedTable, write_streamed

    directory = Path(directory)

    def write(name: str) -> None:
        table = getattr(result, name)
        if isinstance(table, StreamedTable):  # a well-sized table of a streamed run: row group by row group
            write_streamed(
                table, directory / f"{name}.parquet", meta=meta, with_units=_with_units, key=METADATA_KEY
            )
        else:
            write_table(table, directory / f"{name}.parquet", meta=meta)

    # each table is its own file: two at a time (pyarrow encodes and compresses without holding the GIL), but the
    # tables of a streamed run merged from their pieces one after another (each merge holds its pieces' buffers:
    # two at once set the run's peak); result() re-raises the first error of any of them
    streamed = [n for n in RUN_TABLES if isinstance(getattr(result, n), StreamedTable)]
    with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
        chain = pool.submit(lambda: [write(n) for n in streamed])
        list(pool.map(write, [n for n in RUN_TABLES if n not in streamed]))
        chain.result()
    (directory / "summary.json").write_text(
        json.dumps({**result.summary, "provenance": meta}, indent=2, default=str)
    )


# ------------------------------------------------------------------------------ spill files of a partitioned run
@contextlib.contextmanager
def spill_directory(parent: str | Path | None = None) -> Iterator[Path]:
    """A temporary directory for the pieces a partitioned run shuffles (removed afterwards, also on error)."""
    with tempfile.TemporaryDirectory(prefix="doseatlas-spill-", dir=parent) as name:
        yield Path(name)


def write_piece(table: pd.DataFrame, path: str | Path) -> None:
    """Spill one piece of a shuffle (pickle: exact types and values, read back only by this run)."""
    table.to_pickle(path)


def read_piece(path: str | Path) -> pd.DataFrame:
    """Read a piece written by :func:`write_piece` in this run."""
    return pd.read_pickle(path)
