"""doseatlas export: the consensus rule, interval targets, matrices, the files and the command."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from doseatlas import schemas as S
from doseatlas.cli import app
from doseatlas.errors import ConfigError
from doseatlas.harmonize.export import (
    LABEL_COLUMNS,
    Z95,
    ExportOptions,
    build_labels,
    consensus,
    matrices,
    source_labels,
)
from doseatlas.io import read_metadata
from doseatlas.metrics.registry import REGISTRY

REPO = Path(__file__).resolve().parents[1]
St = S.MetricStatus
runner = CliRunner()
INF = np.inf


def label(dataset, status, value=np.nan, lower=np.nan, upper=np.nan, **kw) -> dict:
    """One metrics row (ic50 of cell line A and drug d unless told otherwise)."""
    metric = kw.pop("metric", "ic50")
    row = {
        S.DATASET: dataset,
        S.CELL_LINE: kw.pop("cell_line", "A"),
        S.PERTURBATION_TYPE: kw.pop("perturbation_type", "drug"),
        S.PERTURBAGEN: kw.pop("perturbagen", "d"),
        S.READOUT: kw.pop("readout", "atp"),
        S.DURATION_H: kw.pop("duration_h", 72.0),
        S.METRIC: metric,
        S.VALUE: value,
        S.UNIT: REGISTRY[metric].unit,
        S.STATUS: getattr(status, "value", status),
        S.LOWER: lower,
        S.UPPER: upper,
        S.REASON: kw.pop("reason", "poor_fit" if status == St.REFUSED else None),
        S.SCALE: REGISTRY[metric].scale,
        S.FIT_MODEL: "ll4",
        S.FIT_POLICY: "refuse",
        S.CURVE_ID: kw.pop("curve_id", f"c-{dataset}"),
    }
    assert not kw, kw
    return row


def est(dataset, value, factor=2.0, **kw) -> dict:
    """An estimate with the 95% interval [value / factor, value * factor]."""
    return label(dataset, St.ESTIMATED, value, value / factor, value * factor, **kw)


def right(dataset, bound, **kw) -> dict:
    return label(dataset, St.RIGHT_CENSORED, lower=bound, upper=INF, **kw)


def left(dataset, bound, **kw) -> dict:
    return label(dataset, St.LEFT_CENSORED, lower=0.0, upper=bound, **kw)


def refused(dataset, **kw) -> dict:
    return label(dataset, St.REFUSED, **kw)


def labels_of(*rows: dict, **options) -> pd.DataFrame:
    return build_labels(pd.DataFrame(list(rows)), options=ExportOptions(**options))


def consensus_row(*rows: dict) -> pd.Series:
    table = labels_of(*rows)
    found = table[table[S.DATASET] == S.CONSENSUS_DATASET]
    assert len(found) == 1
    return found.iloc[0]


def sources(*rows: dict) -> pd.DataFrame:
    table = labels_of(*rows)
    return table[table[S.DATASET] != S.CONSENSUS_DATASET]


# ------------------------------------------------------------------------------------------ the rule
def test_two_agreeing_estimates_are_pooled_by_inverse_variance_on_log10():
    row = consensus_row(est("a", 1e-6, factor=2.0), est("b", 2e-6, factor=4.0))
    se_a, se_b = np.log10(4.0) / (2 * Z95), np.log10(16.0) / (2 * Z95)
    w_a, w_b = 1 / se_a**2, 1 / se_b**2
    mean = (w_a * -6.0 + w_b * np.log10(2e-6)) / (w_a + w_b)
    half = Z95 / np.sqrt(w_a + w_b)
    assert row[S.STATUS] == St.ESTIMATED
    assert row[S.VALUE] == pytest.approx(10**mean, rel=1e-12)
    assert row[S.LOWER] == pytest.approx(10 ** (mean - half), rel=1e-12)
    assert row[S.UPPER] == pytest.approx(10 ** (mean + half), rel=1e-12)
    assert row[S.LOG10_VALUE] == pytest.approx(mean, abs=1e-12)
    assert (row[S.CONSENSUS_FLAG], row[S.N_SOURCES], row[S.N_DISAGREEING]) == (S.ConsensusFlag.AGREE, 2, 0)
    assert 1e-6 < row[S.VALUE] < 2e-6  # closer to the narrower interval's estimate
    assert row[S.UPPER] / row[S.LOWER] < 4.0  # narrower than either source


def test_two_disagreeing_estimates_are_refused_not_averaged():
    rows = (est("a", 1e-8, factor=2.0), est("b", 1e-6, factor=2.0))
    row = consensus_row(*rows)
    assert row[S.STATUS] == St.REFUSED and row[S.REASON] == S.RefusalReason.SOURCES_DISAGREE
    assert np.isnan(row[S.VALUE]) and np.isnan(row[S.LOG10_LOWER]) and np.isnan(row[S.LOG10_UPPER])
    assert (row[S.CONSENSUS_FLAG], row[S.N_SOURCES], row[S.N_DISAGREEING]) == (S.ConsensusFlag.DISAGREE, 2, 2)
    assert sources(*rows)[S.DISAGREES].tolist() == [True, True]


def test_a_row_disagrees_when_its_interval_misses_another_rows_interval():
    # a and b agree with each other and each misses c: all three are in a disagreement (no majority vote)
    rows = (est("a", 1e-6), est("b", 1.2e-6), est("c", 1e-3), right("d", 1e-7))
    row = consensus_row(*rows)
    assert row[S.STATUS] == St.REFUSED and row[S.N_DISAGREEING] == 3 and row[S.N_SOURCES] == 4
    assert sources(*rows)[S.DISAGREES].tolist() == [True, True, True, False]


def test_estimate_below_a_right_censoring_bound_disagrees():
    rows = (est("a", 1e-7, factor=2.0), right("b", 1e-5))  # a: 50 nM..200 nM; b: not reached at 10 µM
    row = consensus_row(*rows)
    assert row[S.STATUS] == St.REFUSED and row[S.REASON] == S.RefusalReason.SOURCES_DISAGREE
    assert sources(*rows)[S.DISAGREES].tolist() == [True, True]


def test_estimate_whose_interval_reaches_the_bound_is_kept_inside_it():
    row = consensus_row(est("a", 1e-6, factor=2.0), right("b", 1.5e-6))
    assert row[S.STATUS] == St.ESTIMATED and row[S.CONSENSUS_FLAG] == S.ConsensusFlag.AGREE
    assert row[S.VALUE] == pytest.approx(1.5e-6) and row[S.LOWER] == pytest.approx(1.5e-6)
    assert row[S.UPPER] == pytest.approx(2e-6)


def test_estimate_above_a_right_bound_keeps_its_value_and_interval():
    row = consensus_row(est("a", 1e-5, factor=2.0), right("b", 1e-6))
    assert row[S.STATUS] == St.ESTIMATED
    assert (row[S.VALUE], row[S.LOWER], row[S.UPPER]) == pytest.approx((1e-5, 5e-6, 2e-5))


def test_estimate_above_a_left_bound_disagrees():
    row = consensus_row(est("a", 1e-6, factor=2.0), left("b", 1e-8))
    assert row[S.STATUS] == St.REFUSED and row[S.N_DISAGREEING] == 2


def test_pooled_estimate_that_misses_a_bound_disagrees_with_that_bound():
    # each interval reaches 1.9 µM, the pooled one (about 0.6-1.6 µM) does not
    rows = (est("a", 1e-6, factor=2.0), est("b", 1e-6, factor=2.0), right("c", 1.9e-6))
    row = consensus_row(*rows)
    assert row[S.STATUS] == St.REFUSED and row[S.N_DISAGREEING] == 1
    assert sources(*rows)[S.DISAGREES].tolist() == [False, False, True]


def test_two_right_censored_give_the_larger_bound():
    row = consensus_row(right("a", 1e-6), right("b", 3e-5))
    assert row[S.STATUS] == St.RIGHT_CENSORED
    assert (row[S.LOWER], row[S.UPPER]) == (3e-5, INF)
    assert (row[S.LOG10_LOWER], row[S.LOG10_UPPER]) == pytest.approx((np.log10(3e-5), INF))
    assert row[S.CONSENSUS_FLAG] == S.ConsensusFlag.AGREE and row[S.N_SOURCES] == 2


def test_two_left_censored_give_the_smaller_bound():
    row = consensus_row(left("a", 1e-8), left("b", 1e-9))
    assert row[S.STATUS] == St.LEFT_CENSORED
    assert (row[S.LOWER], row[S.UPPER]) == (0.0, 1e-9)
    assert (row[S.LOG10_LOWER], row[S.LOG10_UPPER]) == pytest.approx((-INF, -9.0))


def test_a_right_and_a_left_bound_give_an_interval():
    row = consensus_row(right("a", 1e-7), left("b", 1e-5))  # > 100 nM and < 10 µM
    assert row[S.STATUS] == S.INTERVAL_CENSORED
    assert (row[S.LOWER], row[S.UPPER]) == (1e-7, 1e-5) and np.isnan(row[S.VALUE])
    assert (row[S.LOG10_LOWER], row[S.LOG10_UPPER]) == pytest.approx((-7.0, -5.0))


def test_a_right_bound_above_a_left_bound_disagrees():
    row = consensus_row(right("a", 1e-5), left("b", 1e-8))  # > 10 µM and < 10 nM
    assert row[S.STATUS] == St.REFUSED and row[S.N_DISAGREEING] == 2


def test_refused_sources_are_ignored():
    rows = (est("a", 1e-6, factor=1.5), refused("b"), refused("c"))
    row = consensus_row(*rows)
    expected = sources(*rows).iloc[0]
    assert row[S.CONSENSUS_FLAG] == S.ConsensusFlag.SINGLE_SOURCE and row[S.N_SOURCES] == 1
    for column in (S.STATUS, S.VALUE, S.LOWER, S.UPPER, S.CURVE_ID, S.READOUT, S.DURATION_H):
        assert row[column] == expected[column]
    assert sources(*rows)[S.DISAGREES].tolist() == [False, False, False]
    # a refused source would disagree with everything if it counted
    assert consensus_row(est("a", 1e-6), refused("b", value=1.0))[S.STATUS] == St.ESTIMATED


def test_all_refused_gives_a_refused_consensus():
    row = consensus_row(refused("a"), refused("b"))
    assert row[S.STATUS] == St.REFUSED and row[S.REASON] == S.RefusalReason.ALL_SOURCES_REFUSED
    assert (row[S.CONSENSUS_FLAG], row[S.N_SOURCES]) == (S.ConsensusFlag.NO_SOURCE, 0)


def test_estimates_without_intervals_are_averaged_on_their_own_scale_and_flagged():
    rows = [label(d, St.ESTIMATED, v, metric="auc") for d, v in (("a", 0.4), ("b", 0.6))]
    row = consensus_row(*rows)
    assert row[S.STATUS] == St.ESTIMATED and row[S.VALUE] == pytest.approx(0.5)
    assert np.isnan(row[S.LOWER]) and np.isnan(row[S.UPPER])
    assert row[S.CONSENSUS_FLAG] == S.ConsensusFlag.NO_INTERVAL
    assert np.isnan(row[S.LOG10_VALUE])  # not a concentration


def test_an_unbounded_interval_weighs_nothing():
    row = consensus_row(label("a", St.ESTIMATED, 1e-3, 0.0, INF), est("b", 1e-6, factor=2.0))
    assert row[S.STATUS] == St.ESTIMATED and row[S.CONSENSUS_FLAG] == S.ConsensusFlag.AGREE
    assert (row[S.VALUE], row[S.LOWER], row[S.UPPER]) == pytest.approx((1e-6, 5e-7, 2e-6))


def test_fractions_are_pooled_on_the_plain_scale():
    rows = [label(d, St.ESTIMATED, v, v - 0.1, v + 0.1, metric="einf") for d, v in (("a", 0.3), ("b", 0.35))]
    assert consensus_row(*rows)[S.VALUE] == pytest.approx(0.325)


def test_shared_conditions_are_kept_and_differing_ones_are_null():
    row = consensus_row(
        est("a", 1e-6, readout="atp", duration_h=72.0), est("b", 1e-6, readout="srb", duration_h=72.0)
    )
    assert row[S.DURATION_H] == 72.0 and pd.isna(row[S.READOUT]) and pd.isna(row[S.CURVE_ID])


def test_groups_are_cell_line_perturbation_type_perturbagen_metric():
    table = labels_of(
        est("a", 1e-6),
        est("b", 1e-3),  # disagrees with a
        est("b", 1e-3, cell_line="B"),
        est("a", 1e-6, perturbagen="e"),
        est("a", 1e-6, metric="ec50"),
    )
    rows = table[table[S.DATASET] == S.CONSENSUS_DATASET].set_index([S.CELL_LINE, S.PERTURBAGEN, S.METRIC])
    assert len(rows) == 4
    assert rows.loc[("A", "d", "ic50"), S.STATUS] == St.REFUSED
    assert rows.loc[("B", "d", "ic50"), S.STATUS] == St.ESTIMATED
    assert rows.loc[("A", "e", "ic50"), S.STATUS] == St.ESTIMATED
    assert rows.loc[("A", "d", "ec50"), S.STATUS] == St.ESTIMATED


# ------------------------------------------------------------------------------------------ targets
def test_log10_targets_per_status():
    table = sources(
        est("a", 1e-6, factor=10.0, perturbagen="p1"),
        right("a", 1e-5, perturbagen="p2"),
        left("a", 1e-9, perturbagen="p3"),
        refused("a", perturbagen="p4"),
        label("a", St.ESTIMATED, 0.4, 0.3, 0.5, metric="einf"),
    ).set_index(S.PERTURBAGEN)
    targets = table[[S.LOG10_VALUE, S.LOG10_LOWER, S.LOG10_UPPER]]
    assert targets.loc["p1"].tolist() == pytest.approx([-6.0, -7.0, -5.0])
    assert targets.loc["p2"].iloc[1:].tolist() == pytest.approx([-5.0, INF]) and np.isnan(
        targets.loc["p2"].iloc[0]
    )
    assert targets.loc["p3"].iloc[1:].tolist() == pytest.approx([-INF, -9.0]) and np.isnan(
        targets.loc["p3"].iloc[0]
    )
    assert targets.loc["p4"].isna().all()
    assert (
        table[table[S.METRIC] == "einf"][[S.LOG10_VALUE, S.LOG10_LOWER, S.LOG10_UPPER]].isna().all(axis=None)
    )


# ------------------------------------------------------------------------------------------ invariants
_statuses = st.sampled_from(["est", "right", "left", "refused"])


@st.composite
def groups(draw):
    rows = []
    for i in range(draw(st.integers(1, 5))):
        kind = draw(_statuses)
        x = draw(st.floats(-9, -4))
        if kind == "est":
            rows.append(est(f"s{i}", 10**x, factor=10 ** draw(st.floats(0.05, 2))))
        elif kind == "right":
            rows.append(right(f"s{i}", 10**x))
        elif kind == "left":
            rows.append(left(f"s{i}", 10**x))
        else:
            rows.append(refused(f"s{i}"))
    return rows


@settings(max_examples=60, deadline=None)
@given(groups(), st.randoms(use_true_random=False))
def test_consensus_invariants(rows, rnd):
    row = consensus_row(*rows)
    shuffled = list(rows)
    rnd.shuffle(shuffled)
    again = consensus_row(*shuffled)
    for column in (S.STATUS, S.VALUE, S.LOWER, S.UPPER, S.N_SOURCES, S.N_DISAGREEING, S.CONSENSUS_FLAG):
        assert (row[column] == again[column]) or (pd.isna(row[column]) and pd.isna(again[column])), column
    n_used = sum(r[S.STATUS] != St.REFUSED for r in rows)
    assert row[S.N_SOURCES] == n_used
    assert (row[S.STATUS] == St.REFUSED) == (n_used == 0 or row[S.N_DISAGREEING] > 0)
    if row[S.STATUS] == St.ESTIMATED:
        assert row[S.LOWER] * (1 - 1e-9) <= row[S.VALUE] <= row[S.UPPER] * (1 + 1e-9)
    if row[S.STATUS] != St.REFUSED:  # the consensus interval meets every source's interval
        for r in (r for r in rows if r[S.LOWER] > 0):
            if r[S.STATUS] != St.REFUSED:
                assert row[S.LOG10_LOWER] <= np.log10(r[S.UPPER]) + 1e-9
                assert row[S.LOG10_UPPER] >= np.log10(r[S.LOWER]) - 1e-9


def test_every_label_column_is_present_and_source_rows_come_first():
    table = labels_of(est("a", 1e-6), right("b", 1e-7))
    assert list(table.columns) == LABEL_COLUMNS
    assert table[S.DATASET].tolist() == ["a", "b", S.CONSENSUS_DATASET]
    assert table[S.CELL_LINE_SOURCE].tolist() == ["A", "A", "A"]  # before the harmonize step: the own names
    assert table[S.CELL_LINE_ID].isna().all()


def test_harmonized_names_group_by_the_canonical_name_and_keep_the_source_name():
    rows = [est("a", 1e-6), est("b", 1.1e-6, cell_line="A")]
    metrics = pd.DataFrame(rows)
    metrics[S.CELL_LINE_SOURCE] = ["A-549", "A549_LUNG"]
    metrics[S.CELL_LINE_ID] = "CVCL_0023"
    metrics[S.PERTURBAGEN_SOURCE] = "d"
    metrics[S.PERTURBAGEN_ID] = "PUBCHEM:1"
    table = build_labels(metrics, options=ExportOptions())
    row = table[table[S.DATASET] == S.CONSENSUS_DATASET].iloc[0]
    assert row[S.N_SOURCES] == 2 and row[S.CELL_LINE_ID] == "CVCL_0023" and pd.isna(row[S.CELL_LINE_SOURCE])
    assert table[S.CELL_LINE_SOURCE].iloc[:2].tolist() == ["A-549", "A549_LUNG"]


def test_options_refuse_unknown_metrics_and_types_and_a_dataset_named_consensus():
    with pytest.raises(ConfigError, match="unknown metric"):
        ExportOptions(metrics=("ic51",))
    with pytest.raises(ConfigError, match="not defined for knockout"):
        ExportOptions(metrics=("ic50",), perturbation_type="knockout")
    with pytest.raises(ConfigError, match="perturbation-type"):
        ExportOptions(perturbation_type="crispr")
    with pytest.raises(ConfigError, match="reserves"):
        labels_of(est(S.CONSENSUS_DATASET, 1e-6))


# ------------------------------------------------------------------------------------------ matrices
def test_drug_and_knockout_are_never_in_one_matrix():
    rows = [
        est("a", 1e-6),
        est("a", 2e-6, perturbagen="e"),
        label(
            "ko",
            St.ESTIMATED,
            0.2,
            0.1,
            0.3,
            metric="rv_effect",
            perturbation_type="knockout",
            perturbagen="KRAS",
        ),
        label(
            "ko",
            St.ESTIMATED,
            0.5,
            0.4,
            0.6,
            metric="rv_effect",
            perturbation_type="knockdown",
            perturbagen="KRAS",
        ),
    ]
    drugs = matrices(labels_of(*rows))
    assert set(drugs) == {f"matrix_ic50{s}" for s in ("", "_lower", "_upper", "_status")}
    assert list(drugs["matrix_ic50"].columns) == [S.CELL_LINE, "d", "e"]
    knockout = matrices(labels_of(*rows, perturbation_type="knockout"))
    assert set(knockout) == {f"matrix_rv_effect{s}" for s in ("", "_lower", "_upper", "_status")}
    assert knockout["matrix_rv_effect"]["KRAS"].tolist() == [0.2]  # the knockdown's 0.5 is not in it
    mixed = pd.concat([labels_of(*rows), labels_of(*rows, perturbation_type="knockout")])
    with pytest.raises(ConfigError, match="one perturbation type"):
        matrices(mixed)


def test_matrices_align_value_interval_and_status():
    tables = matrices(labels_of(est("a", 1e-6), right("a", 1e-5, cell_line="B", perturbagen="e")))
    value, lower, status = (tables[f"matrix_ic50{s}"] for s in ("", "_lower", "_status"))
    assert (
        value[S.CELL_LINE].tolist()
        == lower[S.CELL_LINE].tolist()
        == status[S.CELL_LINE].tolist()
        == ["A", "B"]
    )
    assert status.set_index(S.CELL_LINE).loc["B", "e"] == St.RIGHT_CENSORED
    assert lower.set_index(S.CELL_LINE).loc["B", "e"] == 1e-5 and np.isnan(
        value.set_index(S.CELL_LINE).loc["B", "e"]
    )
    assert pd.isna(status.set_index(S.CELL_LINE).loc["A", "e"])  # not measured: null everywhere


def test_seeding_density_is_carried_from_the_metrics_when_present():
    metrics = pd.DataFrame([est("a", 1e-6)]).assign(**{S.SEEDING_DENSITY: 2500.0})
    assert source_labels(metrics)[S.SEEDING_DENSITY].tolist() == [2500.0]
    rows, _ = consensus(source_labels(metrics))
    assert rows[S.SEEDING_DENSITY].tolist() == [2500.0]


# ------------------------------------------------------------------------------------------ files and command
@pytest.fixture(scope="module")
def example_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    result = runner.invoke(app, ["run", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_export_of_the_bundled_example(example_run, tmp_path):
    out = tmp_path / "export"
    result = runner.invoke(app, ["export", str(example_run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    labels = pd.read_parquet(out / "labels.parquet")
    metrics = pd.read_parquet(example_run / "metrics.parquet")
    drugs = metrics[metrics[S.PERTURBATION_TYPE] == "drug"]
    source = labels[labels[S.DATASET] != S.CONSENSUS_DATASET]
    assert len(source) == len(drugs)  # every drug metric row, refused ones included
    assert set(labels[S.PERTURBATION_TYPE]) == {"drug"}
    pairs = drugs.groupby([S.CELL_LINE, S.PERTURBAGEN, S.METRIC]).ngroups
    assert (labels[S.DATASET] == S.CONSENSUS_DATASET).sum() == pairs
    assert source[S.SEEDING_DENSITY].notna().all()  # carried from the responses
    # the example's two labs share cell lines and drugs: some pairs have agreeing and disagreeing sources
    flags = set(labels[S.CONSENSUS_FLAG].dropna())
    assert {S.ConsensusFlag.AGREE, S.ConsensusFlag.DISAGREE, S.ConsensusFlag.SINGLE_SOURCE} <= flags
    for path in out.glob("*.parquet"):
        meta = read_metadata(path)
        assert meta["parameters"]["export"]["perturbation_type"] == "drug", path
        assert meta["run"]["parameters"]["fit"]["selection"] == "ftest", path  # the run's own provenance
        assert meta["inputs"][0]["path"].endswith("metrics.parquet")
    value, status = (
        pd.read_parquet(out / "matrix_ic50.parquet"),
        pd.read_parquet(out / "matrix_ic50_status.parquet"),
    )
    assert value.shape == status.shape and list(value.columns) == list(status.columns)
    assert set(value.columns) - {S.CELL_LINE} <= set(drugs[S.PERTURBAGEN])
    summary = json.loads((out / "export.json").read_text())
    assert summary["source_rows"] == len(source)
    table = pd.read_csv(out / "drevalpy" / "doseatlas_ic50" / "doseatlas_ic50.csv")
    ic50 = labels[(labels[S.DATASET] == S.CONSENSUS_DATASET) & (labels[S.METRIC] == "ic50")]
    assert len(table) == (ic50[S.STATUS] == St.ESTIMATED).sum() > 0
    assert np.allclose(np.sort(table["LN_IC50"]), np.sort(np.log(ic50[S.VALUE].dropna() * 1e6)))
    # again into the same directory: a previous doseatlas output is replaced
    assert (
        runner.invoke(app, ["export", str(example_run), "--out", str(out), "--metric", "ic50"]).exit_code == 0
    )
    assert set(pd.read_parquet(out / "labels.parquet")[S.METRIC]) == {"ic50"}
    assert not (out / "matrix_gr50.parquet").exists()


def test_knockout_export_of_the_bundled_example(example_run, tmp_path):
    out = tmp_path / "ko"
    result = runner.invoke(
        app, ["export", str(example_run), "--out", str(out), "--perturbation-type", "knockout"]
    )
    assert result.exit_code == 0, result.output
    labels = pd.read_parquet(out / "labels.parquet")
    assert set(labels[S.PERTURBATION_TYPE]) == {"knockout"} and set(labels[S.METRIC]) <= {
        "rv_effect",
        "gr_effect",
    }
    matrix = pd.read_parquet(out / "matrix_rv_effect.parquet")
    metrics = pd.read_parquet(example_run / "metrics.parquet")
    knockouts = set(metrics.loc[metrics[S.PERTURBATION_TYPE] == "knockout", S.PERTURBAGEN])
    assert set(matrix.columns) - {S.CELL_LINE} == knockouts
    assert not (out / "drevalpy").exists()  # drevalpy data sets are drug response


def test_an_export_without_labels_says_so(example_run, tmp_path):
    out = tmp_path / "ov"
    result = runner.invoke(
        app, ["export", str(example_run), "--out", str(out), "--perturbation-type", "overexpression"]
    )
    assert result.exit_code == 0, result.output
    assert "note: the run has no overexpression labels" in " ".join(result.output.split())
    assert len(pd.read_parquet(out / "labels.parquet")) == 0 and not list(out.glob("matrix_*"))


@pytest.mark.parametrize(
    "case",
    ["missing", "not_doseatlas", "a_file", "corrupt_metrics", "not_metrics", "out_inside_run", "bad_metric"],
)
def test_bad_run_dir_or_options_exit_2_and_write_nothing(example_run, tmp_path, case):
    run_dir, out = tmp_path / "nothing", tmp_path / "export"
    extra: list[str] = []
    if case == "not_doseatlas":
        run_dir.mkdir()
        pd.DataFrame([est("a", 1e-6)]).to_parquet(run_dir / "metrics.parquet")
    elif case == "a_file":
        run_dir.write_text("x")
    elif case in ("corrupt_metrics", "not_metrics"):
        run_dir.mkdir()
        (run_dir / ".doseatlas-output.json").write_text(json.dumps({"files": ["metrics.parquet"]}))
        if case == "corrupt_metrics":
            (run_dir / "metrics.parquet").write_text("not parquet")
        else:
            pd.DataFrame({"x": [1]}).to_parquet(run_dir / "metrics.parquet")
    elif case == "out_inside_run":
        run_dir, out = example_run, example_run / "export"
    elif case == "bad_metric":
        run_dir, extra = example_run, ["--metric", "ic51"]
    result = runner.invoke(app, ["export", str(run_dir), "--out", str(out), *extra])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "error:" in result.output
    assert not out.exists()


# ------------------------------------------------------------------------------------------ drevalpy
def _drevalpy_python() -> Path:
    configured = os.environ.get("DOSEATLAS_DREVALPY_PYTHON")
    return Path(configured) if configured else REPO.parent / ".venvs" / "drevalpy" / "bin" / "python"


@pytest.mark.slow
def test_drevalpy_loads_the_export_and_fits_a_baseline(example_run, tmp_path):
    python = _drevalpy_python()
    if not python.is_file():
        pytest.skip(
            f"no drevalpy environment at {python} (create it as docs/export.md says, or set "
            "DOSEATLAS_DREVALPY_PYTHON to its python)"
        )
    out = tmp_path / "export"
    assert runner.invoke(app, ["export", str(example_run), "--out", str(out)]).exit_code == 0
    check = subprocess.run(
        [str(python), str(REPO / "scripts" / "drevalpy_check.py"), str(out), "--metric", "ic50"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    report = json.loads(check.stdout[check.stdout.index("{") :])
    expected = pd.read_csv(out / "drevalpy" / "doseatlas_ic50" / "doseatlas_ic50.csv")
    assert report["pairs"] == len(expected) and report["train_pairs"] + report["test_pairs"] == len(expected)
    for model in ("NaivePredictor", "NaiveMeanEffectsPredictor"):
        assert np.isfinite(report[model]["RMSE"]), report
