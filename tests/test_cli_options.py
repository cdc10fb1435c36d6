"""Option files and option combinations of ``doseatlas run``: one message and exit 2, never a traceback."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from doseatlas import schemas as S
from doseatlas.cli import app

from wells import plate

runner = CliRunner()
HEADER = f"{S.CELL_LINE},{S.DOUBLING_TIME_H}\n"


@pytest.fixture(scope="module")
def wells_csv(tmp_path_factory):
    rows = plate(
        treated={c: 100 / (1 + c) for c in (0.01, 0.1, 1, 10)}
    )  # no time zero: GR from doubling times
    path = tmp_path_factory.mktemp("wells") / "wells.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _run(*args: str):
    return runner.invoke(app, ["run", *map(str, args)])


def _message(result) -> str:
    return " ".join(result.output.split())


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot be read"),
        (b"", "is empty"),
        (b"\x00\xff\xfe\x89PNG\r\n", "not a UTF-8"),
        (b"cell_line,hours\nA,3\n", "column 'doubling_time_h'"),
        (HEADER.encode(), "no rows"),
        ((HEADER + "A,abc\n").encode(), "line 2, column 'doubling_time_h'"),
        ((HEADER + "A,20\nB,inf\n").encode(), "line 3, column 'doubling_time_h'"),
        ((HEADER + "A,nan\n").encode(), "line 2, column 'doubling_time_h'"),
        ((HEADER + "A,0\n").encode(), "line 2, column 'doubling_time_h'"),
        ((HEADER + "A,-3\n").encode(), "line 2, column 'doubling_time_h'"),
        ((HEADER + ",20\n").encode(), "line 2, column 'cell_line'"),
        ((HEADER + "A,20\n\nA,30\n").encode(), "line 4, column 'doubling_time_h'"),
    ],
)
def test_an_unusable_doubling_time_file_is_one_message_naming_file_line_and_column(
    tmp_path, wells_csv, content, expected
):
    path = tmp_path / "td.csv"
    if content is not None:
        path.write_bytes(content)
    result = _run(wells_csv, "--doubling-times", path, "--out", tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert "td.csv" in _message(result) and expected in _message(result)
    assert not (tmp_path / "out").exists()


def test_a_doubling_time_file_in_tsv_with_a_repeated_identical_value_is_used(tmp_path, wells_csv):
    path = tmp_path / "td.tsv"
    path.write_text(
        "\ufeffcell_line\tdoubling_time_h\textra\nA\t30\tx\nA\t30.0\ty\n\nB\t1e1\n", encoding="utf-8"
    )
    out = tmp_path / "out"
    result = _run(wells_csv, "--doubling-times", path, "--out", out)
    assert result.exit_code == 0, result.output
    responses = pd.read_parquet(out / "responses.parquet")
    assert (responses[S.DOUBLING_TIME_H] == 30.0).all() and responses[S.GR].notna().sum() >= 3


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--format", "plate-matrix"], "--format plate-matrix needs --plate-map"),
        (["--format", "incucyte"], "--format incucyte needs --plate-map"),
        (["--format", "mapping"], "--format mapping needs --mapping"),
        (["--plate-map", "{wells}"], "--plate-map applies to --format plate-matrix or incucyte"),
        (["--format", "gdsc-raw", "--plate-map", "{wells}"], "not to --format gdsc-raw"),
        (
            ["--format", "gdsc-raw", "--mapping", "{wells}"],
            "--mapping applies to --format canonical or mapping",
        ),
        (
            ["--format", "mapping", "--mapping", "{wells}", "--plate-map", "{wells}"],
            "not to --format mapping",
        ),
        (["--format", "nope"], "unknown --format 'nope'"),
    ],
)
@pytest.mark.parametrize("engine", ["memory", "dask"])
def test_reader_options_that_do_not_fit_the_format_are_one_message(
    tmp_path, wells_csv, args, expected, engine
):
    args = [a.format(wells=wells_csv) for a in args]
    result = _run(wells_csv, *args, "--engine", engine, "--out", tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert expected in _message(result)


TEXT = st.text(alphabet=st.sampled_from(list("AB,;\t\n\r\"' .-+e0123456789nafi")), max_size=60)
ROWS = st.lists(
    st.tuples(
        st.sampled_from(["A", "B", "", " A "]), st.sampled_from(["30", "1e1", "0", "-2", "x", "", "inf"])
    ),
    max_size=4,
).map(lambda rows: HEADER + "".join(f"{a},{b}\n" for a, b in rows))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    content=st.one_of(
        st.binary(max_size=80),
        TEXT.map(str.encode),
        (st.just(HEADER) | st.just("")).flatmap(lambda head: TEXT.map(lambda t: (head + t).encode())),
        ROWS.map(str.encode),
    )
)
def test_any_doubling_time_file_exits_0_or_2_never_1(tmp_path_factory, wells_csv, content):
    folder = tmp_path_factory.mktemp("td")
    (folder / "td.csv").write_bytes(content)
    result = _run(wells_csv, "--doubling-times", folder / "td.csv", "--out", folder / "out")
    assert result.exit_code in (0, 2), (content, result.output, result.exception)
    if result.exit_code == 2:
        assert "td.csv" in _message(result)


@pytest.mark.parametrize("quiet", [False, True])
def test_quiet_silences_the_live_progress_display(tmp_path, wells_csv, monkeypatch, quiet):
    """The run's live display (rich) is built enabled, and disabled with --quiet; the run is the same."""
    from doseatlas import cli

    made = []
    original = cli._progress

    def spy(**kwargs):
        made.append(original(**kwargs))
        return made[-1]

    monkeypatch.setattr(cli, "_progress", spy)
    out = tmp_path / "out"
    result = _run(wells_csv, "--out", out, *(["--quiet"] if quiet else []))
    assert result.exit_code == 0, result.output
    assert [bar.disable for bar in made] == [quiet]
    assert len(pd.read_parquet(out / "metrics.parquet"))
