"""Parts of a partitioned canonical input: one file each, read on its own (for :mod:`doseatlas.scale`).

A file given directly is one part. A directory is a Parquet data set: every ``.parquet`` file below it is one
part, and the ``key=value`` folder names on its path (hive partitioning, e.g. ``dataset=lab_a/``) are columns of
its rows, as pyarrow and Dask write them. Each part is read exactly like a canonical file, so its rows keep
their own file and line for the ledger.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import pandas as pd

from doseatlas.errors import InputFileError
from doseatlas.ingest.canonical import read_canonical


@dataclass(frozen=True)
class Part:
    """One input file and the partition values its folders give its rows (column -> text)."""

    path: Path
    values: dict[str, str] = field(default_factory=dict)


def list_parts(paths: Iterable[str | Path]) -> list[Part]:
    """The parts of the inputs, in a stable order (files as given; a directory's files sorted by path).

    Raises
    ------
    InputFileError
        A path that does not exist, or a directory without any ``.parquet`` file.
    """
    parts: list[Part] = []
    for item in map(Path, paths):
        if item.is_dir():
            files = sorted(p for p in item.rglob("*.parquet") if p.is_file())
            if not files:
                raise InputFileError(str(item), "directory holds no .parquet file")
            parts += [Part(p, _hive_values(p.relative_to(item))) for p in files]
        elif item.is_file():
            parts.append(Part(item))
        else:
            raise InputFileError(str(item), "file not found")
    return parts


def _hive_values(relative: Path) -> dict[str, str]:
    """``key=value`` folder names of a path inside a data set (values URL-decoded, as pyarrow writes them)."""
    values = {}
    for name in relative.parts[:-1]:
        key, sep, value = name.partition("=")
        if sep and key:
            values[unquote(key)] = unquote(value)
    return values


def read_part(part: Part) -> pd.DataFrame:
    """Read one part as a canonical table (partition values added as columns the file does not have).

    Raises
    ------
    InputFileError
        Unreadable file, a partition value that contradicts the file's own column, or a required column missing.
    """
    return read_canonical(part.path, partition_values=part.values)
