"""Study manifests: many sources, of any format, in one run (``doseatlas run sources.toml``).

A manifest is a TOML file with one ``[[source]]`` table per source; paths are relative to the manifest's
folder::

    identities = "identities.csv"        # optional: user identity table (kind, name, canonical, id)
    cellosaurus = "cellosaurus.txt"      # optional: Cellosaurus flat file

    [[source]]
    path = "plates/lab_a.csv"            # a file, or a directory (see below)
    format = "canonical"                 # any key of doseatlas.ingest.READERS (default canonical)
    dataset = "lab_a"                    # sets the data set name of every row of the source
    readout = "atp"                      # defaults: fill values the source leaves empty
    time_h = 72
    doubling_times = "lab_a_doubling.csv"  # cell_line,doubling_time_h: GR of this data set only

    [[source]]
    path = "GDSC1_raw.parquet"
    format = "gdsc-raw"
    options = { plate_columns = 48 }     # keyword options of the format's reader

    [[source]]
    path = "GDSCsmall/raw_long.csv"
    format = "pharmacogx"                # a pre-normalized response table, in the same run

Rules (each broken one is one :class:`InputFileError` naming the manifest and the source by its number and
path; the command line exits with code 2 before anything is written):

* unknown keys, wrong value types, a missing file, a format that is not a reader, a ``mapping`` on a format
  other than ``canonical``/``mapping``, a ``plate_map`` missing for a format that needs one or given to one
  that takes none, two sources with the same ``dataset``;
* a default (``readout``, ``time_h``, ``seeding_density``, ``concentration_unit``, ``perturbation_type``)
  fills only missing or empty values (and ``readout = "unknown"``, the readers' word for "not said"); a
  source value that *differs* from its default is a conflict, not silently kept or overwritten;
  ``time_h`` never fills time-zero reads (they are at 0 h);
* ``dataset`` replaces the data set name of every row of the source; two sources whose rows end up with the
  same data set name (given or read) would be merged silently and are refused;
* ``doubling_times`` apply to the source's data set only and therefore need ``dataset``.

A directory ``path`` of format ``canonical`` (without ``mapping``) is a Parquet data set, read as
``--engine dask`` reads one (every ``.parquet`` below it; ``key=value`` folders are columns); for any other
format every file directly inside that matches ``glob`` (default ``*``) is one file of the source.
"""

from __future__ import annotations

import hashlib
import inspect
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from doseatlas import schemas as S
from doseatlas.errors import DoseatlasError, InputFileError

#: source keys that are defaults for metadata the source lacks (each a canonical column)
DEFAULT_KEYS: tuple[str, ...] = (
    S.READOUT,
    S.TIME_H,
    S.SEEDING_DENSITY,
    S.CONCENTRATION_UNIT,
    S.PERTURBATION_TYPE,
)
#: source keys that are not reader options (a reader option of the same name must be given as the key)
_RESERVED_OPTIONS = {"path", "mapping", "plate_map", "dataset", "partition_values", "defaults"}
_NUMERIC_DEFAULTS = {S.TIME_H, S.SEEDING_DENSITY}


# --------------------------------------------------------------------------- the TOML document


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class SourceSpec(_Strict):
    """One ``[[source]]`` table, as written (paths not yet resolved)."""

    path: str = Field(min_length=1)
    format: str = "canonical"
    mapping: str | None = Field(default=None, min_length=1)
    plate_map: str | None = Field(default=None, min_length=1)
    dataset: str | None = None
    glob: str = Field(default="*", min_length=1)
    options: dict[str, Any] = Field(default_factory=dict)
    readout: str | None = None
    time_h: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    seeding_density: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    concentration_unit: str | None = None
    perturbation_type: str | None = None
    doubling_times: str | None = Field(default=None, min_length=1)
    doubling_time_source: str | None = Field(default=None, min_length=1)

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be empty")
        return value.strip() if value is not None else None

    @field_validator("readout")
    @classmethod
    def _readout(cls, value: str | None) -> str | None:
        return _one_of(value, [r.value for r in S.Readout if r != S.Readout.UNKNOWN])

    @field_validator("concentration_unit")
    @classmethod
    def _unit(cls, value: str | None) -> str | None:
        return _one_of(value, list(S.CONCENTRATION_UNITS))

    @field_validator("perturbation_type")
    @classmethod
    def _ptype(cls, value: str | None) -> str | None:
        return _one_of(value, [p.value for p in S.PerturbationType])


def _one_of(value: str | None, allowed: list[str]) -> str | None:
    if value is not None and value.strip() not in allowed:
        raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")
    return value.strip() if value is not None else None


class ManifestSpec(_Strict):
    """The whole manifest document."""

    source: list[SourceSpec] = Field(min_length=1)
    identities: str | None = Field(default=None, min_length=1)
    cellosaurus: str | None = Field(default=None, min_length=1)


# --------------------------------------------------------------------------- the resolved manifest


@dataclass(frozen=True)
class _Where:
    """A source as messages name it: the manifest, its number (1-based) and its path as written."""

    index: int
    written: str
    manifest: Path

    @property
    def label(self) -> str:
        """``source 2 (path = 'x.csv')``."""
        return f"source {self.index} (path = {self.written!r})"

    def fail(self, message: str, *, column: str | None = None) -> InputFileError:
        """An error naming the manifest and this source."""
        return InputFileError(str(self.manifest), f"{self.label}: {message}", column=column)


@dataclass(frozen=True)
class ManifestSource(_Where):
    """One source, resolved: absolute paths, its files, reader options and defaults (picklable)."""

    path: Path  # as resolved (file or directory)
    format: str
    glob: str
    mapping: Path | None
    plate_map: Path | None
    dataset: str | None
    options: dict[str, Any]
    defaults: dict[str, str]  # canonical column -> default value as text
    doubling_times: dict[str, float] | None
    doubling_time_source: str | None
    aux_files: tuple[Path, ...]  # every other file it reads (mapping, plate map, doubling times, options)


@dataclass(frozen=True)
class SourcePart:
    """One file of a source (with the partition values its folders give it): a part of a partitioned run."""

    source: ManifestSource
    path: Path
    values: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StudyManifest:
    """A parsed and checked manifest."""

    path: Path
    checksum: str
    content: dict[str, Any]  # the parsed TOML document, as written
    sources: tuple[ManifestSource, ...]
    parts: tuple[SourcePart, ...]  # every file to read, source by source, in manifest order
    identities: Path | None  # for the identities step (RunOptions.harmonize, wired at merge)
    cellosaurus: Path | None

    def files(self) -> list[Path]:
        """Every file the run reads (the manifest first): checksummed in the provenance."""
        found = [self.path, *(p.path for p in self.parts)]
        found += [f for s in self.sources for f in s.aux_files]
        found += [f for f in (self.identities, self.cellosaurus) if f is not None]
        return list(dict.fromkeys(found))

    def dataset_doubling_times(self) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
        """Per data set: the doubling times of its source, and where they come from."""
        times = {s.dataset: s.doubling_times for s in self.sources if s.doubling_times and s.dataset}
        sources = {s.dataset: s.doubling_time_source or s.written for s in self.sources if s.dataset in times}
        return times, sources

    def record(self) -> dict[str, Any]:
        """The manifest in the provenance: path, checksum, parsed content and the files of each source."""
        return {
            "path": str(self.path),
            "checksum": self.checksum,
            "content": self.content,
            "sources": [
                {
                    "index": s.index,
                    "format": s.format,
                    "dataset": s.dataset,
                    "defaults": s.defaults,
                    "files": [str(p.path) for p in self.parts if p.source.index == s.index],
                }
                for s in self.sources
            ],
        }


def is_manifest(path: str | Path) -> bool:
    """True for a study manifest (a ``.toml`` input of ``doseatlas run``)."""
    return Path(path).suffix.lower() == ".toml"


def load_manifest(path: str | Path) -> StudyManifest:
    """Read, validate and resolve a study manifest.

    Raises
    ------
    InputFileError
        Every problem, as one message naming the manifest and the source (number and path).
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(str(path), "manifest file not found")
    data = path.read_bytes()
    try:
        content = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputFileError(str(path), f"not a valid TOML file: {exc}") from None
    try:
        spec = ManifestSpec.model_validate(content)
    except ValidationError as exc:
        raise InputFileError(str(path), _one_line(exc, content)) from None
    folder = path.resolve().parent
    sources = tuple(_resolve(s, i + 1, path, folder) for i, s in enumerate(spec.source))
    _check_distinct_datasets(sources)
    return StudyManifest(
        path=path,
        checksum="sha256:" + hashlib.sha256(data).hexdigest(),
        content=content,
        sources=sources,
        parts=_read_once([p for s in sources for p in _parts(s)]),
        identities=_existing(spec.identities, folder, path, "identities"),
        cellosaurus=_existing(spec.cellosaurus, folder, path, "cellosaurus"),
    )


def _one_line(exc: ValidationError, content: Any) -> str:
    """pydantic's errors as one message naming each source by number and path."""
    parts = []
    for err in exc.errors():
        loc = list(err["loc"])
        where = "manifest"
        if len(loc) >= 2 and loc[0] == "source" and isinstance(loc[1], int):
            where = f"source {loc[1] + 1}{_written_path(content, loc[1])}"
            loc = loc[2:]
        key = ".".join(str(p) for p in loc)
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        parts.append(f"{where}: {key + ': ' if key else ''}{message}")
    return "; ".join(parts)


def _written_path(content: Any, index: int) -> str:
    try:
        value = content["source"][index]["path"]
    except (KeyError, IndexError, TypeError):
        return ""
    return f" (path = {value!r})" if isinstance(value, str) else ""


def _existing(written: str | None, folder: Path, manifest: Path, key: str) -> Path | None:
    if written is None:
        return None
    resolved = _resolve_path(written, folder)
    if not _is(resolved, "is_file"):
        raise InputFileError(str(manifest), f"{key} = {written!r}: file not found ({resolved})", column=key)
    return resolved


def _resolve_path(written: str, folder: Path) -> Path:
    path = Path(written)
    return path if path.is_absolute() else folder / path


def _is(path: Path, kind: str) -> bool:
    """``path.is_file()`` / ``is_dir()`` / ``exists()``, False for a name the system cannot even look up (too
    long, a NUL byte)."""
    try:
        return bool(getattr(path, kind)())
    except (OSError, ValueError):
        return False


def _resolve(spec: SourceSpec, index: int, manifest: Path, folder: Path) -> ManifestSource:
    """Resolve one source's paths and check its settings against its format's reader."""
    from doseatlas.ingest import READERS

    where = _Where(index, spec.path, manifest)
    path = _resolve_path(spec.path, folder)
    if not _is(path, "exists"):
        raise where.fail(f"file not found ({path})", column="path")
    if spec.format not in READERS:
        raise where.fail(f"unknown format {spec.format!r}; use one of {', '.join(READERS)}", column="format")
    reader_format = "mapping" if spec.mapping is not None else spec.format
    if spec.mapping is not None and spec.format not in ("canonical", "mapping"):
        raise where.fail(f"mapping applies to the canonical format, not to {spec.format!r}", column="mapping")
    if spec.format == "mapping" and spec.mapping is None:
        raise where.fail("format 'mapping' needs mapping = 'file.toml'", column="mapping")
    parameters = inspect.signature(READERS[reader_format]).parameters
    _check_plate_map(spec, parameters, where)
    files = {k: _aux(getattr(spec, k), folder, where, k) for k in ("mapping", "plate_map", "doubling_times")}
    options, option_files = _reader_options(spec, parameters, folder, where)
    if spec.doubling_times is not None and spec.dataset is None:
        raise where.fail(
            "doubling_times apply to the source's data set: give dataset = 'name'", column="dataset"
        )
    return ManifestSource(
        index=index,
        written=spec.path,
        manifest=manifest,
        path=path,
        format=reader_format,
        glob=spec.glob,
        mapping=files["mapping"],
        plate_map=files["plate_map"],
        dataset=spec.dataset,
        options=options,
        defaults=_defaults(spec),
        doubling_times=_doubling_times(files["doubling_times"], where),
        doubling_time_source=spec.doubling_time_source,
        aux_files=tuple(f for f in (*files.values(), *option_files) if f is not None),
    )


def _doubling_times(path: Path | None, where: _Where) -> dict[str, float] | None:
    try:
        return read_doubling_times(path) if path is not None else None
    except InputFileError as exc:
        raise _naming(exc, where) from None


def _naming(exc: InputFileError, where: _Where) -> InputFileError:
    """The reader's error (file, line, column) with the manifest and the source added."""
    note = f" (manifest {where.manifest}, {where.label})"
    return InputFileError(exc.path, exc.message + note, column=exc.column, line=exc.line)


def _check_plate_map(spec: SourceSpec, parameters: Mapping[str, inspect.Parameter], where: _Where) -> None:
    takes = "plate_map" in parameters
    needs = takes and parameters["plate_map"].default is inspect.Parameter.empty
    if needs and spec.plate_map is None:
        raise where.fail(f"format {spec.format!r} needs plate_map = 'file.csv'", column="plate_map")
    if spec.plate_map is not None and not takes:
        raise where.fail(f"format {spec.format!r} takes no plate_map", column="plate_map")


def _aux(written: str | None, folder: Path, where: _Where, key: str) -> Path | None:
    if written is None:
        return None
    path = _resolve_path(written, folder)
    if not _is(path, "is_file"):
        raise where.fail(f"{key} = {written!r}: file not found ({path})", column=key)
    return path


def _reader_options(
    spec: SourceSpec, parameters: Mapping[str, inspect.Parameter], folder: Path, where: _Where
) -> tuple[dict[str, Any], list[Path]]:
    """``options`` checked against the reader's keyword parameters; path-valued ones resolved and checked.
    ``dataset``, ``readout`` and ``concentration_unit`` go to readers that take them (their own
    "when the file does not say" values)."""
    keywords = {n for n, p in parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    options: dict[str, Any] = {}
    files: list[Path] = []
    for name, value in spec.options.items():
        if name in _RESERVED_OPTIONS or name not in keywords:
            hint = (
                "give it as a source key"
                if name in _RESERVED_OPTIONS
                else f"use {sorted(keywords - _RESERVED_OPTIONS)}"
            )
            raise where.fail(
                f"options.{name}: not an option of the {spec.format!r} reader ({hint})", column="options"
            )
        if isinstance(value, str) and "Path" in str(parameters[name].annotation):
            value = _aux(value, folder, where, f"options.{name}")
            files.append(value)
        options[name] = value
    for name in ("dataset", "readout", "concentration_unit"):
        if name in keywords and getattr(spec, name) is not None:
            if name in options:
                raise where.fail(f"{name} given twice (as a key and in options)", column=name)
            options[name] = getattr(spec, name)
    if spec.plate_map is not None:
        options["plate_map"] = _resolve_path(spec.plate_map, folder)
    return options, files


def _defaults(spec: SourceSpec) -> dict[str, str]:
    """The defaults as text (numbers without a spurious ``.0``), as readers write values."""
    out = {}
    for key in DEFAULT_KEYS:
        value = getattr(spec, key)
        if value is not None:
            out[key] = repr(float(value)).removesuffix(".0") if key in _NUMERIC_DEFAULTS else str(value)
    return out


def _check_distinct_datasets(sources: Sequence[ManifestSource]) -> None:
    seen: dict[str, ManifestSource] = {}
    for source in sources:
        if source.dataset is None:
            continue
        if source.dataset in seen:
            first = seen[source.dataset]
            raise source.fail(
                f"dataset {source.dataset!r} is also the data set of {first.label}: two sources would be merged "
                "silently; give each its own dataset",
                column="dataset",
            )
        seen[source.dataset] = source


def _read_once(parts: list[SourcePart]) -> tuple[SourcePart, ...]:
    """The parts, refusing a file listed twice (its rows would be counted twice)."""
    first: dict[Path, SourcePart] = {}
    for part in parts:
        seen = first.setdefault(part.path.resolve(), part)
        if seen is not part:
            raise part.source.fail(f"{part.path} is already read by {seen.source.label}", column="path")
    return tuple(parts)


def _parts(source: ManifestSource) -> list[SourcePart]:
    from doseatlas.ingest.partitioned import list_parts

    if not _is(source.path, "is_dir"):
        return [SourcePart(source, source.path)]
    if source.format == "canonical":
        try:
            return [SourcePart(source, p.path, p.values) for p in list_parts([source.path])]
        except InputFileError as exc:
            raise source.fail(exc.message) from None
    try:
        files = sorted(p for p in source.path.glob(source.glob) if p.is_file() and not p.name.startswith("."))
    except (OSError, ValueError, NotImplementedError) as exc:
        raise source.fail(f"glob = {source.glob!r} cannot be used: {exc}", column="glob") from None
    if not files:
        raise source.fail(f"directory holds no file matching glob = {source.glob!r}", column="path")
    return [SourcePart(source, p) for p in files]


# --------------------------------------------------------------------------- reading


def read_doubling_times(path: str | Path) -> dict[str, float]:
    """A ``cell_line,doubling_time_h`` table (CSV/TSV) as ``{cell_line: hours}``.

    Raises
    ------
    InputFileError
        Unreadable file, a missing column, or a value that is not a positive number (naming its line).
    """
    from doseatlas.ingest._files import text_table

    table = text_table(path)
    missing = {S.CELL_LINE, S.DOUBLING_TIME_H} - set(table.columns)
    if missing:
        raise InputFileError(
            str(path), "needs columns cell_line and doubling_time_h", column=sorted(missing)[0]
        )
    lines, hours = (
        table[S.CELL_LINE].str.strip(),
        pd.to_numeric(table[S.DOUBLING_TIME_H].str.strip(), errors="coerce"),
    )
    bad = ~(np.isfinite(hours) & (hours > 0))
    twice = lines.duplicated(keep=False) & ~hours.groupby(lines).transform("nunique").eq(1)
    for mask, what in (
        (bad, "is not a positive number of hours"),
        (twice, "contradicts another row of its cell line"),
    ):
        if mask.any():
            first = int(np.flatnonzero(mask.to_numpy())[0])
            value = table[S.DOUBLING_TIME_H].iloc[first]
            raise InputFileError(
                str(path), f"doubling time {value!r} {what}", column=S.DOUBLING_TIME_H, line=first + 2
            )
    return dict(zip(lines, hours.astype(float), strict=True))


def read_source_part(part: SourcePart) -> pd.DataFrame:
    """Read one file of a manifest source with the source's reader, options and defaults.

    Raises
    ------
    InputFileError
        The file cannot be read (the message names the file and the source), or a default conflicts with a
        value the source carries.
    """
    from doseatlas.ingest import read_one
    from doseatlas.ingest.canonical import read_canonical

    source = part.source
    try:
        if source.format == "canonical":
            table = read_canonical(part.path, partition_values=part.values, defaults=source.defaults)
        else:
            table = read_one(part.path, format=source.format, mapping=source.mapping, **source.options)
    except InputFileError as exc:
        raise _naming(exc, source) from None
    except DoseatlasError as exc:
        raise source.fail(str(exc)) from None
    except (TypeError, ValueError) as exc:  # an option value of the wrong kind for the reader
        raise source.fail(
            f"the {source.format!r} reader rejects its options: {exc}", column="options"
        ) from None
    return apply_source_settings(table, source=source)


def apply_source_settings(table: pd.DataFrame, *, source: ManifestSource) -> pd.DataFrame:
    """The source's ``dataset`` (every row) and defaults (empty values only) applied to a table it read.

    Raises
    ------
    InputFileError
        A default that differs from a value the source carries (naming the manifest, the source and the column).
    """
    from doseatlas._canon import stripped_text

    table = table.copy(deep=False)  # columns are replaced, never written into
    if source.dataset is not None:
        table[S.DATASET] = source.dataset
    for column, value in source.defaults.items():
        if column not in table:
            table[column] = value
            continue
        text = stripped_text(table[column])
        applies = pd.Series(True, index=table.index)
        if column == S.TIME_H and S.ROLE in table:  # a time-zero read is at 0 h, whatever the default
            applies = stripped_text(table[S.ROLE]).ne(S.Role.TIME_ZERO.value)
        empty = text.eq("") | (text.eq(S.Readout.UNKNOWN.value) if column == S.READOUT else False)
        conflict = applies & ~empty & ~_same(text, value, column)
        if conflict.any():
            seen = ", ".join(repr(v) for v in text[conflict].unique()[:3])
            where = table[S.SOURCE_FILE][conflict].iloc[0] if S.SOURCE_FILE in table else source.path
            raise source.fail(
                f"{column} = {value!r} conflicts with the source's own {column} {seen} in {where}: a default "
                "only fills missing values; remove it or correct the source",
                column=column,
            )
        fill = (applies & empty).to_numpy()
        if fill.any():
            table[column] = table[column].astype(object).where(~fill, value)
    table.attrs = {**table.attrs, "manifest_defaults": dict(source.defaults)}
    return table


def _same(text: pd.Series, value: str, column: str) -> pd.Series:
    """Which source values equal the default (numbers as numbers, units by their factor)."""
    if column in _NUMERIC_DEFAULTS:
        return pd.to_numeric(text, errors="coerce").eq(float(value))
    if column == S.CONCENTRATION_UNIT:
        return text.map(S.CONCENTRATION_UNITS).eq(S.CONCENTRATION_UNITS[value])
    return text.eq(value)


def datasets_of(table: pd.DataFrame) -> list[str]:
    """The distinct non-empty data set names of a table read (as validation will see them)."""
    from doseatlas._canon import stripped_text

    if S.DATASET not in table or not len(table):
        return []
    names = pd.unique(stripped_text(table[S.DATASET]))
    return sorted(n for n in names if n)


def check_part_datasets(manifest: StudyManifest, datasets: Sequence[Iterable[str]]) -> None:
    """Refuse two sources whose rows carry the same data set name (they would be merged silently).

    ``datasets`` holds the data set names of each of ``manifest.parts``, in order.
    """
    owner: dict[str, ManifestSource] = {}
    for part, names in zip(manifest.parts, datasets, strict=True):
        for name in names:
            first = owner.setdefault(name, part.source)
            if first.index != part.source.index:
                raise part.source.fail(
                    f"its rows have dataset {name!r}, as the rows of {first.label}: two sources would be merged "
                    "silently; give each source its own dataset = 'name'",
                    column=S.DATASET,
                )


def read_manifest(manifest: StudyManifest) -> list[pd.DataFrame]:
    """Every file of every source, read with its own options (one table per file, in manifest order).

    The tables may mix well tables and response tables: :func:`doseatlas.pipeline.run_pipeline` takes the list.
    """
    tables = [read_source_part(part) for part in manifest.parts]
    check_part_datasets(manifest, [datasets_of(t) for t in tables])
    return tables


__all__ = [
    "DEFAULT_KEYS",
    "ManifestSource",
    "SourcePart",
    "StudyManifest",
    "apply_source_settings",
    "check_part_datasets",
    "datasets_of",
    "is_manifest",
    "load_manifest",
    "read_doubling_times",
    "read_manifest",
    "read_source_part",
]
