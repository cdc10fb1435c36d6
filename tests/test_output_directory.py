"""The output directory: never anyone else's files, checked before any work, replaced atomically, and
recovered after a kill (issue 10, items 1-3)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from doseatlas.cli import app
from doseatlas.errors import OutputDirectoryError
from doseatlas.io import outdir
from doseatlas.io.outdir import OUTPUT_MARKER, SCRATCH_MARKER

from wells import plate

runner = CliRunner()


@pytest.fixture
def wells_csv(tmp_path):
    rows = plate(treated={c: 100 / (1 + c) for c in (0.01, 0.1, 1, 10)}, time_zero=[20, 21])
    path = tmp_path / "wells.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _run(*args: str | Path):
    return runner.invoke(app, ["run", *map(str, args)])


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# ------------------------------------------------------------------------------------ 1. data safety
def test_out_directory_holding_user_files_is_refused_and_left_untouched(tmp_path, wells_csv):
    d = tmp_path / "d"
    d.mkdir()
    shutil.copy(wells_csv, d / "wells.csv")
    (d / "notes.txt").write_text("x")
    before = _snapshot(d)
    result = _run(d / "wells.csv", "--out", d)
    assert result.exit_code == 2
    assert "not a doseatlas output" in result.output
    assert _snapshot(d) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "wells.csv"]  # nothing beside it either


def test_previous_output_is_replaced_but_not_once_a_user_file_is_added(tmp_path, wells_csv):
    out = tmp_path / "out"
    assert _run(wells_csv, "--out", out).exit_code == 0
    listed = json.loads((out / OUTPUT_MARKER).read_text())["files"]
    assert sorted(listed) == sorted(p.name for p in out.iterdir() if p.name != OUTPUT_MARKER)
    first = (out / OUTPUT_MARKER).read_text()
    time.sleep(1.1)
    assert _run(wells_csv, "--out", out).exit_code == 0
    assert (out / OUTPUT_MARKER).read_text() != first  # replaced
    (out / "my_analysis.ipynb").write_text("{}")
    before = _snapshot(out)
    result = _run(wells_csv, "--out", out)
    assert result.exit_code == 2
    assert "my_analysis.ipynb" in result.output
    assert _snapshot(out) == before


def test_empty_directory_is_used(tmp_path, wells_csv):
    out = tmp_path / "out"
    out.mkdir()
    assert _run(wells_csv, "--out", out).exit_code == 0
    assert (out / OUTPUT_MARKER).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "wells.csv"]


def test_a_forged_or_broken_marker_does_not_make_a_directory_replaceable(tmp_path, wells_csv):
    out = tmp_path / "out"
    out.mkdir()
    (out / "data.csv").write_text("precious")
    (out / OUTPUT_MARKER).write_text("not json")
    assert _run(wells_csv, "--out", out).exit_code == 2
    (out / OUTPUT_MARKER).write_text(json.dumps({"files": ["summary.json"]}))
    assert _run(wells_csv, "--out", out).exit_code == 2
    assert (out / "data.csv").read_text() == "precious"


def test_no_run_replaces_the_directory_of_its_own_input(tmp_path, wells_csv):
    out = tmp_path / "out"
    assert _run(wells_csv, "--out", out).exit_code == 0
    result = _run(out / "responses.parquet", "--out", out)
    assert result.exit_code == 2
    assert "holds the input" in result.output


# ----------------------------------------------------------------------- 3. location problems up front
@pytest.mark.parametrize("case", ["dot", "parent_of_cwd", "missing_parent", "file", "symlink"])
def test_unusable_locations_exit_2_before_any_work(tmp_path, wells_csv, monkeypatch, case):
    work = tmp_path / "work"
    work.mkdir()
    (work / "keep.txt").write_text("mine")
    monkeypatch.chdir(work)
    out = {
        "dot": Path("."),
        "parent_of_cwd": Path(".."),
        "missing_parent": tmp_path / "no" / "such",
        "file": work / "keep.txt",
        "symlink": work / "link",
    }[case]
    if case == "symlink":
        (tmp_path / "target").mkdir()
        out.symlink_to(tmp_path / "target")
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    result = _run(wells_csv, "--out", out)
    assert result.exit_code == 2, result.output
    assert "error: --out" in result.output
    assert "rows read" not in result.output  # no work was done
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before
    assert (work / "keep.txt").read_text() == "mine"


def _chattr(flag: str, path: Path) -> bool:
    if shutil.which("chattr") is None:
        return False
    return subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode == 0


@pytest.mark.parametrize("what", ["parent", "output"])
def test_immutable_locations_exit_2_before_any_work(tmp_path, wells_csv, what):
    parent = tmp_path / "parent"
    parent.mkdir()
    out = parent / "out"
    if what == "output":
        assert _run(wells_csv, "--out", out).exit_code == 0
    locked = parent if what == "parent" else out
    if not _chattr("+i", locked):
        pytest.skip("chattr +i is not permitted here")
    try:
        before = sorted(p.name for p in parent.iterdir())
        result = _run(wells_csv, "--out", out)
        assert result.exit_code == 2, result.output
        assert "rows read" not in result.output
        assert sorted(p.name for p in parent.iterdir()) == before
    finally:
        _chattr("-i", locked)


def test_check_names_the_location_and_creates_nothing(tmp_path):
    with pytest.raises(OutputDirectoryError, match="does not exist"):
        outdir.check_output_location(tmp_path / "a" / "b")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------- 2. atomicity and recovery
def _prepared_output(tmp_path: Path, content: str) -> Path:
    out = tmp_path / "out"
    target, _ = outdir.prepare_output(out)
    (target.scratch / "summary.json").write_text(content)
    outdir.commit_output(target)
    return out


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two_renames"])
def test_replacement_leaves_the_new_output_and_nothing_beside_it(tmp_path, monkeypatch, exchange):
    out = _prepared_output(tmp_path, "old")
    if not exchange:
        monkeypatch.setattr(outdir, "_exchange", lambda a, b: False)
    _prepared_output(tmp_path, "new")
    assert (out / "summary.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_the_exchange_is_used_on_this_file_system(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("a")
    if not outdir._exchange(a, b):
        pytest.skip("renameat2(RENAME_EXCHANGE) not supported here: the two-rename fallback is used")
    assert (b / "x").read_text() == "a"


KILLED_BETWEEN_RENAMES = """
import os, sys
from pathlib import Path
from doseatlas.io import outdir
outdir._exchange = lambda a, b: False
real_rename = Path.rename
def rename(self, target):
    result = real_rename(self, target)
    if ".old-" in str(target):
        os._exit(9)  # killed between the two renames
    return result
Path.rename = rename
target, _ = outdir.prepare_output(sys.argv[1])
(target.scratch / "summary.json").write_text("new")
outdir.commit_output(target)
"""


def test_kill_between_the_two_renames_is_recovered_on_the_next_start(tmp_path):
    out = _prepared_output(tmp_path, "old")
    script = tmp_path / "killed.py"
    script.write_text(textwrap.dedent(KILLED_BETWEEN_RENAMES))
    code = subprocess.run([sys.executable, str(script), str(out)]).returncode
    assert code == 9
    assert not out.exists()  # the window the fallback leaves open ...
    notes = outdir.recover(out)
    assert (out / "summary.json").read_text() == "old"  # ... is closed on the next start
    assert any("restored" in n for n in notes)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["killed.py", "out"]


def test_stale_partials_of_dead_processes_are_removed_but_foreign_ones_kept(tmp_path, wells_csv):
    dead = _dead_pid()
    ours = tmp_path / f".out.partial-{dead}"
    ours.mkdir()
    (ours / SCRATCH_MARKER).write_text("")
    (ours / "responses.parquet").write_bytes(b"PAR1")
    foreign = tmp_path / f".out.partial-{dead + 1}"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("mine")
    live = tmp_path / f".out.partial-{os.getppid()}"
    live.mkdir()
    (live / SCRATCH_MARKER).write_text("")
    result = _run(wells_csv, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert not ours.exists()
    assert (foreign / "thesis.tex").read_text() == "mine"
    assert live.exists()


def test_failed_run_leaves_the_old_output_and_no_scratch(tmp_path, wells_csv):
    out = tmp_path / "out"
    assert _run(wells_csv, "--out", out).exit_code == 0
    before = _snapshot(out)
    broken = tmp_path / "broken.csv"
    broken.write_text("dataset,plate\nx,1\n")
    assert _run(broken, "--out", out).exit_code == 2
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.csv", "out", "wells.csv"]


def _complete(out: Path) -> bool:
    listed = json.loads((out / OUTPUT_MARKER).read_text())["files"]
    return all((out / name).is_file() for name in listed) and len(listed) >= 7


@pytest.mark.slow
def test_sigkill_at_any_moment_leaves_old_or_new_complete_and_is_cleaned(tmp_path, wells_csv):
    out = tmp_path / "out"
    assert _run(wells_csv, "--out", out).exit_code == 0
    command = [sys.executable, "-m", "doseatlas.cli", "run", str(wells_csv), "--out", str(out)]
    for delay in (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0):
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait()
        outdir.recover(out)
        assert _complete(out), delay
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "wells.csv"], delay


# ------------------------------------------------------------------------------- simulate: no overwrite
def test_simulate_never_overwrites_an_existing_file(tmp_path):
    wells, truth = tmp_path / "w.parquet", tmp_path / "t.parquet"
    wells.write_text("my data")
    args = ["simulate", "--out", str(wells), "--truth", str(truth), "--no-example", "--n-drugs", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "does not overwrite" in result.output
    assert wells.read_text() == "my data"
    assert not truth.exists()
    wells.unlink()
    assert runner.invoke(app, args).exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.parquet", "w.parquet"]
    assert runner.invoke(app, [*args[:-4], "--out", str(tmp_path / "x.csv")]).exit_code == 2  # truth exists
