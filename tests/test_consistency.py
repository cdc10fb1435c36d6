"""auc_common and the consistency table (doseatlas.harmonize.consistency)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from doseatlas import schemas as S
from doseatlas.fit.models import predict
from doseatlas.harmonize.consistency import area_gradient, consistency_table
from doseatlas.metrics.compute import sigmoid_area
from doseatlas.pipeline import run_pipeline

St = S.MetricStatus


def _run(rows: list[dict]):
    table = pd.DataFrame(rows)
    table[S.SOURCE_FILE] = "responses.csv"
    table[S.SOURCE_LINE] = range(2, len(table) + 2)
    return run_pipeline(table)


def _response_rows(
    dataset: str, line: str, drug: str, doses_um, *, ic50_um=1.0, hill=1.0, bottom=0.1, seed=0
):
    """Relative viability of one known curve at ``doses_um`` (3 replicates, 2% deterministic noise)."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in doses_um:
        true = bottom + (1 - bottom) / (1 + (c / ic50_um) ** hill)
        for rep in range(3):
            rows.append(
                {
                    S.DATASET: dataset,
                    S.CELL_LINE: line,
                    S.PERTURBATION_TYPE: "drug",
                    S.PERTURBAGEN: drug,
                    S.CONCENTRATION: str(c),
                    S.CONCENTRATION_UNIT: "uM",
                    S.TIME_H: "72",
                    S.READOUT: "atp",
                    S.RESPONSE: str(true + rng.normal(0, 0.02)),
                    S.RESPONSE_SCALE: S.RELATIVE_VIABILITY,
                    S.REPLICATE: str(rep + 1),
                }
            )
    return rows


LOW = np.geomspace(1e-3, 3.0, 9)  # source a: 1 nM to 3 µM
HIGH = np.geomspace(0.1, 100.0, 8)  # source b: 0.1 µM to 100 µM


@pytest.fixture(scope="module")
def two_sources():
    rows = []
    for i, (line, drug) in enumerate([("L1", "d1"), ("L2", "d1"), ("L3", "d2")]):
        ic50 = [0.3, 1.0, 0.5][i]
        rows += _response_rows("a", line, drug, LOW, ic50_um=ic50, seed=i)
        rows += _response_rows("b", line, drug, HIGH, ic50_um=ic50, seed=10 + i)
    rows += _response_rows("a", "only_a", "d1", LOW, seed=20)  # measured by one source: no auc_common
    return _run(rows)


def _metric(result, name):
    m = result.metrics
    return m[m[S.METRIC] == name].set_index([S.DATASET, S.CELL_LINE])


def test_same_true_curve_over_different_ranges_agrees_on_the_common_window(two_sources):
    auc, common = _metric(two_sources, "auc"), _metric(two_sources, "auc_common")
    for line in ("L1", "L2", "L3"):
        assert abs(auc.loc[("a", line), S.VALUE] - auc.loc[("b", line), S.VALUE]) > 0.1  # ranges differ
        a, b = common.loc[("a", line)], common.loc[("b", line)]
        assert a[S.STATUS] == b[S.STATUS] == St.ESTIMATED
        assert abs(a[S.VALUE] - b[S.VALUE]) < 0.03
        # the window is the intersection of the two tested ranges, on both rows
        assert a[S.WINDOW_LOW] == pytest.approx(0.1e-6) and a[S.WINDOW_HIGH] == pytest.approx(3e-6)
        assert b[S.WINDOW_LOW] == a[S.WINDOW_LOW] and b[S.WINDOW_HIGH] == a[S.WINDOW_HIGH]
        assert a[S.LOWER] < a[S.VALUE] < a[S.UPPER]
    assert ("a", "only_a") not in common.index  # one source only: no auc_common row
    assert common[S.READOUT].eq("atp").all() and common[S.DURATION_H].eq(72).all()
    assert common[S.FIT_POLICY].eq("refuse").all()
    assert two_sources.metrics[S.WINDOW_LOW].notna().sum() == len(common)


def test_auc_common_truth_inside_its_interval(two_sources):
    common = _metric(two_sources, "auc_common")
    x0, x1 = np.log10(0.1e-6), np.log10(3e-6)
    for line, ic50 in (("L1", 0.3), ("L2", 1.0), ("L3", 0.5)):
        true = sigmoid_area(x0, x1, 1.0, 0.1, np.log10(ic50 * 1e-6), 1.0)
        for ds in ("a", "b"):
            row = common.loc[(ds, line)]
            assert row[S.LOWER] - 0.01 <= true <= row[S.UPPER] + 0.01


def test_auc_common_equals_the_mean_of_the_fitted_curve_on_the_window(two_sources):
    common = two_sources.metrics[two_sources.metrics[S.METRIC] == "auc_common"]
    curves = two_sources.curves.set_index(S.CURVE_ID).loc[common[S.CURVE_ID]]
    params = curves[["top", "bottom", "log10_ec50", "hill"]].to_numpy(float)
    grid = np.linspace(np.log10(common[S.WINDOW_LOW]), np.log10(common[S.WINDOW_HIGH]), 4001).T
    mean = np.trapezoid(predict(params, grid), grid, axis=1) / (grid[:, -1] - grid[:, 0])
    np.testing.assert_allclose(common[S.VALUE].to_numpy(float), mean, atol=1e-6)


def test_area_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    n = 50
    p = np.column_stack([rng.uniform(0.8, 1.1, n), rng.uniform(-0.2, 0.5, n), rng.uniform(-8, -5, n),
                         rng.uniform(0.3, 4, n)])  # fmt: skip
    x0, x1 = np.full(n, -8.5), np.full(n, -5.5)
    grad = area_gradient(x0, x1, *p.T)
    for j in range(4):
        h = np.zeros(4)
        h[j] = 1e-6
        numeric = (sigmoid_area(x0, x1, *(p + h).T) - sigmoid_area(x0, x1, *(p - h).T)) / 2e-6
        np.testing.assert_allclose(grad[:, j], numeric, rtol=1e-4, atol=1e-7)


def test_ranges_that_do_not_overlap_are_refused_and_reported():
    rows = _response_rows("a", "L1", "d1", np.geomspace(1e-3, 0.05, 8))
    rows += _response_rows("b", "L1", "d1", np.geomspace(0.1, 100, 8), seed=3)
    rows += _response_rows("c", "other", "d9", np.geomspace(0.1, 100, 8), seed=4)
    result = _run(rows)
    common = _metric(result, "auc_common")
    assert len(common) == 2
    assert common[S.STATUS].eq(St.REFUSED).all()
    assert common[S.REASON].eq(S.RefusalReason.NO_COMMON_WINDOW).all()
    assert common[S.WINDOW_LOW].isna().all()
    c = result.consistency
    assert set(zip(c[S.DATASET_A], c[S.DATASET_B], strict=True)) == {("a", "b"), ("a", "c"), ("b", "c")}
    no_overlap = c[c[S.DATASET_B].eq("c")]
    assert no_overlap[S.N_SHARED_PAIRS].eq(0).all() and no_overlap[S.N_SHARED].eq(0).all()
    assert no_overlap[S.SPEARMAN].isna().all()
    ab = c[(c[S.DATASET_A] == "a") & (c[S.DATASET_B] == "b")].set_index(S.METRIC)
    assert ab[S.N_SHARED_PAIRS].eq(1).all()
    assert "auc_common" not in ab.index  # refused in both: nothing to compare


def _hand_metrics() -> pd.DataFrame:
    """Two data sets, 4 shared pairs + 1 pair each of their own; ic50 (M) and auc (fraction)."""
    rows = []

    def add(ds, line, drug, metric, value, status=St.ESTIMATED.value):
        rows.append({S.DATASET: ds, S.CELL_LINE: line, S.PERTURBAGEN: drug, S.PERTURBATION_TYPE: "drug",
                     S.METRIC: metric, S.VALUE: value, S.STATUS: status})  # fmt: skip

    ic50_a = [1e-7, 1e-6, 1e-5, 1e-8]
    ic50_b = [2e-7, 1e-6, 1e-4, np.nan]
    for i, (va, vb) in enumerate(zip(ic50_a, ic50_b, strict=True)):
        add("A", f"L{i}", "x", "ic50", va)
        add("B", f"L{i}", "x", "ic50", vb, St.ESTIMATED.value if np.isfinite(vb) else St.RIGHT_CENSORED.value)
        add("A", f"L{i}", "x", "auc", [0.2, 0.4, 0.6, 0.8][i])
        add("B", f"L{i}", "x", "auc", [0.3, 0.4, 0.5, 0.9][i])
    add("A", "onlyA", "x", "ic50", 1e-6)
    add("B", "onlyB", "x", "ic50", 1e-6)
    add("B", "L0", "x", "ic50", 4e-7)  # a second measurement of L0 in B: median of the two
    return pd.DataFrame(rows)


def test_pair_table_on_a_hand_made_metrics_table():
    c = consistency_table(_hand_metrics()).set_index(S.METRIC)
    assert list(c.index) == ["auc", "ic50"]
    assert c[S.N_SHARED_PAIRS].eq(4).all()
    ic50, auc = c.loc["ic50"], c.loc["auc"]
    assert ic50[S.TRANSFORM] == "log10" and auc[S.TRANSFORM] == "value"
    assert ic50[S.N_SHARED] == 4 and ic50[S.N_VALUES] == 3
    # log10 A = -7, -6, -5; B = log10(median(2e-7, 4e-7)), -6, -4
    b0 = np.log10(3e-7)
    diffs = np.abs(np.array([-7, -6, -5]) - np.array([b0, -6, -4]))
    assert ic50[S.MEDIAN_ABS_DIFF] == pytest.approx(np.median(diffs))
    assert ic50[S.SPEARMAN] == pytest.approx(1.0)
    assert ic50[S.PEARSON] == pytest.approx(np.corrcoef([-7, -6, -5], [b0, -6, -4])[0, 1])
    assert ic50[S.STATUS_AGREEMENT] == pytest.approx(0.75)
    assert auc[S.N_VALUES] == 4 and auc[S.STATUS_AGREEMENT] == 1.0
    assert auc[S.MEDIAN_ABS_DIFF] == pytest.approx(0.1)
    assert auc[S.PEARSON] == pytest.approx(np.corrcoef([0.2, 0.4, 0.6, 0.8], [0.3, 0.4, 0.5, 0.9])[0, 1])
    assert (c[S.STAGE] == S.ConsistencyStage.HARMONIZED).all()


def test_published_values_give_their_own_stage():
    metrics = _hand_metrics()
    published = metrics[metrics[S.METRIC] == "ic50"].assign(**{S.VALUE: lambda t: t[S.VALUE] * 10})
    c = consistency_table(metrics, published=published)
    assert list(c[S.STAGE].unique()) == ["published", "harmonized"]
    pub = c[c[S.STAGE] == "published"].set_index(S.METRIC)
    assert list(pub.index) == ["ic50"] and pub.loc["ic50", S.SPEARMAN] == pytest.approx(1.0)


def test_report_section_draws_each_pair_and_says_when_nothing_overlaps(two_sources):
    from doseatlas.report import consistency_section

    text = consistency_section(two_sources)
    assert text.count("<figure>") == 1 and "a vs b" in text
    lone = _run(_response_rows("x$", "L1", "d1", LOW) + _response_rows("y", "L9", "d1", LOW, seed=2))
    text = consistency_section(lone)
    assert "x$ and y share no cell line x perturbagen" in text and "<figure>" not in text
    single = _run(_response_rows("a", "L1", "d1", LOW))
    assert "nothing to compare" in consistency_section(single) and single.consistency.empty


def test_run_writes_consistency_parquet_and_passes_the_output_check(tmp_path, two_sources):
    import importlib.util
    import subprocess
    import sys

    from typer.testing import CliRunner

    from doseatlas.cli import app

    rows = _response_rows("a", "L1", "d1", LOW) + _response_rows("b", "L1", "d1", HIGH, seed=5)
    path = tmp_path / "responses.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(out / "consistency.parquet")
    assert table[S.N_SHARED_PAIRS].eq(1).all()
    metrics = pd.read_parquet(out / "metrics.parquet")
    assert metrics[S.METRIC].eq("auc_common").sum() == 2
    check = Path(__file__).resolve().parents[1].parent / "shared" / "checks" / "check_output.py"
    if importlib.util.find_spec("pandas") and check.is_file():
        done = subprocess.run([sys.executable, str(check), str(out)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout


def test_a_run_compares_published_values_when_given(tmp_path):
    from doseatlas.ingest.pharmacogx import read_published

    for name, ic50 in (("a", "0.5"), ("b", "2")):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "profiles.csv").write_text(
            f"exp_id,ic50_published,auc_published\ne1,{ic50},0.4\ne2,Inf,NA\n"
        )
        (folder / "sensitivity_info.csv").write_text(
            "exp_id,sampleid,treatmentid,duration_h\ne1,L1,d1,72\ne2,L2,d1,72\n"
        )
    published = pd.concat([read_published(tmp_path / n / "profiles.csv") for n in "ab"], ignore_index=True)
    ic50 = published[published[S.METRIC] == "ic50"].set_index([S.DATASET, S.CELL_LINE])
    assert ic50.loc[("a", "L1"), S.VALUE] == pytest.approx(0.5e-6)
    assert ic50.loc[("a", "L2"), S.STATUS] == St.REFUSED  # Inf or NA: nothing published
    rows = _response_rows("a", "L1", "d1", LOW) + _response_rows("b", "L1", "d1", HIGH, seed=5)
    table = pd.DataFrame(rows).assign(**{S.SOURCE_FILE: "r.csv", S.SOURCE_LINE: range(2, len(rows) + 2)})
    c = run_pipeline(table, published=published).consistency.set_index([S.STAGE, S.METRIC])
    assert c.loc[("published", "ic50"), S.N_SHARED] == 2  # L2 is in both, refused in both
    assert c.loc[("published", "ic50"), S.N_VALUES] == 1
    assert c.loc[("published", "ic50"), S.MEDIAN_ABS_DIFF] == pytest.approx(np.log10(4))
    assert ("harmonized", "auc_common") in c.index


def test_a_source_without_relative_viability_does_not_make_a_pair_common():
    rows = _response_rows("a", "L1", "d1", LOW)
    gr_only = [{**r, S.RESPONSE_SCALE: S.GR} for r in _response_rows("b", "L1", "d1", HIGH, seed=6)]
    result = _run(rows + gr_only)
    assert not result.metrics[S.METRIC].eq("auc_common").any()
