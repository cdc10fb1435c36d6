"""The public Python API: its names, its options (the command line's, one definition), its docs and tutorial."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import doseatlas as da
from doseatlas import schemas as S
from doseatlas.cli import app

from conftest import script_module
from wells import plate

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()

#: the promised interface: removing or renaming one of these breaks users' notebooks
PUBLIC = {
    "__version__",
    "read",
    "run",
    "Result",
    "export",
    "simulate",
    "metric_registry",
    "plot_curve",
    "example_path",
    "RunSettings",
    "DoseatlasError",
    "ConfigError",
    "InputFileError",
    "OutputDirectoryError",
    "SimulationError",
    "FitError",
}


def test_every_public_name_is_there_and_resolves():
    assert set(da.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(da, name) is not None, name
    assert callable(da.simulate) and da.simulate.SimulationConfig  # the callable simulator package


def test_import_doseatlas_is_lazy():
    code = "import sys, doseatlas; print(sorted(m for m in ('pandas', 'numba', 'doseatlas._api') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.fixture(scope="module")
def wells_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("api") / "wells.csv"
    rows = plate(treated={c: 100 / (1 + c) for c in (0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30)}, time_zero=[20, 21])
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_run_options_and_defaults_are_the_command_lines():
    from doseatlas.pipeline import RunOptions

    assert da.RunSettings().run_options() == RunOptions()  # defaults of the API = the steps' own
    command = typer_command("run")
    cli = {p.name: p.default for p in command.params if p.param_type_name == "option" and p.name != "out"}
    api = {f.name: f.default for f in fields(da.RunSettings)}
    assert set(cli) == set(api)
    for name, default in api.items():
        assert cli[name] == default or (default is None and cli[name] in (None, [], ())), name
    import inspect

    keywords = inspect.signature(da.run).parameters
    assert set(api) <= set(keywords) and all(keywords[n].kind is inspect.Parameter.KEYWORD_ONLY for n in api)


def typer_command(name: str):
    import typer

    group = typer.main.get_command(app)
    return group.commands[name]


def test_an_unknown_or_invalid_option_is_one_config_error(wells_csv):
    with pytest.raises(da.ConfigError, match="unknown option 'min_r3'; did you mean min_r2"):
        da.run(wells_csv, min_r3=0.1)
    with pytest.raises(da.ConfigError, match=re.escape("format='plate-matrix' needs plate_map=FILE")):
        da.run(wells_csv, format="plate-matrix")
    with pytest.raises(da.ConfigError, match="alpha"):
        da.run(wells_csv, alpha=3)
    with pytest.raises(da.ConfigError, match="engine"):
        da.run(wells_csv, engine="spark")


def test_api_run_equals_the_command_line_run(tmp_path, wells_csv):
    result = da.run([wells_csv], model={"relative_viability": "ll3"})
    assert runner.invoke(app, ["run", str(wells_csv), "-o", str(tmp_path / "cli"), "--model",
                               "relative_viability=ll3"]).exit_code == 0  # fmt: skip
    for name in ("responses", "curves", "metrics", "ledger", "plates"):
        pd.testing.assert_frame_equal(
            getattr(result, name), pd.read_parquet(tmp_path / "cli" / f"{name}.parquet")
        )
    assert result.provenance["parameters"]["fit"]["models"] == {"relative_viability": "ll3"}
    assert result.provenance["inputs"][0]["checksum"].startswith("sha256:")
    result.write(tmp_path / "api")
    assert (tmp_path / "api" / "report.html").is_file() and (tmp_path / "api" / "summary.json").is_file()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(da.OutputDirectoryError, match="not a doseatlas output"):
        result.write(mine)
    assert (mine / "notes.txt").read_text() == "mine"
    figure = da.plot_curve(result, result.curves["curve_id"].iloc[0])
    assert figure.axes


def test_a_dataframe_without_a_required_column_is_one_input_error():
    frame = pd.DataFrame(plate()).drop(columns=[S.SIGNAL])
    with pytest.raises(da.InputFileError, match=r"DataFrame 1.*signal"):
        da.run(frame)


def test_version_and_help_texts():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"doseatlas {da.__version__}"
    for args in ([], ["run"], ["simulate"], ["export"]):
        shown = runner.invoke(app, [*args, "--help"], terminal_width=200).output
        assert "``" not in shown and ":class:" not in shown, args
        if args:
            assert "Writes" in shown, args


def _api_docs():
    return script_module("make_api_docs")


def test_docs_api_md_is_generated_from_the_docstrings():
    docs = _api_docs()
    assert docs.API_MD.read_text(encoding="utf-8") == docs.render(), "run python scripts/make_api_docs.py"
    for name in PUBLIC - {"__version__"}:
        assert f"`{name}" in docs.render() or f"class {name}" in docs.render(), name


def test_the_tutorial_runs(tmp_path, monkeypatch):
    text = (ROOT / "docs" / "tutorial.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 5
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/tutorial.md", "exec"), namespace)
    assert (tmp_path / "results" / "metrics.parquet").is_file() and (tmp_path / "curve.png").is_file()


def test_dataframes_run_on_both_engines_with_the_same_tables():
    pytest.importorskip("dask")
    wells = da.simulate(seed=1, n_cell_lines=2, n_drugs=2).wells
    memory, dask = da.run(wells), da.run(wells, engine="dask", partitions=3)
    for name in ("responses", "curves", "metrics", "ledger", "plates"):
        pd.testing.assert_frame_equal(getattr(memory, name), getattr(dask, name))
    assert (
        len(memory.metrics)
        and wells.columns.tolist() == da.simulate(seed=1, n_cell_lines=2, n_drugs=2).wells.columns.tolist()
    )
