"""The report, the figures and the terminal summary: never lose a run, show every user text as plain text,
stay bounded whatever the number of data sets or the size of a value."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from doseatlas import plotting, report
from doseatlas import schemas as S
from doseatlas.cli import app

from wells import plate, row

CHECKER = next(
    (p for p in (Path(__file__).resolve().parents[i] / "shared" / "checks" / "check_output.py" for i in (1, 2))
     if p.is_file()),
    None,
)  # fmt: skip
runner = CliRunner()
CURVE = {c: 100 / (1 + c) for c in (0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30)}


def _run(tmp_path: Path, rows: list[dict[str, str]] | pd.DataFrame, *, name: str = "wells"):
    path = tmp_path / f"{name}.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    out = tmp_path / f"out_{name}"
    result = runner.invoke(app, ["run", str(path), "--out", str(out)])
    return result, out


def _said(output: str) -> str:
    """Terminal output with rich's line wrapping undone (any run of white space as one space)."""
    return " ".join(output.split())


def _check_output(out: Path) -> None:
    if CHECKER is None:
        return
    check = subprocess.run([sys.executable, str(CHECKER), str(out)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def _knockouts() -> list[dict[str, str]]:
    rows = plate(treated={}, time_zero=[20, 21])
    for i, gene in enumerate(["KRAS", "TP53", "MYC"]):
        rows.append(
            row(well=f"K{i}", perturbation_type="knockout", perturbagen=gene, concentration="", signal=40)
        )
    return rows


DEGENERATE = {
    "no_vehicle": lambda: plate(vehicle=[], treated=CURVE, time_zero=[20, 21]),
    "no_time_zero": lambda: plate(treated=CURVE),
    "knockouts_only": _knockouts,
    "all_rows_rejected": lambda: [{**r, S.ROLE: "bogus"} for r in plate(treated=CURVE)],
    "one_well": lambda: [row(well="A1")],
    "one_vehicle_well": lambda: plate(treated={}, blank=[], vehicle=[100.0]),
}


@pytest.mark.parametrize("case", sorted(DEGENERATE))
def test_report_of_every_degenerate_data_set(tmp_path, case):
    result, out = _run(tmp_path, DEGENERATE[case](), name=case)
    assert result.exit_code == 0, (result.output, result.exception)
    page = (out / "report.html").read_text()
    assert "could not be drawn" not in page  # the real bugs are fixed, not only caught
    summary = json.loads((out / "summary.json").read_text())
    assert not any("report" in w for w in summary["warnings"]), summary["warnings"]
    _check_output(out)


def test_a_failing_figure_never_loses_the_run(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("simulated drawing failure")

    monkeypatch.setattr(plotting, "curve_grid", broken)
    result, out = _run(tmp_path, plate(treated=CURVE, time_zero=[20, 21]))
    assert result.exit_code == 0, (result.output, result.exception)
    page = (out / "report.html").read_text()
    assert "could not be drawn" in page and "simulated drawing failure" in page
    summary = json.loads((out / "summary.json").read_text())
    assert any("simulated drawing failure" in w for w in summary["warnings"])
    assert "simulated drawing failure" in _said(result.output)  # also said on the terminal
    for name in ("responses", "curves", "metrics", "ledger", "plates"):
        assert (out / f"{name}.parquet").is_file()


def test_names_with_dollar_signs_are_drawn_as_plain_text(tmp_path):
    drug, line = r"$\frac{1}{$statinib", "$x$ ^_ \\alpha"
    result, out = _run(tmp_path, plate(treated=CURVE, time_zero=[20, 21], perturbagen=drug, cell_line=line))
    assert result.exit_code == 0, (result.output, result.exception)
    assert "could not be drawn" not in (out / "report.html").read_text()
    metrics = pd.read_parquet(out / "metrics.parquet")
    picks = report.pick_curves(metrics)
    responses = pd.read_parquet(out / "responses.parquet")
    fig = plotting.curve_grid(picks, responses, pd.read_parquet(out / "curves.parquet"), metrics)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles and all(drug in t and line in t for t in titles)
    assert plotting.png_bytes(fig).startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("lab[/bold]", "lab[/bold]"),
        ("[bold red blink]lab_a", "[bold red blink]lab_a"),
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        (":thumbs_up: lab", ":thumbs_up: lab"),
        ("two\nlines", "two\\nlines"),
    ],
)
def test_terminal_summary_shows_names_as_written(tmp_path, name, shown):
    result, _ = _run(tmp_path, plate(treated=CURVE, dataset=name))
    assert result.exit_code == 0, (result.output, result.exception)
    assert shown in _said(result.output)
    assert "\x1b" not in result.output


def test_every_user_text_in_the_report_is_html_escaped(tmp_path):
    evil = "<script>alert(1)</script>"
    rows = plate(
        treated=CURVE, time_zero=[20, 21], dataset=evil, cell_line=f"<u>{evil}", perturbagen="<i>&amp;"
    )
    rows.append(row(well="Z1", signal="oops", dataset=evil, role=evil))
    result, out = _run(tmp_path, rows, name="<evil>")
    assert result.exit_code == 0, (result.output, result.exception)
    page = (out / "report.html").read_text()
    assert "<script>" not in page and "<u>" not in page and "<i>" not in page and "<evil>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_run_whose_every_row_is_rejected_says_so(tmp_path):
    result, out = _run(tmp_path, DEGENERATE["all_rows_rejected"]())
    assert result.exit_code == 0, (result.output, result.exception)
    assert "warning: every input row (13) was rejected" in _said(result.output)
    summary = json.loads((out / "summary.json").read_text())
    assert any("every input row" in w for w in summary["warnings"])
    page = (out / "report.html").read_text()
    top = page[: page.index("<h2")]
    assert "every input row" in top


def test_a_clean_run_has_no_warnings(tmp_path):
    result, out = _run(tmp_path, plate(treated=CURVE, time_zero=[20, 21]))
    assert result.exit_code == 0
    assert json.loads((out / "summary.json").read_text())["warnings"] == []
    assert "warning" not in result.output.lower()


def test_report_of_many_data_sets_is_bounded(tmp_path):
    rows = [r for i in range(9) for r in plate(treated=CURVE, time_zero=[20, 21], dataset=f"lab{i:02d}")]
    result, out = _run(tmp_path, rows)
    assert result.exit_code == 0, (result.output, result.exception)
    page = (out / "report.html").read_text()
    assert (
        page.count("<img") <= 6 + report.MAX_SCATTER_PAIRS
    )  # MAX_FIGURES curve figures + bounded consistency plots
    assert "6 of 9 data sets" in page  # says what is not shown (36 pairs of data sets: more than drawn)
    assert len(page) < 2_500_000
    assert page.count("<tr>") < 1500


def test_a_huge_cell_does_not_make_a_huge_report(tmp_path):
    junk = "x" * 2_000_000
    rows = plate(treated=CURVE, time_zero=[20, 21])
    rows.append(row(well="Z1", role=junk))  # rejected: the ledger quotes it
    rows += plate(treated=CURVE, dataset="y" * 200_000, plate_id="p9")  # accepted: a name in every table
    result, out = _run(tmp_path, rows)
    assert result.exit_code == 0, (result.output, result.exception)
    page = (out / "report.html").read_text()
    assert len(page) < 1_500_000
    assert "x" * 1000 not in page and "y" * 1000 not in page
    assert "characters)" in page  # the cut says how long the value was
    assert len(result.output) < 5000


FRAGMENTS = [
    "$",
    r"\frac{1}{",
    "[/bold]",
    "[bold red blink]",
    "\x1b[31m",
    "<script>",
    "&amp;",
    ":smile:",
    "\u202e",
    "\t",
    "a" * 3000,
    "\\",
    "%s{0}",
    "^_",
]
HOSTILE = st.lists(
    st.one_of(
        st.sampled_from(FRAGMENTS),
        st.text(
            alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters='\x00,\r\n"'),
            min_size=1,
            max_size=10,
        ),
    ),
    min_size=1,
    max_size=5,
).map("".join)


@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dataset=HOSTILE, line=HOSTILE, drug=HOSTILE)
@example(dataset="lab[/bold]", line="\x1b[31mA", drug=r"$\frac{1}{$statinib")
def test_hostile_names_through_the_whole_run(tmp_path, dataset, line, drug):
    rows = plate(treated=CURVE, time_zero=[20, 21], dataset=dataset, cell_line=line, perturbagen=drug)
    result, out = _run(tmp_path, rows)
    assert result.exit_code in (0, 2), (result.output, result.exception)
    assert "\x1b" not in result.output
    if result.exit_code == 0:
        page = (out / "report.html").read_text()
        assert "could not be drawn" not in page
        assert "<script>" not in page


def test_consistency_scatter_clips_data_set_names():
    paired = pd.DataFrame({S.METRIC: ["auc"] * 3, "value_a": [0.2, 0.5, 0.7], "value_b": [0.3, 0.5, 0.6]})
    fig = plotting.consistency_scatter(
        paired, dataset_a="a" * 100_000, dataset_b="b" * 100_000, metrics=["auc"]
    )
    ax = fig.axes[0]
    assert len(ax.get_xlabel()) < 200 and len(ax.get_ylabel()) < 200
