"""Files of ``doseatlas export``: reading a run directory, writing labels, matrices and drevalpy data sets.

The tables themselves are computed by :mod:`doseatlas.harmonize.export` (pure functions).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from doseatlas import schemas as S
from doseatlas.errors import InputFileError, OutputDirectoryError
from doseatlas.harmonize.export import SOURCE_KEY, Export, ExportOptions, export_tables, seeding_by_curve
from doseatlas.io import provenance, read_metadata, write_table
from doseatlas.io.outdir import OUTPUT_MARKER, output_directory

METRICS_FILE = "metrics.parquet"
CONVERTED_FILE = "converted.parquet"
RESPONSES_FILE = "responses.parquet"
LABELS_FILE = "labels.parquet"
SUMMARY_FILE = "export.json"
DREVALPY_DIR = "drevalpy"
REQUIRED_METRIC_COLUMNS: tuple[str, ...] = (*S.METRIC_KEY, S.VALUE, S.UNIT, S.STATUS, S.LOWER, S.UPPER)


@dataclass(frozen=True)
class RunInputs:
    """What an export reads from a run directory."""

    metrics: pd.DataFrame
    seeding: pd.DataFrame | None
    meta: dict[str, Any]
    files: list[Path]


def check_run_directory(run_dir: str | Path) -> Path:
    """``run_dir`` as a path, or :class:`InputFileError` where it is not the output of ``doseatlas run``."""
    path = Path(run_dir)
    if not path.exists():
        raise InputFileError(str(path), "does not exist; give the --out directory of a doseatlas run")
    if not path.is_dir():
        raise InputFileError(str(path), "is a file; give the --out directory of a doseatlas run")
    if not (path / OUTPUT_MARKER).is_file() or not (path / METRICS_FILE).is_file():
        raise InputFileError(
            str(path),
            f"is not a doseatlas run output (it needs {OUTPUT_MARKER} and {METRICS_FILE}, as "
            "`doseatlas run --out DIR` writes them)",
        )
    return path


def _read_parquet(path: Path, *, columns: list[str] | None = None) -> pd.DataFrame:
    try:
        return pd.read_parquet(path, columns=columns)
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise InputFileError(str(path), f"cannot be read as Parquet ({exc})") from None


def read_run(run_dir: str | Path, *, duration_h: float | None = None) -> RunInputs:
    """The metrics of a run, the seeding density per source curve (from its responses) and its provenance.

    With ``duration_h``, the rows converted to that duration (``converted.parquet``, ``--target-duration``) are
    added for the curves a data set did not measure at that duration (a measured row always wins)."""
    path = check_run_directory(run_dir)
    metrics = _read_parquet(path / METRICS_FILE)
    missing = [c for c in REQUIRED_METRIC_COLUMNS if c not in metrics]
    if missing:
        raise InputFileError(str(path / METRICS_FILE), "is not a doseatlas metrics table", column=missing[0])
    files, seeding = [path / METRICS_FILE], None
    if duration_h is not None and (path / CONVERTED_FILE).is_file():
        metrics = with_converted(metrics, _read_parquet(path / CONVERTED_FILE), duration_h=duration_h)
        files.append(path / CONVERTED_FILE)
    responses = path / RESPONSES_FILE
    if S.SEEDING_DENSITY not in metrics and responses.is_file():
        available = set(pq.read_schema(responses).names)
        wanted = [*SOURCE_KEY, S.CELL_LINE, S.PERTURBAGEN, S.TIME_H, S.SEEDING_DENSITY]
        columns = [c for c in dict.fromkeys(wanted) if c in available and c != S.DURATION_H]
        if S.SEEDING_DENSITY in columns:
            seeding = seeding_by_curve(_read_parquet(responses, columns=columns))
            files.append(responses)
    return RunInputs(metrics=metrics, seeding=seeding, meta=read_metadata(path / METRICS_FILE), files=files)


def with_converted(metrics: pd.DataFrame, converted: pd.DataFrame, *, duration_h: float) -> pd.DataFrame:
    """Measured rows (``basis`` measured) and the converted rows at ``duration_h`` of curves not measured then."""
    measured = metrics.assign(basis="measured", source_duration_h=metrics[S.DURATION_H])
    rows = converted[converted[S.DURATION_H].astype(float).eq(duration_h)]
    key = [c for c in (*S.CURVE_KEY, S.METRIC) if c in rows and c in metrics]
    at = measured[measured[S.DURATION_H].astype(float).eq(duration_h)][key].drop_duplicates().assign(_m=True)
    rows = rows.merge(at, on=key, how="left")
    rows = rows[rows["_m"].isna()].drop(columns="_m")
    return pd.concat([measured, rows], ignore_index=True)


def check_export_location(run_dir: Path, out: str | Path) -> None:
    """An export inside its run directory would make that directory someone else's: refused."""
    run, target = run_dir.resolve(), Path(os.path.abspath(out))
    if run == target or run in target.parents:
        raise OutputDirectoryError(
            str(out),
            f"is inside the run directory {run_dir}; a later run could not replace it: choose another",
        )


def write_export(export: Export, directory: Path, *, meta: dict[str, Any]) -> None:
    """Write labels, matrices (Parquet with ``meta``), drevalpy data sets (CSV) and ``export.json``."""
    write_table(export.labels, directory / LABELS_FILE, meta=meta)
    for name, table in export.matrices.items():
        write_table(table, directory / f"{name}.parquet", meta=meta)
    for relative, table in export.drevalpy.items():
        path = directory / DREVALPY_DIR / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(path, index=False)
        with open(path, "rb") as handle:  # files below the top level are not fsynced by the commit
            os.fsync(handle.fileno())
    document = {**export.summary, "provenance": meta}
    (directory / SUMMARY_FILE).write_text(json.dumps(document, indent=2, default=str))


def export_run(run_dir: str | Path, out: str | Path, *, options: ExportOptions) -> Export:
    """Read ``run_dir``, compute the export and write it to ``out`` (new, empty or a previous output).

    Every Parquet file carries the export's provenance: the export parameters, the files read (with
    checksums) and, under ``run``, the provenance of the run it was made from.
    """
    run_path = check_run_directory(run_dir)
    check_export_location(run_path, out)
    with output_directory(out, inputs=[run_path]) as scratch:
        inputs = read_run(run_path, duration_h=options.duration_h)
        export = export_tables(inputs.metrics, options=options, seeding=inputs.seeding)
        meta = provenance(inputs=inputs.files, parameters={"export": options.as_record()})
        meta["run"] = inputs.meta
        write_export(export, scratch, meta=meta)
    return export
