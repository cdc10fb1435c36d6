"""Reader of PharmacoGx sensitivity exports (``raw_long.csv`` + ``sensitivity_info.csv``).

``raw_long.csv`` holds one row per experiment and dose: ``exp_id, dose_index, dose_uM,
viability_pct`` (percent of control, not clipped); ``sensitivity_info.csv`` (same folder unless
``info=`` is given) maps ``exp_id`` to ``sampleid`` (cell line), ``treatmentid`` (drug) and
``duration_h``. The data are already normalized: the result is a response table on the
``relative_viability`` scale (``viability_pct / 100``), so only the metrics it supports are computed.
Each experiment is one dose series: ``series`` is its ``exp_id``, so repeated experiments of a cell line and drug
(GDSCsmall has 9) are separate curves, as PharmacoGx fits them, unless the run pools them (``--pool-series``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from doseatlas import schemas as S
from doseatlas.ingest._common import finish, number_text, require, text_table


def read(
    path: str | Path,
    *,
    info: str | Path | None = None,
    dataset: str | None = None,
    readout: str = S.Readout.UNKNOWN,
) -> pd.DataFrame:
    """Read a PharmacoGx ``raw_long.csv`` (+ its ``sensitivity_info.csv``) into a response table.

    Parameters
    ----------
    path
        The ``raw_long.csv`` file.
    info
        The ``sensitivity_info.csv`` file (default: beside ``path``).
    dataset
        Value of ``dataset`` (default: the name of the folder, e.g. ``GDSCsmall``).
    readout
        PharmacoSets do not record the assay: ``unknown`` unless given.

    Returns
    -------
    pandas.DataFrame
        Response table; ``replicate`` numbers the experiments of the same cell line and drug
        (1, 2, ... in file order); ``time_h`` from ``duration_h`` (empty when absent: unknown).
    """
    path = Path(path)
    info_path = Path(info) if info is not None else path.with_name("sensitivity_info.csv")
    raw = text_table(path)
    require(raw, ("exp_id", "dose_uM", "viability_pct"), path=path, what="PharmacoGx raw")
    meta = text_table(info_path)
    require(meta, ("exp_id", "sampleid", "treatmentid"), path=info_path, what="PharmacoGx sensitivity_info")
    meta = meta.drop_duplicates("exp_id").set_index("exp_id")
    meta["_rep"] = (meta.groupby(["sampleid", "treatmentid"], sort=False).cumcount() + 1).astype(str)
    exp = raw["exp_id"].str.strip()
    known = exp.isin(meta.index)
    pct = pd.to_numeric(raw["viability_pct"], errors="coerce")
    response = number_text(pct / 100.0).where(pct.notna(), raw["viability_pct"])

    def lookup(column: str) -> pd.Series:
        if column not in meta:
            return pd.Series("", index=raw.index, dtype=object)
        return exp.map(meta[column]).fillna("").astype(object)

    out = pd.DataFrame(
        {
            S.DATASET: dataset or path.parent.name,
            S.CELL_LINE: lookup("sampleid"),  # empty for an unknown exp_id -> ledger "cell_line is empty"
            S.PERTURBATION_TYPE: S.PerturbationType.DRUG.value,
            S.PERTURBAGEN: lookup("treatmentid"),
            S.CONCENTRATION: raw["dose_uM"],
            S.CONCENTRATION_UNIT: "uM",
            S.TIME_H: lookup("duration_h"),
            S.READOUT: str(readout),
            S.RESPONSE: response,
            S.RESPONSE_SCALE: S.RELATIVE_VIABILITY,
            S.REPLICATE: lookup("_rep"),
            S.SERIES: exp.to_numpy(dtype=object),
        }
    )
    attrs = {"unmatched_exp_ids": int((~known).sum())}
    return finish(out, path=path, lines=np.arange(len(raw)) + 2, attrs=attrs)
