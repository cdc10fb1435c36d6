"""Reader of gDR long tables (``RawTreated.csv`` + ``Controls.csv``, gDR platform / gDRtestData).

``RawTreated.csv``: ``row_id`` (drug condition, ``Gnumber_DrugName_moa_Duration``), ``col_id`` (cell line),
``Concentration`` (µM), ``ReadoutValue``, ``BackgroundValue``, ``CorrectedReadout`` (= readout -
background), ``record_id`` and optionally ``Barcode`` (plate). ``Controls.csv``: ``control_type``
(``UntrtReadout`` -> vehicle, ``Day0Readout`` -> time_zero), ``CorrectedReadout``, ``record_id``.
The signal is ``CorrectedReadout`` (background already subtracted by gDR; no blank wells are
emitted). Annotations beside the files are used when present: ``rowData_drug.csv`` (``DrugName``,
``Duration`` in hours) and ``colData_celllines.csv`` (``CellLineName``, ``ReferenceDivisionTime`` ->
``attrs["doubling_times"]`` with ``attrs["doubling_time_source"]``, which a run uses for GR without a time-zero
read, see :func:`doseatlas.pipeline.with_reader_metadata`). Without ``Barcode`` each cell line is
its own pseudo-plate (PRISM pools cell lines in one well). gDR lists the same control record under
every drug condition of the plate: repeats are exact duplicates and go to the ledger as such.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from doseatlas import schemas as S
from doseatlas.ingest._common import finish, require, text_table

CONTROL_ROLES = {"UntrtReadout": S.Role.VEHICLE.value, "Day0Readout": S.Role.TIME_ZERO.value}


def read(
    path: str | Path,
    *,
    controls: str | Path | None = None,
    dataset: str | None = None,
    readout: str = S.Readout.UNKNOWN,
    signal: str = "CorrectedReadout",
) -> pd.DataFrame:
    """Read gDR ``RawTreated.csv`` (+ ``Controls.csv`` beside it) into the canonical well table.

    Parameters
    ----------
    path
        The ``RawTreated.csv`` file.
    controls
        The ``Controls.csv`` file (default: beside ``path``).
    dataset
        Value of ``dataset`` (default: the folder name).
    readout
        gDR tables do not name the assay: ``unknown`` unless given.
    signal
        Column used as the treated signal (``CorrectedReadout``; ``ReadoutValue`` for raw values).
    """
    path = Path(path)
    ctrl_path = Path(controls) if controls is not None else path.with_name("Controls.csv")
    raw = text_table(path)
    require(raw, ("row_id", "col_id", "Concentration", signal), path=path, what="gDR RawTreated")
    ctrl = text_table(ctrl_path)
    require(
        ctrl, ("row_id", "col_id", "control_type", "CorrectedReadout"), path=ctrl_path, what="gDR Controls"
    )
    drugs, lines = _annotations(path)
    context = {
        S.DATASET: dataset or path.parent.name,
        S.READOUT: str(readout),
        "drugs": drugs,
        "lines": lines,
    }
    treated = _frame(raw, role=S.Role.TREATED.value, signal=raw[signal], context=context)
    treated[S.SOURCE_FILE] = str(path)
    role = ctrl["control_type"].str.strip().map(CONTROL_ROLES).fillna(ctrl["control_type"])
    control = _frame(ctrl, role=role, signal=ctrl["CorrectedReadout"], context=context)
    control[S.SOURCE_FILE] = str(ctrl_path)
    out = pd.concat([treated, control], ignore_index=True)
    doubling = _doubling_times(path, lines)
    attrs = {"doubling_times": doubling}
    if doubling:
        attrs["doubling_time_source"] = f"{path.with_name('colData_celllines.csv')}: ReferenceDivisionTime"
    return finish(out, path=path, lines=out[S.SOURCE_LINE], attrs=attrs)


def _annotations(path: Path) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    drugs = path.with_name("rowData_drug.csv")
    lines = path.with_name("colData_celllines.csv")
    d = text_table(drugs).drop_duplicates("row_id").set_index("row_id") if drugs.is_file() else None
    c = text_table(lines).drop_duplicates("col_id").set_index("col_id") if lines.is_file() else None
    return d, c


def _duration(row_id: pd.Series, drugs: pd.DataFrame | None) -> pd.Series:
    """Duration in hours from the drug annotation, else the trailing ``_<number>`` of row_id."""
    from_id = row_id.map(lambda r: m.group(1) if (m := re.search(r"_(\d+(?:\.\d+)?)$", r)) else "")
    if drugs is not None and "Duration" in drugs:
        annotated = row_id.map(drugs["Duration"])
        return annotated.where(annotated.notna() & (annotated != ""), from_id).astype(object)
    return from_id.astype(object)


def _frame(table: pd.DataFrame, *, role, signal: pd.Series, context: dict) -> pd.DataFrame:
    row_id, col_id = table["row_id"].str.strip(), table["col_id"].str.strip()
    drugs, lines = context["drugs"], context["lines"]
    name = (
        col_id.map(lines["CellLineName"]).fillna(col_id)
        if lines is not None and "CellLineName" in lines
        else col_id
    )
    drug = (
        row_id.map(drugs["DrugName"]).fillna(row_id) if drugs is not None and "DrugName" in drugs else row_id
    )
    role = pd.Series(role, index=table.index)
    treated = role == S.Role.TREATED.value
    plate = table["Barcode"].str.strip() + "|" + col_id if "Barcode" in table else "cell_line=" + col_id
    record = table["record_id"].str.strip() if "record_id" in table else pd.Series("", index=table.index)
    return pd.DataFrame(
        {
            S.DATASET: context[S.DATASET],
            S.PLATE: plate,
            S.WELL: ("record" + record).where(record.str.lower().isin({"", "na"}) == False, ""),  # noqa: E712
            S.CELL_LINE: name,
            S.ROLE: role,
            S.PERTURBATION_TYPE: np.where(treated, S.PerturbationType.DRUG.value, ""),
            S.PERTURBAGEN: drug.where(treated, ""),
            S.CONCENTRATION: table["Concentration"].where(treated, "") if "Concentration" in table else "",
            S.CONCENTRATION_UNIT: "uM",
            S.TIME_H: _duration(row_id, drugs).where(role != S.Role.TIME_ZERO.value, "0"),
            S.READOUT: context[S.READOUT],
            S.SIGNAL: signal.where(~signal.str.lower().isin({"na", "nan"}), ""),
            S.SOURCE_LINE: table.index.to_numpy() + 2,
        }
    )


def _doubling_times(path: Path, lines: pd.DataFrame | None) -> dict[str, float]:
    if lines is None or "ReferenceDivisionTime" not in lines:
        return {}
    td = pd.to_numeric(lines["ReferenceDivisionTime"], errors="coerce")
    names = lines["CellLineName"] if "CellLineName" in lines else pd.Series(lines.index, index=lines.index)
    ok = td.notna() & (td > 0)
    return {str(n): float(t) for n, t in zip(names[ok], td[ok], strict=True)}
