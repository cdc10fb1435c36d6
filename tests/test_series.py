"""A source's own dose series (``series``) stays a separate curve unless the run pools series explicitly."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from doseatlas import schemas as S
from doseatlas.cli import app
from doseatlas.fit.table import curve_id
from doseatlas.ingest import read_any
from doseatlas.io import read_metadata
from doseatlas.pipeline import RunOptions, run_pipeline

from conftest import external_dir
from wells import plate

DOSES = {0.01: 98.0, 0.1: 90.0, 1.0: 55.0, 10.0: 20.0, 100.0: 12.0}


def _two_series_csv(tmp_path) -> str:
    """One plate, one cell line, one drug screened in two dose series (as GDSC's two concentration ranges)."""
    rows = plate(treated=DOSES)
    low = [dict(r, **{S.WELL: f"B{i:02d}"}) for i, r in enumerate(plate(treated=DOSES, vehicle=[], blank=[]))]
    for r in rows:
        r[S.SERIES] = "range=high" if r[S.ROLE] == "treated" else ""
    for r in low:
        r[S.SERIES] = "range=low"
    path = tmp_path / "two_series.csv"
    pd.DataFrame(rows + low).to_csv(path, index=False)
    return str(path)


def test_a_canonical_series_column_makes_separate_curves_and_appears_on_every_output(tmp_path):
    result = run_pipeline(read_any(_two_series_csv(tmp_path)))
    rv = result.curves[result.curves[S.SCALE] == S.RELATIVE_VIABILITY]
    assert sorted(rv[S.SERIES]) == ["range=high", "range=low"]
    assert set(result.metrics[S.SERIES]) == {"range=high", "range=low"}
    assert set(result.responses[S.SERIES]) == {"range=high", "range=low"}
    assert rv[S.CURVE_ID].nunique() == 2


def test_pooling_series_is_an_option_recorded_in_the_provenance(tmp_path):
    out = tmp_path / "out"
    cli = CliRunner().invoke(app, ["run", _two_series_csv(tmp_path), "--out", str(out), "--pool-series"])
    assert cli.exit_code == 0, cli.output
    curves = pd.read_parquet(out / "curves.parquet")
    rv = curves[curves[S.SCALE] == S.RELATIVE_VIABILITY]
    assert len(rv) == 1 and rv[S.SERIES].tolist() == [""]
    assert rv["n_points"].tolist() == [2 * len(DOSES)]
    assert read_metadata(out / "metrics.parquet")["parameters"]["pool_series"] is True
    separate = tmp_path / "separate"
    assert CliRunner().invoke(app, ["run", _two_series_csv(tmp_path), "--out", str(separate)]).exit_code == 0
    assert read_metadata(separate / "metrics.parquet")["parameters"]["pool_series"] is False
    assert len(pd.read_parquet(separate / "curves.parquet").query("scale == 'relative_viability'")) == 2


def test_a_curve_without_series_keeps_the_id_it_had_before_series_joined_the_key(tmp_path):
    result = run_pipeline(read_any(_two_series_csv(tmp_path)), options=RunOptions(pool_series=True))
    curve = result.curves[result.curves[S.SCALE] == S.RELATIVE_VIABILITY].iloc[0]
    old_key = tuple(
        curve[c] for c in S.CURVE_KEY if c not in (S.SERIES, S.SEEDING_DENSITY)
    )  # no density given
    assert curve[S.CURVE_ID] == curve_id(old_key, S.RELATIVE_VIABILITY)


@pytest.fixture(scope="module")
def gdsc_1510(tmp_path_factory):
    """Four GDSC plates (four cell lines) on which drug 1510 is screened at top concentrations 2.5 and 10 µM."""
    raw = pd.read_parquet(external_dir("gdsc_example_gdscIC50") / "gdsc_example_raw.parquet")
    barcodes = sorted(raw.loc[raw["DRUG_ID"] == 1510, "BARCODE"].unique())[:4]
    path = tmp_path_factory.mktemp("gdsc") / "gdsc_1510.parquet"
    raw[raw["BARCODE"].isin(barcodes)].reset_index(drop=True).to_parquet(path)
    return read_any(path, format="gdsc-raw")


def _rv_curves(result, drug: str) -> pd.DataFrame:
    curves = result.curves
    return curves[(curves[S.SCALE] == S.RELATIVE_VIABILITY) & (curves[S.PERTURBAGEN] == drug)]


def test_gdsc_drug_screened_in_two_concentration_ranges_gives_two_curves_per_cell_line(gdsc_1510):
    result = run_pipeline(gdsc_1510)
    curves = _rv_curves(result, "1510")
    assert curves[S.CELL_LINE].nunique() == 4
    per_line = curves.groupby(S.CELL_LINE)[S.SERIES].apply(lambda s: tuple(sorted(s)))
    assert set(per_line) == {("max_conc_uM=10", "max_conc_uM=2.5")}
    assert (curves["n_doses"] == 7).all()  # each series is its own 7-dose titration
    ic50 = result.metrics[(result.metrics[S.PERTURBAGEN] == "1510") & (result.metrics[S.METRIC] == "ic50")]
    assert len(ic50) == 8 and set(ic50[S.SERIES]) == {"max_conc_uM=10", "max_conc_uM=2.5"}
    # the other drugs are one range each: one curve per cell line, named by its range
    assert (_rv_curves(result, "1003")[S.SERIES] == "max_conc_uM=0.1").all()


def test_gdsc_series_are_pooled_only_with_the_option(gdsc_1510):
    pooled = _rv_curves(run_pipeline(gdsc_1510, options=RunOptions(pool_series=True)), "1510")
    assert len(pooled) == 4 and (pooled[S.SERIES] == "").all()
    assert (pooled["n_doses"] == 14).all()  # both titrations in one curve


def test_pharmacogx_repeated_experiments_are_separate_curves():
    raw = read_any(external_dir("pharmacogx_small_psets") / "GDSCsmall" / "raw_long.csv", format="pharmacogx")
    info = pd.read_csv(external_dir("pharmacogx_small_psets") / "GDSCsmall" / "sensitivity_info.csv")
    repeated = info.groupby(["sampleid", "treatmentid"]).size()
    assert (repeated > 1).sum() == 9  # GDSCsmall's repeated experiments
    result = run_pipeline(raw)
    curves = result.curves[result.curves[S.SCALE] == S.RELATIVE_VIABILITY]
    assert len(curves) == len(info) and set(curves[S.SERIES]) == set(info["exp_id"])
    pooled = run_pipeline(raw, options=RunOptions(pool_series=True)).curves
    assert len(pooled[pooled[S.SCALE] == S.RELATIVE_VIABILITY]) == len(repeated)
