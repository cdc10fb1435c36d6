"""Reader of GDSC raw plate data (the ``gdscIC50`` raw format: one row per well of a 1536-well plate).

Columns used: ``BARCODE`` (plate), ``POSITION`` (1-based, row-wise, 48 columns), ``TAG`` (well role),
``CELL_LINE_NAME``, ``DRUG_ID``, ``CONC`` (µM), ``INTENSITY``, ``ASSAY``, ``DURATION`` (days),
``SEEDING_DENSITY``; ``DRUGSET_ID`` and ``SCAN_DATE`` derive the replicate number.

Series: a GDSC drug may be screened in several concentration ranges (drug 1510 of the gdscIC50 example at top
concentrations 2.5 and 10 µM, library drugs ``L9`` and ``L32`` on the same plates). As gdscIC50
(``drug_specifiers = DRUG_ID_lib, maxc``), a treated well's ``series`` is its range's top concentration:
``max_conc_uM=<maxc>``, the highest ``CONC`` of its library drug (the ``L<n>`` of ``TAG``) on its plate. Separate
series are separate curves unless the run pools them (``--pool-series``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from doseatlas import schemas as S
from doseatlas.errors import InputFileError
from doseatlas.ingest._common import (
    EXCLUDED_BY_SOURCE,
    finish,
    number_text,
    parquet_table,
    require,
    text_table,
    well_names,
)
from doseatlas.readouts import ALIASES

REQUIRED = ("BARCODE", "POSITION", "TAG", "CELL_LINE_NAME", "DRUG_ID", "CONC", "INTENSITY")
#: GDSC ``ASSAY`` values -> readout (Glo = CellTiter-Glo, ATP; Syto60 = nucleic-acid stain; resazurin)
#: (the readout registry's aliases: doseatlas.readouts)
ASSAYS: dict[str, str] = dict(ALIASES)
_TREATED = r"^L\d+-D\d+-[A-Z]+$"
PLATE_COLUMNS_1536 = 48


def read(
    path: str | Path,
    *,
    dataset: str = "GDSC",
    drug_names: Mapping[str, str] | None = None,
    plate_columns: int = PLATE_COLUMNS_1536,
) -> pd.DataFrame:
    """Read a GDSC raw data file (Parquet, CSV or TSV) into the canonical well table.

    Parameters
    ----------
    path
        The raw file. For Parquet, ``source_line`` is the row index + 1 (no header line).
    dataset
        Value of the ``dataset`` column.
    drug_names
        Optional ``{DRUG_ID: name}``; without it the perturbagen is the DRUG_ID as text.
    plate_columns
        Columns of the plate (48 for the 1536-well plates of GDSC) to turn POSITION into a well name.

    Returns
    -------
    pandas.DataFrame
        Canonical well table. ``UN-USED`` wells are kept with role ``excluded_by_source`` so that
        validation lists them in the ledger; no row is dropped.
    """
    path = Path(path)
    parquet = path.suffix.lower() == ".parquet"
    raw = parquet_table(path) if parquet else text_table(path)
    require(raw, REQUIRED, path=path, what="GDSC raw")
    lines = np.arange(len(raw)) + (1 if parquet else 2)
    tag = raw["TAG"].astype(str).str.strip()
    role = _roles(tag)
    drug = number_text(raw["DRUG_ID"])
    if drug_names:
        drug = drug.map(lambda d: drug_names.get(d, d))
    has_drug = role.isin([S.Role.TREATED.value, S.Role.POSITIVE_CONTROL.value])
    out = pd.DataFrame(
        {
            S.DATASET: dataset,
            S.PLATE: number_text(raw["BARCODE"]),
            S.WELL: _wells(raw["POSITION"], path=path, plate_columns=plate_columns, parquet=parquet),
            S.CELL_LINE: raw["CELL_LINE_NAME"].astype(str).str.strip(),
            S.ROLE: role,
            S.PERTURBATION_TYPE: np.where(has_drug, S.PerturbationType.DRUG.value, ""),
            S.PERTURBAGEN: drug.where(has_drug, ""),
            S.CONCENTRATION: number_text(raw["CONC"]).where(has_drug | (role == EXCLUDED_BY_SOURCE), ""),
            S.CONCENTRATION_UNIT: "uM",
            S.TIME_H: _hours(raw),
            S.READOUT: _readout(raw),
            S.SIGNAL: raw["INTENSITY"],
            S.REPLICATE: _replicate(raw),
            S.SEEDING_DENSITY: raw["SEEDING_DENSITY"] if "SEEDING_DENSITY" in raw else "",
            S.SERIES: _series(raw, tag, treated=role == S.Role.TREATED.value),
        }
    )
    out = _identifiers(out, raw, has_drug=has_drug)
    return finish(out, path=path, lines=lines, attrs={"source_line_convention": _line_note(parquet)})


def _series(raw: pd.DataFrame, tag: pd.Series, *, treated: pd.Series) -> pd.Series:
    """``max_conc_uM=<top CONC of the well's library drug on its plate>`` for treated wells, else empty."""
    library = tag.str.extract(r"^(L\d+)-D\d+-", expand=False).where(treated)
    conc = pd.to_numeric(raw["CONC"], errors="coerce").where(treated)
    key = pd.DataFrame({"p": raw["BARCODE"].astype(str), "d": raw["DRUG_ID"].astype(str), "l": library})
    top = conc.groupby([key["p"], key["d"], key["l"]], dropna=True, sort=False).transform("max")
    text = "max_conc_uM=" + number_text(top)
    return text.where(top.notna(), "").astype(object)


def _identifiers(out: pd.DataFrame, raw: pd.DataFrame, *, has_drug: pd.Series) -> pd.DataFrame:
    """The source's own identifiers: ``COSMIC:<COSMIC_ID>`` for the cell line and ``GDSC_DRUG:<DRUG_ID>`` for
    the drug of treated wells (the identities step reads them; empty where the source gives none)."""
    if "COSMIC_ID" in raw:
        cosmic = number_text(raw["COSMIC_ID"]).str.strip()
        out[S.CELL_LINE_ID] = ("COSMIC:" + cosmic).where(cosmic != "", "")
    drug = number_text(raw["DRUG_ID"]).str.strip()
    out[S.PERTURBAGEN_ID] = ("GDSC_DRUG:" + drug).where(has_drug & (drug != ""), "")
    return out


def _line_note(parquet: bool) -> str:
    return "row index + 1 (Parquet, no header)" if parquet else "file line (header = line 1)"


def _roles(tag: pd.Series) -> pd.Series:
    """GDSC TAG -> role; unknown tags are passed through so validation reports them."""
    role = pd.Series(tag.to_numpy(), index=tag.index, dtype=object)
    role[tag.str.match(_TREATED)] = S.Role.TREATED.value
    role[tag == "NC-1"] = S.Role.VEHICLE.value
    role[tag == "NC-0"] = S.Role.UNTREATED.value
    role[tag == "B"] = S.Role.BLANK.value
    role[tag.str.match(r"^PC-\d+$")] = S.Role.POSITIVE_CONTROL.value
    role[tag == "UN-USED"] = EXCLUDED_BY_SOURCE
    return role


def _wells(position: pd.Series, *, path: Path, plate_columns: int, parquet: bool) -> pd.Series:
    pos = pd.to_numeric(position, errors="coerce")
    bad = pos.isna() | (pos < 1) | (pos % 1 != 0)
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputFileError(
            str(path),
            f"POSITION {position.iloc[first]!r} is not a 1-based well number",
            column="POSITION",
            line=first + (1 if parquet else 2),
        )
    return pd.Series(
        well_names(pos.to_numpy(dtype=np.int64) - 1, n_columns=plate_columns), index=position.index
    )


def _hours(raw: pd.DataFrame) -> pd.Series:
    if "DURATION" not in raw:
        return pd.Series("", index=raw.index, dtype=object)  # unknown: validation reports it
    days = pd.to_numeric(raw["DURATION"], errors="coerce")
    return number_text(24.0 * days).where(days.notna(), raw["DURATION"].astype(str))


def _readout(raw: pd.DataFrame) -> pd.Series:
    if "ASSAY" not in raw:
        return pd.Series(S.Readout.UNKNOWN.value, index=raw.index, dtype=object)
    assay = raw["ASSAY"].astype(str).str.strip()
    mapped = assay.str.lower().map({k: str(v) for k, v in ASSAYS.items()})
    return mapped.where(mapped.notna(), assay).astype(object)  # unmapped names reach the ledger by name


def _replicate(raw: pd.DataFrame) -> pd.Series:
    """Replicate = rank of the plate among plates of the same cell line and drug set (by scan date)."""
    if "DRUGSET_ID" not in raw:
        return pd.Series("", index=raw.index, dtype=object)
    order = [c for c in ("SCAN_DATE", "BARCODE") if c in raw]
    plates = raw[["CELL_LINE_NAME", "DRUGSET_ID", *order]].astype(str).drop_duplicates(["BARCODE"])
    plates = plates.sort_values(order, kind="stable")
    plates["_rep"] = plates.groupby(["CELL_LINE_NAME", "DRUGSET_ID"]).cumcount() + 1
    rep = raw["BARCODE"].astype(str).map(plates.set_index("BARCODE")["_rep"])
    return rep.astype(str).astype(object)
