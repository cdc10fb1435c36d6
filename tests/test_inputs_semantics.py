"""Issue 18, inputs and first run: a Thunor export named by any of its files, every file read checksummed,
reader options that do not fit a format refused with one message (exit 2), a word while the kernel compiles."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from doseatlas import cli, io
from doseatlas.errors import ConfigError, InputFileError
from doseatlas.ingest import read_any

runner = CliRunner()


def _thunor_export(folder: Path, name: str = "hts") -> list[Path]:
    doses = (1e-9, 1e-8, 1e-7, 1e-6, 1e-5)
    wells = pd.DataFrame(
        {"drug": "d", "cell_line": "c", "dose": doses, "plate": "p1", "well_id": [f"w{i}" for i in range(5)],
         "well_num": range(5)}
    )  # fmt: skip
    assays = pd.DataFrame(
        {
            "assay": "cell count",
            "well_id": wells["well_id"],
            "value": [100, 90, 60, 30, 10],
            "timepoint_hours": 72,
        }
    )
    controls = pd.DataFrame(
        {"assay": "cell count", "cell_line": "c", "plate": "p1", "well_id": ["k1", "k2", "k3"],
         "value": [100, 101, 99], "well_num": [10, 11, 12], "timepoint_hours": 72}
    )  # fmt: skip
    files = [folder / f"{name}_{s}" for s in ("wells_treated.csv", "assays_treated.csv", "controls.csv")]
    for table, path in zip((wells, assays, controls), files, strict=True):
        table.to_csv(path, index=False)
    return files


def test_thunor_export_named_by_all_three_files_is_read_once(tmp_path):
    files = _thunor_export(tmp_path)
    one = read_any(files[0], format="thunor-hts")
    three = read_any(files, format="thunor-hts")
    assert len(three) == len(one) == 8
    assert read_any(files[1], format="thunor-hts").equals(one)


def test_a_csv_not_named_as_a_thunor_file_gets_one_message(tmp_path):
    other = tmp_path / "plain.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(InputFileError, match="not a file of a Thunor export") as err:
        read_any(other, format="thunor-hts")
    assert "csvassays" not in str(err.value)
    result = runner.invoke(
        cli.app, ["run", str(other), "--format", "thunor-hts", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_every_file_read_is_checksummed_in_the_provenance(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    files = _thunor_export(folder)
    out = tmp_path / "out"
    result = runner.invoke(cli.app, ["run", str(files[0]), "--format", "thunor-hts", "--out", str(out)])
    assert result.exit_code == 0, result.output
    inputs = io.read_metadata(out / "metrics.parquet")["inputs"]
    assert [Path(i["path"]).name for i in inputs] == [f.name for f in files]
    assert all(i["checksum"] == io.file_checksum(f) for i, f in zip(inputs, files, strict=True))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"format": "grmetrics", "plate_map": "map.csv"}, "does not take"),
        ({"format": "mapping"}, "needs the option"),
        ({"format": "plate-matrix"}, "needs the option"),
    ],
)
def test_reader_options_that_do_not_fit_the_format_are_a_config_error(tmp_path, kwargs, message):
    path = tmp_path / "x.csv"
    path.write_text("a\n1\n")
    with pytest.raises(ConfigError, match=message):
        read_any(path, **kwargs)


@pytest.mark.parametrize("args", [["--plate-map", "MAP", "--format", "grmetrics"], ["--format", "mapping"]])
def test_reader_options_that_do_not_fit_the_format_exit_2(tmp_path, args):
    path = tmp_path / "x.csv"
    path.write_text("a\n1\n")
    args = [str(path) if a == "MAP" else a for a in args]
    result = runner.invoke(cli.app, ["run", str(path), *args, "--out", str(tmp_path / "o")])
    assert (result.exit_code == 2 and result.exception is None) or isinstance(result.exception, SystemExit)
    assert "TypeError" not in result.output


def test_the_terminal_says_when_the_fit_kernel_compiles(tmp_path, monkeypatch):
    files = _thunor_export(tmp_path)
    monkeypatch.setattr(cli, "kernel_ready", lambda: False)
    result = runner.invoke(
        cli.app, ["run", str(files[0]), "--format", "thunor-hts", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 0, result.output
    assert "compiling the fit kernel" in " ".join(result.output.split())


def test_kernel_ready_after_a_fit():
    import numpy as np

    from doseatlas.fit.compiled import kernel_ready
    from doseatlas.fit.engine import fit_batch

    x = np.log10(np.array([[1e-9, 1e-8, 1e-7, 1e-6, 1e-5]]))
    fit_batch(x, np.array([[1.0, 0.9, 0.5, 0.2, 0.1]]))
    assert kernel_ready() is True


def test_dask_engine_reads_a_thunor_export_once_and_checksums_its_files(tmp_path):
    pytest.importorskip("dask")
    folder = tmp_path / "in"
    folder.mkdir()
    files = _thunor_export(folder)
    outs = {}
    for engine in ("memory", "dask"):
        out = tmp_path / engine
        result = runner.invoke(cli.app, ["run", *map(str, files), "--format", "thunor-hts", "--engine", engine,
                                         "--out", str(out)])  # fmt: skip
        assert result.exit_code == 0, result.output
        outs[engine] = out
        inputs = io.read_metadata(out / "metrics.parquet")["inputs"]
        assert sorted(Path(i["path"]).name for i in inputs) == sorted(f.name for f in files)
    a, b = (pd.read_parquet(outs[e] / "responses.parquet") for e in ("memory", "dask"))
    assert len(a) == len(b) == 5  # the treated wells, each once
    summaries = [json.loads((outs[e] / "summary.json").read_text()) for e in ("memory", "dask")]
    assert [s["rows_read"] for s in summaries] == [8, 8]
