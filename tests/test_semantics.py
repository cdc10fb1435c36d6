"""Issue 18: every number says what it means (lower/upper, units, reason codes), as a new user meets them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from doseatlas import schemas as S
from doseatlas.metrics.registry import METRICS, UNIT_MEANING
from doseatlas.pipeline import run_pipeline
from doseatlas.reasons import reason_vocabularies, render_markdown

from wells import frame, plate

DOCS = Path(__file__).resolve().parents[1] / "docs"
#: full kill at the top doses, none at the bottom: IC50 estimated; weak drug: IC50 not reached; strong one:
#: already past at the lowest dose
DOSES = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)


def _curve(ic50: float) -> dict[float, float]:
    return {c: 10.0 + 90.0 / (1.0 + c / ic50) for c in DOSES}


@pytest.fixture(scope="module")
def result():
    rows = []
    for drug, ic50 in (("mid", 1.0), ("weak", 1e4), ("strong", 1e-5)):
        rows += plate(treated=_curve(ic50), plate_id=drug, perturbagen=drug)
    # no time-zero read: percent growth and GR have no response at all
    return run_pipeline(frame(rows))


def test_interval_and_bound_columns_keep_one_meaning_each(result):
    m = result.metrics.set_index([S.PERTURBAGEN, S.METRIC])
    est, right, left = m.loc[("mid", "ic50")], m.loc[("weak", "ic50")], m.loc[("strong", "ic50")]
    assert (
        est[S.STATUS] == "estimated"
        and right[S.STATUS] == "right_censored"
        and left[S.STATUS] == "left_censored"
    )
    # estimated: the 95% interval; no bound
    assert est[S.CI_LOWER] == est[S.LOWER] and est[S.CI_UPPER] == est[S.UPPER] and np.isnan(est[S.BOUND])
    assert (
        est[S.BOUND_SIDE] is None or est[S.BOUND_SIDE] is np.nan or str(est[S.BOUND_SIDE]) in ("<NA>", "nan")
    )
    # right-censored: the bound is the highest tested dose, the true value is above it; no interval
    assert right[S.BOUND] == pytest.approx(30e-6) and right[S.BOUND_SIDE] == "lower"
    assert np.isnan(right[S.CI_LOWER]) and np.isnan(right[S.CI_UPPER])
    # left-censored: the bound is the lowest tested dose, the true value is below it
    assert left[S.BOUND] == pytest.approx(0.01e-6) and left[S.BOUND_SIDE] == "upper"
    assert np.isnan(left[S.CI_LOWER]) and np.isnan(left[S.CI_UPPER])
    # the checker's rule for lower/upper holds as before
    assert right[S.UPPER] == np.inf and left[S.LOWER] == 0.0
    refused = result.metrics[result.metrics[S.STATUS] == "refused"]
    assert refused[[S.CI_LOWER, S.CI_UPPER, S.BOUND]].isna().all().all()


def test_curve_without_responses_names_the_cause(result):
    curves = result.curves
    growth = curves[curves[S.SCALE].isin([S.PERCENT_GROWTH, S.GR])]
    assert len(growth) and (growth[S.STATUS] == "too_few_points").all()
    assert (growth[S.REASON] == S.RefusalReason.NO_TIME_ZERO.value).all(), growth[S.REASON].tolist()
    fitted = curves[curves[S.SCALE] == S.RELATIVE_VIABILITY]
    assert fitted[S.REASON].isna().all()


def test_every_unit_has_a_plain_description():
    assert {m.unit for m in METRICS} <= set(UNIT_MEANING)
    text = (DOCS / "metrics.md").read_text(encoding="utf-8")
    for unit, meaning in UNIT_MEANING.items():
        assert f"| `{unit}` | {meaning} |" in text


def test_every_reason_code_is_on_the_reasons_page():
    page = (DOCS / "reasons.md").read_text(encoding="utf-8")
    assert page == render_markdown(), "stale: run python scripts/make_docs.py"
    for codes in reason_vocabularies().values():
        for code, meaning in codes.items():
            assert f"| `{code}` | {meaning} |" in page


def test_reason_codes_of_a_run_are_documented(result):
    known = {c for codes in reason_vocabularies().values() for c in codes}
    seen = set(result.ledger[S.LEDGER_REASON].dropna())
    seen |= set(result.metrics[S.REASON].dropna()) | set(result.curves[S.REASON].dropna())
    for scale in S.RESPONSE_SCALES:
        seen |= set(result.responses[S.reason_column(scale)].dropna())
    assert seen and seen <= known, seen - known


def test_every_table_writes_the_unit_of_its_columns(result, tmp_path):
    import pyarrow.parquet as pq

    from doseatlas import io

    units = {}
    for name in ("responses", "curves", "metrics"):
        table = getattr(result, name)
        io.write_table(table, tmp_path / f"{name}.parquet", meta={})
        schema = pq.read_schema(tmp_path / f"{name}.parquet")
        units[name] = {f.name: (f.metadata or {}).get(b"unit", b"").decode() for f in schema}
        assert pq.read_table(tmp_path / f"{name}.parquet").to_pandas().shape == table.shape
    assert units["responses"][S.PERCENT_GROWTH] == "percent"
    assert units["responses"][S.CONCENTRATION] == "M"
    assert "percent_growth: percent" in units["curves"]["top"]
    assert units["curves"][S.DURATION_H] == "h"
    assert "unit column" in units["metrics"][S.VALUE] and "unit column" in units["metrics"][S.BOUND]


def test_validate_script_keeps_the_page_when_reference_data_are_absent(tmp_path, monkeypatch, capsys):
    from conftest import validate_module

    module = validate_module()
    page = tmp_path / "validation.md"
    page.write_text("the measured page\n", encoding="utf-8")
    monkeypatch.setattr(module, "EXTERNAL", tmp_path / "no_reference_data")
    assert module.main(["--out", str(page), "--skip-simulator"]) == 2
    assert page.read_text(encoding="utf-8") == "the measured page\n"
    assert "not written" in capsys.readouterr().err


def test_readme_lists_every_readout_and_the_out_default():
    from typer.main import get_command

    from doseatlas.cli import app

    readme = (DOCS.parent / "README.md").read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if line.startswith("| `readout` |"))
    assert all(f"`{r.value}`" in row for r in S.Readout)
    out = next(p for p in get_command(app).commands["run"].params if p.name == "out")
    assert f"`--out` defaults to `{out.default}`" in readme
    assert "[--out DIR]" in readme


def test_rows_without_time_h_are_handled_as_the_docs_say():
    """Well rows without a read time cannot meet their plate's controls: the ledger, as `missing_time`."""
    rows = plate(treated=_curve(1.0), time_h="")
    result = run_pipeline(frame(rows))
    assert result.summary["rows_used"] == 0 and len(result.ledger) == len(rows)
    assert set(result.ledger[S.LEDGER_REASON]) == {S.RowReason.MISSING_TIME.value}
    formats = (DOCS / "formats.md").read_text(encoding="utf-8")
    assert "rejects the row as `missing_value`" not in formats
    assert "sends every row but a time-zero read to the ledger as `missing_time`" in formats
