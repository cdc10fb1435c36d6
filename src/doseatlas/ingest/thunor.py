"""Reader of Thunor HTS data (time-course cell counts): the HDF5 file of ``thunor.io.write_hdf`` or CSV exports.

HDF5 (``*.h5`` / ``*.hdf5``; needs PyTables, the ``hdf5`` extra): the pandas stores ``/doses`` (index ``drug1,
cell_line, dose1`` in molar; ``dataset, plate, well_id, well_num``), ``/assays`` (index ``assay, well_id,
timepoint`` as a time delta; ``value``) and ``/controls`` (index ``dataset, assay, cell_line, plate, well_id,
timepoint``; ``value, well_num``). Drug combinations (``drug2``) are refused with an error. ``source_line`` of an
HDF5 row is its 1-based row number in its store, and ``source_file`` names the store (``file.h5:/assays``).

CSV: three files: ``<name>_wells_treated.csv`` (``drug, cell_line, dose`` in **molar**, ``plate, well_id,
well_num``), ``<name>_assays_treated.csv`` (``assay, well_id, value, timepoint_hours``) and
``<name>_controls.csv`` (control wells with ``cell_line, plate, well_id, value, well_num,
timepoint_hours``). Controls are taken as vehicle wells.

Time: each plate is read many times. Every read is one row (its actual time in ``time_h``), so that every
record of the source is accounted for. With ``time_h=72`` (default) the run uses, per plate, the reads at the
time point nearest 72 h (over the treated and control reads of that plate; ties -> the earlier); the other reads
keep their values but get the role ``read_time_not_selected``, which validation sends to the ledger with that
reason (counted in ``summary.json``; also ``attrs["reads_not_selected"]``). ``time_h=None`` (or ``"all"``, as a
manifest writes it: ``options = { time_h = "all" }``) uses every read: the run groups the read times into nominal
durations, keeps one curve per duration and computes DIP rates from the whole time course (``dip.parquet``).

Time zero: Thunor data have no read at the time of drug addition; the first read (0.8-2.4 h in
HTS007) is taken *after* the drug was added, so it is **not** used as a time-zero read: percent
growth and GR are refused (``no_time_zero``) unless doubling times are supplied.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from doseatlas import schemas as S
from doseatlas.errors import ConfigError, InputFileError
from doseatlas.ingest._common import finish, number_text, require, text_table, well_names

#: thunor assay names -> readout; other names reach the ledger as unknown readouts
ASSAYS = {"cell count": S.Readout.NUCLEI_COUNT.value}


def _companions(path: Path, assays, controls) -> tuple[Path, Path, Path]:
    if path.is_dir():
        found = sorted(path.glob("*_wells_treated.csv"))
        if len(found) != 1:
            raise InputFileError(
                str(path), f"expected one *_wells_treated.csv in the folder, found {len(found)}"
            )
        path = found[0]
    path = wells_file(path)
    stem = path.name.removesuffix(_SUFFIXES[0])
    assays = Path(assays) if assays else path.with_name(f"{stem}{_SUFFIXES[1]}")
    controls = Path(controls) if controls else path.with_name(f"{stem}{_SUFFIXES[2]}")
    return path, assays, controls


#: the names of the three files of a Thunor CSV export, after their common prefix
_SUFFIXES = ("wells_treated.csv", "assays_treated.csv", "controls.csv")


def export_files(path: str | Path) -> list[Path]:
    """The files :func:`read` opens for ``path`` with the default companions: the HDF5 file, or the export's
    wells, assays and controls CSV files."""
    path = Path(path)
    if path.suffix.lower() in HDF5_SUFFIXES:
        return [path]
    return list(_companions(path, None, None))


def wells_file(path: str | Path) -> Path:
    """The ``*_wells_treated.csv`` file of the export that ``path`` (any of its three CSV files) belongs to; the
    HDF5 file itself. InputFileError for a file named otherwise."""
    path = Path(path)
    if path.suffix.lower() in HDF5_SUFFIXES:
        return path
    for suffix in _SUFFIXES:
        if path.name.lower().endswith(suffix) and len(path.name) > len(suffix):
            return path.with_name(path.name[: -len(suffix)] + _SUFFIXES[0])
    raise InputFileError(
        str(path),
        "not a file of a Thunor export: --format thunor-hts reads an HDF5 file (.h5) or the CSV export's three "
        "files <name>_wells_treated.csv, <name>_assays_treated.csv and <name>_controls.csv (name any of them)",
    )


def read(
    path: str | Path,
    *,
    time_h: float | str | None = 72.0,
    assays: str | Path | None = None,
    controls: str | Path | None = None,
    dataset: str | None = None,
    plate_columns: int = 24,
    assay_map: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Read a Thunor export into the canonical well table.

    Parameters
    ----------
    path
        The HDF5 file, or the ``*_wells_treated.csv`` file (or the folder holding the three CSV files).
    time_h
        Target read time in hours (nearest read per plate), or None / ``"all"`` for every read.
    assays, controls
        The other two files (default: same prefix, same folder).
    dataset
        Value of ``dataset`` (default: the ``dataset`` column of the files).
    plate_columns
        Columns of the plate, to name wells from ``well_num`` (0-based, row-wise; 24 = 384-well).
    assay_map
        Extra ``{assay name: readout}`` entries (case-insensitive).
    """
    if Path(path).suffix.lower() in HDF5_SUFFIXES:
        wells_path, assays_path, controls_path = (f"{path}:/{k}" for k in ("doses", "assays", "controls"))
        wells, reads, ctrl = _hdf_tables(Path(path))
    else:
        wells_path, assays_path, controls_path = _companions(Path(path), assays, controls)
        wells, reads, ctrl = text_table(wells_path), text_table(assays_path), text_table(controls_path)
    require(wells, ("drug", "cell_line", "dose", "plate", "well_id"), path=wells_path, what="Thunor wells")
    require(reads, ("assay", "well_id", "value", "timepoint_hours"), path=assays_path, what="Thunor assays")
    require(
        ctrl, ("cell_line", "plate", "value", "timepoint_hours"), path=controls_path, what="Thunor controls"
    )
    mapping = {**ASSAYS, **{k.lower(): v for k, v in (assay_map or {}).items()}}
    treated = _treated(
        wells, reads, assays_path=assays_path, wells_path=wells_path, plate_columns=plate_columns
    )
    vehicle = _controls(ctrl, controls_path=controls_path, plate_columns=plate_columns)
    both = pd.concat([treated, vehicle], ignore_index=True)
    both[S.READOUT] = both["_assay"].str.strip().str.lower().map(mapping).fillna(both["_assay"])
    if dataset is not None:
        both[S.DATASET] = dataset
    time_h = _target_time(time_h)
    if time_h is not None:
        other = ~_nearest(both, time_h)
        both.loc[other, S.ROLE] = S.RowReason.READ_TIME_NOT_SELECTED.value
    both[S.TIME_H] = number_text(both["_t"])
    n_other = int((both[S.ROLE] == S.RowReason.READ_TIME_NOT_SELECTED.value).sum())
    attrs = {"reads_not_selected": n_other, "requested_time_h": time_h}
    attrs[S.FILES_READ] = (
        [str(path)] if Path(path).suffix.lower() in HDF5_SUFFIXES else [str(p) for p in (wells_path, assays_path,
                                                                                        controls_path)]
    )  # fmt: skip
    return finish(
        both.drop(columns=["_t", "_assay"]), path=wells_path, lines=both[S.SOURCE_LINE], attrs=attrs
    )


def _target_time(time_h: float | str | None) -> float | None:
    """The read time to select in hours, or None for every read (``"all"``)."""
    if isinstance(time_h, str):
        if time_h.strip().lower() == "all":
            return None
        try:
            return float(time_h)
        except ValueError:
            raise ConfigError(f"thunor-hts time_h: a number of hours or 'all', not {time_h!r}") from None
    return None if time_h is None else float(time_h)


HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")
_HDF_KEYS = ("doses", "assays", "controls")


def _hdf_tables(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The three thunor stores as text tables with the CSV export's column names."""
    try:
        import tables  # noqa: F401 - pandas needs PyTables for HDF5
    except ImportError as err:
        raise InputFileError(
            str(path), "reading Thunor HDF5 needs PyTables: pip install 'doseatlas[hdf5]'"
        ) from err
    try:
        with pd.HDFStore(path, mode="r") as store:
            missing = [k for k in _HDF_KEYS if f"/{k}" not in store.keys()]
            if missing:
                raise InputFileError(str(path), f"not a Thunor HDF5 file: store(s) {missing} missing")
            frames = {k: store[k].reset_index() for k in _HDF_KEYS}
    except InputFileError:
        raise
    except Exception as err:  # PyTables raises its own HDF5ExtError (and others) for a file that is not HDF5
        raise InputFileError(str(path), f"cannot read as HDF5: {type(err).__name__}") from err
    doses = frames["doses"].rename(columns={"drug1": "drug", "dose1": "dose"})
    if "drug2" in doses.columns and doses["drug2"].notna().any():
        raise InputFileError(str(path), "drug combinations (drug2) are not supported", column="drug2")
    return tuple(_as_text(_hours(frames[k] if k != "doses" else doses)) for k in _HDF_KEYS)


def _hours(frame: pd.DataFrame) -> pd.DataFrame:
    """``timepoint`` (a time delta) -> ``timepoint_hours``."""
    if "timepoint" not in frame.columns:
        return frame
    hours = pd.to_timedelta(frame["timepoint"]).dt.total_seconds() / 3600.0
    return frame.drop(columns="timepoint").assign(timepoint_hours=hours)


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Every column as text (floats in their shortest round-trip form), as the CSV reader delivers them."""
    out = pd.DataFrame(index=frame.index)
    for name in frame.columns:
        col = frame[name]
        out[str(name)] = col.map(repr).where(col.notna(), "") if col.dtype.kind == "f" else col.astype(str)
    return out


def _treated(
    wells: pd.DataFrame, reads: pd.DataFrame, *, assays_path: Path, wells_path, plate_columns: int
) -> pd.DataFrame:
    wells = _unique_wells(wells, path=wells_path)
    wid = reads["well_id"].str.strip()
    meta = wells.reindex(wid)
    out = pd.DataFrame(
        {
            S.DATASET: meta["dataset"].fillna("").to_numpy() if "dataset" in meta else "thunor",
            S.PLATE: meta["plate"].fillna("").to_numpy(),  # an unknown well_id -> empty plate -> ledger
            S.WELL: _well(meta["well_num"] if "well_num" in meta else None, wid, plate_columns),
            S.CELL_LINE: meta["cell_line"].fillna("").to_numpy(),
            S.ROLE: S.Role.TREATED.value,
            S.PERTURBATION_TYPE: S.PerturbationType.DRUG.value,
            S.PERTURBAGEN: meta["drug"].fillna("").to_numpy(),
            S.CONCENTRATION: meta["dose"].fillna("").to_numpy(),
            S.CONCENTRATION_UNIT: "M",
            S.SIGNAL: reads["value"].to_numpy(),
            "_t": pd.to_numeric(reads["timepoint_hours"], errors="coerce").to_numpy(),
            "_assay": reads["assay"].to_numpy(),
            S.SOURCE_FILE: str(assays_path),
            S.SOURCE_LINE: reads.index.to_numpy() + 2,
        }
    )
    return out


def _unique_wells(wells: pd.DataFrame, *, path) -> pd.DataFrame:
    """The wells table indexed by ``well_id``; a repeated ``well_id`` is dropped only when it repeats the same
    description, an error when it describes another well (its reads could not be told apart)."""
    wells = wells.assign(well_id=wells["well_id"].str.strip()).drop_duplicates()
    repeated = wells["well_id"].duplicated(keep=False)
    if repeated.any():
        first = wells.loc[repeated, "well_id"].iloc[0]
        raise InputFileError(
            str(path), f"well_id {first!r} is listed twice with different descriptions", column="well_id"
        )
    return wells.set_index("well_id")


def _controls(ctrl: pd.DataFrame, *, controls_path: Path, plate_columns: int) -> pd.DataFrame:
    wid = ctrl["well_id"].str.strip() if "well_id" in ctrl else pd.Series("", index=ctrl.index)
    return pd.DataFrame(
        {
            S.DATASET: ctrl["dataset"].to_numpy() if "dataset" in ctrl else "thunor",
            S.PLATE: ctrl["plate"].to_numpy(),
            S.WELL: _well(ctrl["well_num"] if "well_num" in ctrl else None, wid, plate_columns),
            S.CELL_LINE: ctrl["cell_line"].to_numpy(),
            S.ROLE: S.Role.VEHICLE.value,
            S.PERTURBATION_TYPE: "",
            S.PERTURBAGEN: "",
            S.CONCENTRATION: "",
            S.CONCENTRATION_UNIT: "M",
            S.SIGNAL: ctrl["value"].to_numpy(),
            "_t": pd.to_numeric(ctrl["timepoint_hours"], errors="coerce").to_numpy(),
            "_assay": ctrl["assay"].to_numpy() if "assay" in ctrl else "",
            S.SOURCE_FILE: str(controls_path),
            S.SOURCE_LINE: ctrl.index.to_numpy() + 2,
        }
    )


def _well(num: pd.Series | None, well_id: pd.Series, plate_columns: int) -> np.ndarray:
    """Well name from the 0-based well number; the thunor well_id where the number is missing."""
    fallback = ("id" + well_id.astype(str)).to_numpy(dtype=object)
    if num is None:
        return fallback
    n = pd.to_numeric(pd.Series(num).reset_index(drop=True), errors="coerce")
    ok = (n >= 0).to_numpy() & n.notna().to_numpy()
    out = fallback.copy()
    out[ok] = well_names(n[ok].to_numpy(dtype=np.int64), n_columns=plate_columns)
    return out


def _nearest(both: pd.DataFrame, target: float) -> np.ndarray:
    """Per plate, True for the reads at the time point nearest ``target`` (and for rows without a time)."""
    timed = both[both["_t"].notna()]
    times = timed[[S.PLATE, "_t"]].drop_duplicates()
    times = times.assign(_d=(times["_t"] - target).abs()).sort_values([S.PLATE, "_d", "_t"], kind="stable")
    chosen = times.drop_duplicates(S.PLATE).set_index(S.PLATE)["_t"]
    keep = both["_t"].isna() | (both["_t"] == both[S.PLATE].map(chosen))
    return keep.to_numpy()
