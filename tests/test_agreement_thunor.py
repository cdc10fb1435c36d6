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
    # the reads at other times are not used, and every one of them is in the ledger with its reason
    assert set(result.ledger[S.LEDGER_REASON]) == {S.RowReason.READ_TIME_NOT_SELECTED.value}
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


def _data_lines(path) -> int:
    with open(path, encoding="utf-8") as handle:
        return sum(1 for line in handle if line.strip()) - 1


def test_hts007_every_read_of_the_source_is_used_or_in_the_ledger():
    """Issue 10: the reader kept one read per well and 97,379 of HTS007's 101,666 reads vanished without a count."""
    from doseatlas.pipeline import run_pipeline

    data = external_dir("thunor_hts007") / "data"
    records = _data_lines(data / "hts007_assays_treated.csv") + _data_lines(data / "hts007_controls.csv")
    assert records == 101666
    result = run_pipeline(read_any(data / "hts007_wells_treated.csv", format="thunor-hts", time_h=72))
    summary = result.summary
    assert summary["rows_read"] == records == summary["rows_used"] + summary["rows_in_ledger"]
    assert summary[S.SOURCE_RECORDS] == records and summary[S.RECORDS_FOLDED] == {}
    assert summary["rows_used"] == 4287  # the reads nearest 72 h: 4,061 treated wells + 226 controls
    assert summary["ledger_reasons"] == {S.RowReason.READ_TIME_NOT_SELECTED.value: 101666 - 4287}
    assert result.ledger[S.LEDGER_MESSAGE].str.contains("another time").all()
    assert summary["treated_wells"] == 4061


def test_hts007_every_read_is_used_without_a_target_time():
    table = read_any(external_dir("thunor_hts007") / "data" / "hts007_wells_treated.csv", format="thunor-hts",
                     time_h=None)  # fmt: skip
    assert len(table) == 101666
    assert not table[S.ROLE].isin(S.LEDGER_ROLES).any()
