"""The command line: the output contract, exit code 2 on unusable files, atomic output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from doseatlas import schemas as S
from doseatlas.cli import app
from doseatlas.io import RUN_TABLES, read_metadata

from wells import plate, row

CHECKER = Path(__file__).resolve().parents[2] / "shared" / "checks" / "check_output.py"
runner = CliRunner()


@pytest.fixture
def wells_csv(tmp_path):
    rows = plate(treated={c: 100 / (1 + c) for c in (0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30)}, time_zero=[20, 21])
    rows.append(row(signal="oops", well="Z1"))
    path = tmp_path / "wells.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_run_writes_every_table_with_provenance(tmp_path, wells_csv):
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(wells_csv), "--out", str(out)])
    assert result.exit_code == 0, result.output
    for name in RUN_TABLES:
        meta = read_metadata(out / f"{name}.parquet")
        assert meta["schema_version"] == S.SCHEMA_VERSION
        assert meta["inputs"][0]["checksum"].startswith("sha256:")
        assert meta["parameters"]["fit"]["selection"] == "ftest"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows_read"] == summary["rows_used"] + summary["rows_in_ledger"]
    assert summary["rows_in_ledger"] == 1
    assert (out / "report.html").stat().st_size > 1000


def test_output_passes_the_shared_contract_checker(tmp_path, wells_csv):
    if not CHECKER.is_file():
        pytest.skip("../shared/checks/check_output.py not found")
    out = tmp_path / "out"
    assert runner.invoke(app, ["run", str(wells_csv), "--out", str(out)]).exit_code == 0
    check = subprocess.run([sys.executable, str(CHECKER), str(out)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_unusable_file_exits_2_names_file_and_column_and_leaves_no_output(tmp_path):
    path = tmp_path / "broken.csv"
    pd.DataFrame(plate()).drop(columns=[S.SIGNAL]).to_csv(path, index=False)
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(path), "--out", str(out)])
    assert result.exit_code == 2
    assert "broken.csv" in result.output and "signal" in result.output
    assert not out.exists()
    assert not list(tmp_path.glob(".out*")), "no half-written scratch directory is left"


def test_a_failed_run_keeps_the_previous_output(tmp_path, wells_csv):
    out = tmp_path / "out"
    assert runner.invoke(app, ["run", str(wells_csv), "--out", str(out)]).exit_code == 0
    before = (out / "metrics.parquet").read_bytes()
    assert runner.invoke(app, ["run", str(tmp_path / "missing.csv"), "--out", str(out)]).exit_code == 2
    assert (out / "metrics.parquet").read_bytes() == before


def test_example_run_meets_the_output_contract(tmp_path):
    """The README's main job: `doseatlas run` with no input runs the bundled example."""
    out = tmp_path / "results"
    result = runner.invoke(app, ["run", "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = pd.read_parquet(out / "metrics.parquet")
    assert {"lab_a", "lab_b", "crispr_ko"} <= set(metrics[S.DATASET])
    assert {"estimated", "right_censored", "left_censored", "refused"} <= set(metrics[S.STATUS])
    lab_a = metrics[(metrics[S.DATASET] == "lab_a") & metrics[S.METRIC].isin(["gi50", "gr50"])]
    assert (lab_a[S.REASON] == "no_time_zero").all(), "lab_a has no time-zero plates"
    if CHECKER.is_file():
        check = subprocess.run([sys.executable, str(CHECKER), str(out)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr


def test_simulate_command_writes_wells_and_truth(tmp_path):
    wells, truth = tmp_path / "w.parquet", tmp_path / "t.parquet"
    args = ["simulate", "--out", str(wells), "--truth", str(truth), "--no-example", "--seed", "3"]
    result = runner.invoke(app, [*args, "--n-cell-lines", "2", "--n-drugs", "2", "--read-times", "72,96"])
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(wells)
    assert set(table[S.TIME_H]) == {0.0, 72.0, 96.0}
    assert len(pd.read_parquet(truth)) > 0
    assert runner.invoke(app, ["run", str(wells), "--out", str(tmp_path / "o")]).exit_code == 0


def test_simulate_rejects_bad_options_with_exit_2(tmp_path):
    result = runner.invoke(
        app, ["simulate", "--no-example", "--readout", "mts", "--out", str(tmp_path / "w.parquet")]
    )
    assert result.exit_code == 2


def test_fit_options_reach_the_fit_and_the_provenance(tmp_path, wells_csv):
    out = tmp_path / "out"
    args = ["run", str(wells_csv), "--out", str(out), "--model", "relative_viability=ll3"]
    args += ["--robust", "soft_l1", "--ftest-df", "grmetrics", "--policy", "shrink", "--min-curves", "3"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    fit = read_metadata(out / "curves.parquet")["parameters"]["fit"]
    assert fit["models"] == {"relative_viability": "ll3"}
    assert fit["robust"] == "soft_l1" and fit["ftest_df"] == "grmetrics"
    assert fit["policy"] == "shrink" and fit["min_curves"] == 3
    curves = pd.read_parquet(out / "curves.parquet")
    rv = curves[curves["scale"] == S.RELATIVE_VIABILITY]
    assert len(rv) and set(rv["model"]) == {"ll3"} and (rv["top"] == 1.0).all()


@pytest.mark.parametrize(
    "bad",
    [
        ["--model", "relative_viability"],
        ["--model", "viability=ll3"],
        ["--model", "gr=ll5"],
        ["--robust", "cauchy"],
        ["--ftest-df", "n"],
        ["--policy", "nlme"],
        ["--policy", "shrink", "--intervals", "bootstrap"],
    ],
)
def test_bad_fit_options_exit_2_with_one_message(tmp_path, wells_csv, bad):
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(wells_csv), "--out", str(out), *bad])
    assert result.exit_code == 2
    assert "error" in result.output and not out.exists()


def test_error_messages_keep_their_brackets(tmp_path):
    path = tmp_path / "x.csv"
    pd.DataFrame({"[weird]": [1]}).to_csv(path, index=False)
    result = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "[weird]" in result.output  # rich markup must not eat text in square brackets


def test_a_file_whose_every_row_is_rejected_is_a_clean_run_with_a_full_ledger(tmp_path):
    rows = pd.DataFrame(plate())
    rows[S.ROLE] = "bogus"
    path = tmp_path / "all_bad.csv"
    rows.to_csv(path, index=False)
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows_used"] == 0 and summary["rows_in_ledger"] == summary["rows_read"] == len(rows)
    if CHECKER.is_file():
        check = subprocess.run([sys.executable, str(CHECKER), str(out)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
