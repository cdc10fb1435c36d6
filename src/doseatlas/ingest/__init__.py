"""Readers: one per source format, each returning the canonical well table or a response table.

Every reader returns a :class:`pandas.DataFrame` with the canonical well columns of
:mod:`doseatlas.schemas` (values as read, not yet validated) - or, for sources that publish
normalized responses, the response-table columns - plus ``source_file`` and ``source_line`` so
that every row can be traced back to where it came from. ``READERS`` maps format names to readers;
:func:`read_any` reads several files of one format.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd

from doseatlas import schemas as S
from doseatlas.errors import ConfigError, InputFileError
from doseatlas.ingest import (
    curvecurator,
    gdr,
    gdsc,
    grmetrics,
    incucyte,
    mapping,
    pharmacogx,
    plate_matrix,
    thunor,
)
from doseatlas.ingest.canonical import canonical_columns, read_canonical, read_inputs

READERS: dict[str, Callable[..., pd.DataFrame]] = {
    "canonical": read_canonical,
    "gdsc-raw": gdsc.read,
    "grmetrics": grmetrics.read,
    "pharmacogx": pharmacogx.read,
    "curvecurator": curvecurator.read,
    "thunor-hts": thunor.read,
    "gdr": gdr.read,
    "plate-matrix": plate_matrix.read,
    "incucyte": incucyte.read,
    "mapping": mapping.read,
}


def read_any(
    paths: str | Path | Iterable[str | Path],
    *,
    format: str = "canonical",
    mapping: str | Path | None = None,
    **options,
) -> pd.DataFrame:
    """Read one or several files of one format into one table.

    Parameters
    ----------
    paths
        A file or several files.
    format
        A key of :data:`READERS`; with ``mapping`` given, ``"canonical"`` means ``"mapping"``.
    mapping
        A mapping TOML (see :mod:`doseatlas.ingest.mapping`).
    **options
        Passed to the reader (e.g. ``plate_map=`` for ``plate-matrix``, ``time_h=`` for ``thunor-hts``).

    Returns
    -------
    pandas.DataFrame
        The rows of every file; ``attrs`` of the files are merged (``defaults`` etc.).

    Raises
    ------
    ConfigError
        Unknown format, or a mapping with a format other than canonical/mapping.
    InputFileError
        No file, an unreadable file, or well tables mixed with response tables.
    """
    if mapping is not None:
        if format not in ("canonical", "mapping"):
            raise ConfigError(f"mapping= applies to the generic reader, not to format {format!r}")
        format, options = "mapping", {**options, "mapping": mapping}
    if format not in READERS:
        raise ConfigError(f"unknown format {format!r}; use one of {', '.join(READERS)}")
    _check_options(format, options)
    paths = [paths] if isinstance(paths, str | Path) else list(paths)
    if not paths:
        raise InputFileError("<none>", "no input file given")
    for p in paths:
        if Path(p).is_dir():
            raise InputFileError(
                str(p),
                "is a directory: give its files (--engine dask reads a directory of canonical Parquet files)",
            )
    paths = distinct_inputs(paths, format=format)
    frames = [READERS[format](p, **options) for p in paths]
    if len({S.RESPONSE_SCALE in f.columns for f in frames}) > 1:
        names = ", ".join(str(p) for p in paths)
        raise InputFileError(
            names, "well tables and pre-normalized response tables cannot be mixed in one run"
        )
    attrs = merged_attrs(frame.attrs for frame in frames)
    out = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    out.attrs = attrs
    return out


def distinct_inputs(paths: Iterable[str | Path], *, format: str) -> list[str | Path]:
    """``paths`` with the files of one multi-file input kept once (the first named): the three files of a Thunor
    CSV export are one input, read once whichever of them are named."""
    paths = list(paths)
    if format != "thunor-hts":
        return paths
    first: dict[Path, str | Path] = {}
    for p in paths:
        first.setdefault(thunor.wells_file(p), p)
    return list(first.values())


def files_of_inputs(paths: Iterable[str | Path], *, format: str) -> list[Path]:
    """Every file that reading ``paths`` in ``format`` opens (a Thunor CSV export: its three files), each once."""
    if format != "thunor-hts":
        return [Path(p) for p in paths]
    return list(
        dict.fromkeys(f for p in distinct_inputs(paths, format=format) for f in thunor.export_files(p))
    )


def _check_options(format: str, options: dict) -> None:
    """ConfigError (one message, never a TypeError) for an option the reader of ``format`` does not take, or a
    required one that is missing (e.g. ``plate_map=`` with ``grmetrics``, ``format="mapping"`` without
    ``mapping=``)."""
    params = inspect.signature(READERS[format]).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = sorted(k for k in options if k not in params and not takes_any)
    if unknown:
        raise ConfigError(f"format {format!r} does not take the option(s) {', '.join(unknown)}")
    missing = sorted(
        name
        for name, p in params.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
        and p.default is inspect.Parameter.empty
        and name not in options
    )
    if missing:
        raise ConfigError(f"format {format!r} needs the option(s) {', '.join(missing)}")


def merged_attrs(each: Iterable[dict]) -> dict:
    """The ``attrs`` of several tables as one: the first table's value of a key wins, except that dictionaries
    (e.g. ``doubling_times``) are merged key by key (the first table's entry wins) and the record counts
    (:data:`doseatlas.schemas.RECORD_COUNT_ATTRS`) are added up."""
    attrs: dict = {}
    for frame_attrs in each:
        for key, value in frame_attrs.items():
            if key in S.RECORD_COUNT_ATTRS and key in attrs:
                attrs[key] = {r: attrs[key].get(r, 0) + value.get(r, 0) for r in {*attrs[key], *value}}
            elif key == S.FILES_READ:
                attrs[key] = [*attrs.get(key, []), *(f for f in value if f not in attrs.get(key, []))]
            elif isinstance(value, dict) and isinstance(attrs.get(key), dict):
                attrs[key] = {**value, **attrs[key]}
            else:
                attrs.setdefault(key, value)
    return attrs


def read_one(path: str | Path, *, format: str = "canonical", mapping: str | Path | None = None, **options):
    """One file read exactly as :func:`read_any` reads each of its files (a part of a partitioned run)."""
    return read_any([path], format=format, mapping=mapping, **options)


__all__ = [
    "READERS",
    "canonical_columns",
    "distinct_inputs",
    "files_of_inputs",
    "merged_attrs",
    "read_any",
    "read_canonical",
    "read_inputs",
    "read_one",
]
