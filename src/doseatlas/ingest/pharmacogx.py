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


#: published metrics of a PharmacoGx ``profiles.csv``: column -> (doseatlas metric it stands for, factor to the
#: metric's unit); compared as published, with each consortium's own definition (see docs/validation.md)
PUBLISHED_PROFILES: dict[str, tuple[str, float]] = {
    "ic50_published": ("ic50", 1e-6),
    "auc_published": ("auc", 1.0),
}


def read_published(
    path: str | Path, *, info: str | Path | None = None, dataset: str | None = None
) -> pd.DataFrame:
    """The consortium's own published values of a PharmacoGx export (``profiles.csv``), long format.

    One row per experiment and published metric: the consistency key, ``dataset``, ``duration_h``, ``metric``
    (``ic50`` for ``ic50_published`` in molar, ``auc`` for ``auc_published`` as published: GDSC's area under the
    curve, CCLE's activity area, an area above it), ``value``, ``status`` (``estimated`` where a value is
    published, ``refused`` / ``not_provided_by_source`` where not) and ``reason``. Sources publish no censoring:
    a capped or extrapolated value is ``estimated`` here, as published. For :func:`doseatlas.harmonize.
    consistency.consistency_table` (``published=``).
    """
    path = Path(path)
    info_path = Path(info) if info is not None else path.with_name("sensitivity_info.csv")
    profiles = text_table(path)
    require(profiles, ("exp_id",), path=path, what="PharmacoGx profiles")
    meta = text_table(info_path)
    require(meta, ("exp_id", "sampleid", "treatmentid"), path=info_path, what="PharmacoGx sensitivity_info")
    columns = [c for c in PUBLISHED_PROFILES if c in profiles]
    long = profiles.melt(id_vars="exp_id", value_vars=columns, var_name="_column", value_name=S.VALUE)
    long = long.merge(meta.drop_duplicates("exp_id"), on="exp_id", how="inner")
    factor = long["_column"].map(lambda c: PUBLISHED_PROFILES[c][1])
    value = pd.to_numeric(long[S.VALUE], errors="coerce") * factor
    value = value.where(np.isfinite(value))
    return pd.DataFrame(
        {
            S.DATASET: dataset or path.parent.name,
            S.CELL_LINE: long["sampleid"].str.strip(),
            S.PERTURBATION_TYPE: S.PerturbationType.DRUG.value,
            S.PERTURBAGEN: long["treatmentid"].str.strip(),
            S.DURATION_H: pd.to_numeric(long["duration_h"], errors="coerce")
            if "duration_h" in long
            else np.nan,
            S.METRIC: long["_column"].map(lambda c: PUBLISHED_PROFILES[c][0]),
            S.VALUE: value,
            S.STATUS: np.where(value.notna(), S.MetricStatus.ESTIMATED.value, S.MetricStatus.REFUSED.value),
            S.REASON: np.where(value.notna(), None, S.RefusalReason.NOT_PROVIDED.value),
        }
    )
