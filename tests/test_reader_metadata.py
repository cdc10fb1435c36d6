"""Metadata a reader finds in its source (gDR's doubling times) reaches the run, with its source recorded."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from doseatlas import schemas as S
from doseatlas.cli import app
from doseatlas.io import read_metadata
from doseatlas.normalize import NormalizationOptions
from doseatlas.pipeline import RunOptions, with_reader_metadata

from conftest import external_dir

GDR = "synthetic_small_no_noise"


def _gdr_raw_treated():
    return external_dir("gdrtestdata") / GDR / "RawTreated.csv"


def _run(tmp_path, *extra: str):
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["run", str(_gdr_raw_treated()), "--format", "gdr", "--out", str(out), *extra]
    )
    assert result.exit_code == 0, result.output
    return out


def test_gdr_gr_metrics_are_no_longer_refused_through_the_cli(tmp_path):
    """Issue 10: the reader read ReferenceDivisionTime, but the CLI dropped it: GR refused on all 2,700 wells."""
    out = _run(tmp_path)
    responses = pd.read_parquet(out / "responses.parquet")
    assert len(responses) == 2700
    assert responses[S.GR].notna().all() and responses[S.reason_column(S.GR)].isna().all()
    assert (responses[S.GR_SOURCE] == "doubling_time").all()
    assert (
        responses[S.DOUBLING_TIME_SOURCE].str.endswith("colData_celllines.csv: ReferenceDivisionTime").all()
    )
    metrics = pd.read_parquet(out / "metrics.parquet")
    gr50 = metrics[metrics[S.METRIC] == "gr50"]
    assert len(gr50) == 100 and not gr50[S.STATUS].eq(S.MetricStatus.REFUSED).any()
    normalization = read_metadata(out / "metrics.parquet")["parameters"]["normalization"]
    assert normalization["doubling_times"]["cellline_BA"] == 26.0
    assert normalization["doubling_time_sources"]["cellline_BA"].endswith("ReferenceDivisionTime")


def test_a_user_doubling_time_file_wins_for_its_cell_lines(tmp_path):
    user = tmp_path / "td.csv"
    user.write_text("cell_line,doubling_time_h\ncellline_BA,20\n")
    out = _run(tmp_path, "--doubling-times", str(user), "--doubling-time-source", "lab notebook")
    responses = pd.read_parquet(out / "responses.parquet")
    ba = responses[responses[S.CELL_LINE] == "cellline_BA"]
    assert (ba[S.DOUBLING_TIME_H] == 20.0).all() and (ba[S.DOUBLING_TIME_SOURCE] == "lab notebook").all()
    ca = responses[responses[S.CELL_LINE] == "cellline_CA"]
    assert (ca[S.DOUBLING_TIME_H] == 30.0).all()
    assert ca[S.DOUBLING_TIME_SOURCE].str.endswith("ReferenceDivisionTime").all()


@pytest.mark.slow
def test_the_dask_engine_uses_the_readers_doubling_times_as_the_in_memory_run(tmp_path):
    pytest.importorskip("dask")
    memory = pd.read_parquet(_run(tmp_path) / "responses.parquet")
    out = tmp_path / "dask"
    args = ["run", str(_gdr_raw_treated()), "--format", "gdr", "--engine", "dask", "--out", str(out)]
    assert CliRunner().invoke(app, args).exit_code == 0
    dask = pd.read_parquet(out / "responses.parquet")
    pd.testing.assert_series_equal(memory[S.GR], dask[S.GR])
    assert read_metadata(out / "metrics.parquet")["parameters"]["normalization"]["doubling_time_sources"]


def test_merging_reader_metadata_keeps_given_values_and_is_idempotent():
    options = RunOptions(normalization=NormalizationOptions(doubling_times={"A": 10.0}))
    attrs = {"doubling_times": {"A": 99.0, "B": 30.0}, "doubling_time_source": "file.csv"}
    merged = with_reader_metadata(options, attrs)
    assert merged.normalization.doubling_times == {"A": 10.0, "B": 30.0}
    assert merged.normalization.doubling_time_sources == {"B": "file.csv"}
    assert with_reader_metadata(merged, attrs) == merged
    assert with_reader_metadata(options, {}) is options
