"""Thunor HTS007: viability at the read nearest 72 h equals thunor.viability(dataset, time_hrs=72)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from doseatlas import schemas as S
from doseatlas.ingest import read_any
from doseatlas.normalize import NormalizationOptions, normalize
from doseatlas.validate import validate_wells

from conftest import external_dir


def test_hts007_viability_72h_matches_thunor():
    folder = external_dir("thunor_hts007")
    table = read_any(folder / "data" / "hts007_wells_treated.csv", format="thunor-hts", time_h=72)
    result = validate_wells(table)
    assert result.n_rejected == 0
    # thunor: value / mean of the plate's control wells at the same read
    out = normalize(result.clean, options=NormalizationOptions(control_summary="mean"))
    reads = pd.read_csv(folder / "data" / "hts007_assays_treated.csv", usecols=["well_id"])
    out["well_id"] = reads["well_id"].to_numpy()[out[S.SOURCE_LINE].to_numpy() - 2]
    ref = pd.read_csv(folder / "reference" / "thunor_viability_72h_raw.csv")
    merged = ref.merge(out, on="well_id", how="left")
    assert len(merged) == len(ref) == 4061
    assert np.abs(merged["viability"] - merged[S.RELATIVE_VIABILITY]).max() < 1e-12
    assert np.abs(merged["timepoint_hours"] - merged[S.TIME_H]).max() == 0
    # no read at the time of treatment: GR is refused, not computed from the first (post-dose) read
    assert (out[S.reason_column(S.GR)] == S.RefusalReason.NO_TIME_ZERO).all()


def test_hts007_hdf5_gives_the_csv_export_row_for_row():
    folder = external_dir("thunor_hts007") / "data"
    from_hdf = read_any(folder / "hts007.h5", format="thunor-hts", time_h=None)
    from_csv = read_any(folder / "hts007_wells_treated.csv", format="thunor-hts", time_h=None)
    assert len(from_hdf) == len(from_csv) == 96354 + 5312
    key = [S.PLATE, S.WELL, S.TIME_H, S.ROLE]
    values = [S.CELL_LINE, S.PERTURBAGEN, S.CONCENTRATION, S.SIGNAL, S.READOUT, S.DATASET]
    merged = from_hdf.merge(from_csv, on=key, suffixes=("_hdf", "_csv"), validate="one_to_one")
    assert len(merged) == len(from_csv)
    for column in values:
        ours, theirs = merged[f"{column}_hdf"], merged[f"{column}_csv"]
        if column in (S.CONCENTRATION, S.SIGNAL):  # the same number, written by repr or by the CSV writer
            ours, theirs = pd.to_numeric(ours.replace("", None)), pd.to_numeric(theirs.replace("", None))
        assert ((ours == theirs) | (ours.isna() & theirs.isna())).all(), column
    assert from_hdf[S.SOURCE_FILE].str.endswith("hts007.h5:/assays").sum() == 96354
