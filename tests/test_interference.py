"""Compound-only wells: the interference table, the readout_interference flag, the correction, both engines, and
discordant readouts (issue 13), measured on simulated plates with planted truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from doseatlas import schemas as S
from doseatlas.errors import ConfigError
from doseatlas.ingest import canonical_columns
from doseatlas.interference import InterferenceOptions, compound_wells, interference_table
from doseatlas.metrics.flags import has_flag
from doseatlas.pipeline import RunOptions, run_pipeline
from doseatlas.simulate import simulate
from doseatlas.simulate.assay import (
    discordance_config,
    discordance_detection,
    ic50_error,
    interference_config,
    interference_detection,
)
from doseatlas.validate import validate_wells

SUBTRACT = RunOptions(interference=InterferenceOptions(correction="subtract"))


@pytest.fixture(scope="module")
def planted():
    sim = simulate(interference_config(n_interfering=3, n_clean=9), seed=3)
    raw = canonical_columns(sim.wells, source="sim")
    return sim, raw, run_pipeline(raw), run_pipeline(raw, options=SUBTRACT)


def test_compound_only_wells_are_validated_with_their_drug_and_dose():
    sim = simulate(interference_config(n_interfering=1, n_clean=6, n_lines=1, replicates=1), seed=0)
    wells = canonical_columns(sim.wells, source="sim")
    free = wells[S.ROLE] == S.Role.COMPOUND_ONLY
    genetic = wells[free].head(2).assign(**{S.PERTURBATION_TYPE: "knockout"})
    checked = validate_wells(pd.concat([wells, genetic], ignore_index=True))
    kept = checked.clean[checked.clean[S.ROLE] == S.Role.COMPOUND_ONLY]
    assert len(kept) == free.sum() and kept[S.PERTURBAGEN].ne("").all()
    assert (kept[S.CONCENTRATION] > 0).all() and kept[S.CONCENTRATION].max() == pytest.approx(1e-5)
    assert checked.ledger[S.LEDGER_REASON].tolist() == ["inconsistent_role"] * 2
    wells_table = compound_wells(checked.clean)
    assert len(wells_table) == len(kept)


def test_the_table_is_the_compounds_own_signal_against_the_vehicle(planted):
    sim, _raw, result, _ = planted
    table = result.interference
    assert list(table.columns[:6]) == list(S.INTERFERENCE_KEY)
    assert not table.duplicated(list(S.INTERFERENCE_KEY)).any()
    assert (table[S.N_COMPOUND_ONLY] == 2).all()  # one cell-free plate per replicate
    truth = sim.interference.rename(columns={S.COMPOUND_SIGNAL: "true_signal"})
    joined = table.merge(truth, on=[S.DATASET, S.READOUT, S.PERTURBAGEN, S.CONCENTRATION])
    assert len(joined) == len(table)
    top = joined[joined["true_signal"] > 3000]  # the plate gain (5%) and additive noise around the truth
    assert np.allclose(top[S.COMPOUND_SIGNAL], top["true_signal"], rtol=0.2)
    assert table[S.INTERFERENCE].abs().max() < 1  # relative to a vehicle of ~13,000 RFU
    with pytest.raises(ConfigError, match="correction"):
        InterferenceOptions(correction="divide")


def test_every_planted_compound_is_flagged_and_clean_ones_are_not(planted):
    sim, _raw, result, corrected = planted
    for run in (result, corrected):
        found = interference_detection(sim.interference, run.metrics)
        assert found["planted"].sum() == 3 and (~found["planted"]).sum() == 9
        assert found.loc[found["planted"], "flagged"].all()
        assert found.loc[~found["planted"], "flagged"].mean() <= 0.05
    assert result.summary["interfering_compounds"] == 3


def test_the_correction_brings_the_ic50_of_interfering_compounds_back_to_the_truth(planted):
    sim, _raw, result, corrected = planted
    drugs = sorted(sim.interference.loc[sim.interference[S.COMPOUND_SIGNAL] > 0, S.PERTURBAGEN].unique())
    before = ic50_error(result.metrics, sim.truth, drugs)
    after = ic50_error(corrected.metrics, sim.truth, drugs)
    assert (after[S.STATUS] == after["status_true"]).mean() == 1.0
    assert after["log10_error"].abs().median() < 0.1
    # without the correction the compound's own signal reads as surviving cells: censored or too high
    missed = (before[S.STATUS] != before["status_true"]) | (before["log10_error"] > 0.1)
    assert missed.mean() >= 0.5
    assert corrected.responses[S.INTERFERENCE_SIGNAL].notna().any()
    assert S.INTERFERENCE_SIGNAL not in result.responses


def test_a_table_without_compound_only_wells_is_empty_with_its_columns():
    table = interference_table(compound_wells(pd.DataFrame({S.ROLE: ["treated"]})), pd.DataFrame())
    assert len(table) == 0 and S.INTERFERENCE in table and table[S.INTERFERING].dtype == bool


def test_both_engines_give_the_same_interference_tables(tmp_path):
    pytest.importorskip("dask")
    from doseatlas.ingest.partitioned import list_parts, read_part
    from doseatlas.scale import run_partitioned

    wells = simulate(interference_config(n_interfering=1, n_clean=6, n_lines=1), seed=4).wells
    for i, rows in enumerate(np.array_split(np.arange(len(wells)), 2)):
        wells.iloc[rows].to_parquet(tmp_path / f"part{i}.parquet")
    parts = list_parts([tmp_path])
    memory = run_pipeline(pd.concat([read_part(p) for p in parts], ignore_index=True), options=SUBTRACT)
    dask = run_partitioned(parts, read=read_part, options=SUBTRACT, n_partitions=3)
    assert memory.interference[S.INTERFERING].any() and memory.responses[S.INTERFERENCE_SIGNAL].notna().any()
    for name in ("interference", "responses", "metrics", "plates"):
        pd.testing.assert_frame_equal(getattr(dask, name), getattr(memory, name), check_exact=True, obj=name)
    assert dask.summary == memory.summary


def test_discordant_readouts_are_flagged_on_both_sides():
    sim = simulate(discordance_config(n_planted=2, n_clean=4, n_lines=3), seed=5)
    result = run_pipeline(canonical_columns(sim.wells, source="sim"))
    found = discordance_detection(result.metrics, ["atpdrop1", "atpdrop2"])
    planted = found[found["planted"]]
    assert planted["flagged"].all(), planted  # ATP and resazurin rows alike
    assert set(planted[S.READOUT]) == {"atp", "resazurin"}
    assert found.loc[~found["planted"], "flagged"].mean() <= 0.05
    ic50 = result.metrics[result.metrics[S.METRIC] == "ic50"]
    assert not has_flag(ic50[S.FLAGS], "readout_interference").any()  # no compound-only wells: nothing said


def test_the_report_lists_interfering_compounds_first(planted):
    from doseatlas import report
    from doseatlas.report_data import interference_summary, report_data

    sim, _raw, result, _ = planted
    data = report_data(result)
    shown, n = data.interference, data.n_interference
    planted_names = set(sim.interference.loc[sim.interference[S.COMPOUND_SIGNAL] > 0, S.PERTURBAGEN])
    assert n == 12 and len(shown) == 12  # 3 interfering + 9 clean compounds, one row each
    assert set(shown.loc[shown[S.INTERFERING], S.PERTURBAGEN]) == planted_names
    assert shown[S.INTERFERING].tolist() == [True] * 3 + [False] * 9  # interfering first
    assert (shown[S.INTERFERENCE].abs().iloc[:3] > shown[S.INTERFERENCE].abs().iloc[3:].max()).all()
    assert len(interference_summary(result.interference, most=2)[0]) == 2
    page = report.render_report(data, meta={"package_version": "0"})
    section = page[page.index('id="readout-interference"') :]
    assert all(name in section[:20_000] for name in planted_names)
    empty = report.interference_section(report_data(type("R", (), {"summary": {}})()))
    assert "No compound-only wells" in empty
