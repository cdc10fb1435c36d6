"""GDSC raw plates: our per-plate normalization reproduces gdscIC50's untrimmed normalized intensity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from doseatlas import schemas as S
from doseatlas.ingest import read_any
from doseatlas.ingest._common import EXCLUDED_BY_SOURCE, well_names
from doseatlas.normalize import NormalizationOptions, normalize
from doseatlas.validate import validate_wells

from conftest import external_dir


def _compare(raw_path, barcodes=None) -> tuple[float, int, pd.DataFrame]:
    folder = external_dir("gdsc_example_gdscIC50")
    table = read_any(raw_path, format="gdsc-raw")
    result = validate_wells(table)
    responses = normalize(result.clean, options=NormalizationOptions(control_summary="mean"))
    ref = pd.read_parquet(folder / "reference" / "gdscIC50_normalized_untrimmed.parquet")
    if barcodes is not None:
        ref = ref[ref["BARCODE"].isin(barcodes)]
    ref = ref.assign(well=well_names(ref["POSITION"].to_numpy() - 1, n_columns=48))
    merged = ref.merge(responses, left_on=["BARCODE", "well"], right_on=[S.PLATE, S.WELL], how="left")
    assert len(merged) == len(ref) and merged[S.RELATIVE_VIABILITY].notna().all()
    diff = float(np.abs(merged["normalized_intensity"] - merged[S.RELATIVE_VIABILITY]).max())
    return diff, len(ref), result.ledger


def test_gdsc_subset_matches_gdscic50_untrimmed(tmp_path):
    folder = external_dir("gdsc_example_gdscIC50")
    raw = pd.read_parquet(folder / "gdsc_example_raw.parquet")
    barcodes = sorted(raw["BARCODE"].unique())[:25]
    subset = raw[raw["BARCODE"].isin(barcodes)].reset_index(drop=True)
    path = tmp_path / "subset.parquet"
    subset.to_parquet(path)
    diff, n, ledger = _compare(path, barcodes)
    assert n > 500
    assert diff < 1e-9
    # every UN-USED well is in the ledger (not silently dropped), and nothing else is
    assert len(ledger) == int((subset["TAG"] == "UN-USED").sum())
    assert (ledger[S.LEDGER_REASON] == EXCLUDED_BY_SOURCE).all()


@pytest.mark.slow
def test_gdsc_full_file_matches_gdscic50_untrimmed():
    folder = external_dir("gdsc_example_gdscIC50")
    diff, n, _ = _compare(folder / "gdsc_example_raw.parquet")
    assert n == 57897
    assert diff < 1e-9
