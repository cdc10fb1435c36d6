"""gDR long tables: RV and GR normalized values equal gDR's Normalized.csv (rounded there to 4 decimals)."""

from __future__ import annotations

import pandas as pd
import pytest

from doseatlas import schemas as S
from doseatlas.ingest import read_any
from doseatlas.normalize import NormalizationOptions, normalize
from doseatlas.validate import validate_wells

from conftest import external_dir

TOL = 5e-5 + 1e-12  # gDR stores normalized values rounded to 4 decimals
KEY = ["row_id", "col_id", "Concentration"]


def _ours(folder) -> tuple[pd.DataFrame, pd.DataFrame]:
    table = read_any(folder / "RawTreated.csv", format="gdr")
    result = validate_wells(table)
    doubling = table.attrs["doubling_times"] or None
    out = normalize(
        result.clean, options=NormalizationOptions(control_summary="mean", doubling_times=doubling)
    )
    raw = pd.read_csv(folder / "RawTreated.csv")
    for column in KEY:
        out[column] = raw[column].to_numpy()[out[S.SOURCE_LINE].to_numpy() - 2]
    return out, result.ledger


def _diff(out: pd.DataFrame, ref: pd.DataFrame, kind: str, column: str) -> pd.Series:
    ref = ref[ref["normalization_type"] == kind].sort_values([*KEY, "x"]).reset_index(drop=True)
    ours = out.assign(x=out[column]).sort_values([*KEY, "x"]).reset_index(drop=True)
    assert len(ref) == len(ours)
    assert (ref[KEY].astype(str).to_numpy() == ours[KEY].astype(str).to_numpy()).all()
    return (ref["x"] - ours["x"]).abs(), ref["x"], ours["x"]


@pytest.mark.parametrize("name", ["synthetic_small_no_noise", "prism_gdc8025"])
def test_gdr_normalized_values(name):
    folder = external_dir("gdrtestdata") / name
    out, ledger = _ours(folder)
    ref = pd.read_csv(folder / "Normalized.csv")
    diff, _, _ = _diff(out, ref, "RV", S.RELATIVE_VIABILITY)
    assert diff.max() < TOL
    diff, ref_gr, our_gr = _diff(out, ref, "GR", S.GR)
    if name == "synthetic_small_no_noise":  # GR from ReferenceDivisionTime and the 72 h duration
        assert diff.max() < TOL
    else:  # PRISM: no Day0 read and no division time -> no GR on either side
        assert ref_gr.isna().all() and our_gr.isna().all()
    # empty Day0 placeholders and repeated control listings are in the ledger, with their reasons
    assert set(ledger[S.LEDGER_REASON]) <= {S.RowReason.MISSING_SIGNAL.value, S.RowReason.DUPLICATE_ROW.value}
