"""The readout registry: one declaration per readout, read by validation, the metrics and the docs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from doseatlas import schemas as S
from doseatlas.ingest import canonical_columns
from doseatlas.metrics.convert import ConversionOptions
from doseatlas.metrics.flags import has_flag
from doseatlas.metrics.registry import METRICS
from doseatlas.pipeline import RunOptions, run_pipeline
from doseatlas.readouts import (
    ALIASES,
    READOUTS,
    REGISTRY,
    canonical_readouts,
    caveat_rows,
    refuse_unsupported,
    render_markdown,
)
from doseatlas.simulate import CellLine, DatasetConfig, Drug, SimulationConfig, simulate
from doseatlas.validate import validate_wells

DOCS = Path(__file__).resolve().parents[1] / "docs" / "readouts.md"


def test_docs_are_generated_from_the_registry():
    assert DOCS.read_text(encoding="utf-8") == render_markdown(), "run: python scripts/make_docs.py"


def test_every_readout_is_declared_once_with_what_it_measures():
    assert [r.name for r in READOUTS] == list(REGISTRY)
    assert set(REGISTRY) == {r.value for r in S.Readout}
    for spec in READOUTS:
        assert spec.measures and spec.citation and spec.label
        assert set(spec.supports) <= set(S.FIT_SCALES)
        assert set(spec.caveat_scales) <= set(spec.supports)
        assert bool(spec.caveat) == bool(spec.caveat_scales)
    assert REGISTRY["dead_cell_dye"].supports == ()
    assert REGISTRY["atp"].counts == "metabolic_activity" and REGISTRY["nuclei_count"].counts == "live_cells"
    assert len(ALIASES) == sum(1 + len(r.aliases) for r in READOUTS)  # no alias names two readouts


def test_sources_aliases_are_readouts_and_unknown_names_reach_the_ledger():
    text = pd.Series(["CellTiter-Glo", " alamarBlue ", "Syto60", "SYTOX green", "ATP", "magic", ""])
    assert canonical_readouts(text).tolist() == [
        "atp", "resazurin", "dna_dye", "dead_cell_dye", "atp", "magic", "",
    ]  # fmt: skip
    wells = simulate(SimulationConfig(n_cell_lines=1, n_drugs=1), seed=0).wells
    wells = canonical_columns(wells, source="sim")
    wells[S.READOUT] = np.where(np.arange(len(wells)) % 2, "CellTiter-Glo", "luminescence")
    checked = validate_wells(wells)
    assert set(checked.clean[S.READOUT]) == {"atp"}
    assert set(checked.ledger[S.LEDGER_REASON]) == {"unknown_readout"}
    assert len(checked.ledger) == (np.arange(len(wells)) % 2 == 0).sum()


def _metric_rows(readout: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            S.READOUT: readout,
            S.METRIC: [m.name for m in METRICS],
            S.VALUE: 1.0,
            S.STATUS: "estimated",
            S.LOWER: 0.5,
            S.UPPER: 2.0,
            S.REASON: None,
        }
    )


@pytest.mark.parametrize("readout", [r.value for r in S.Readout])
def test_metrics_a_readout_does_not_support_are_refused_with_the_reason(readout):
    rows = _metric_rows(readout)
    out = refuse_unsupported(rows)
    spec = REGISTRY[readout]
    scales = rows[S.METRIC].map({m.name: m.scale for m in METRICS})
    refused = ~scales.isin(spec.supports).to_numpy()
    assert (out[S.STATUS] == "refused").to_numpy().tolist() == refused.tolist()
    assert out.loc[refused, S.REASON].eq("readout_not_supported").all()
    assert out.loc[refused, [S.VALUE, S.LOWER, S.UPPER]].isna().all().all()
    assert out.loc[~refused].equals(rows.loc[~refused])
    assert caveat_rows(rows).tolist() == scales.isin(spec.caveat_scales).tolist()


def test_a_dead_cell_dye_run_refuses_every_viability_metric_and_atp_growth_values_carry_the_caveat():
    config = SimulationConfig(
        cell_lines=[CellLine(name="CL01", doubling_time_h=24.0)],
        drugs=[Drug(name="tox", ec50_div_m=1e-7, death_max_per_h=0.05, ec50_death_m=3e-7)],
        datasets=[
            DatasetConfig(name="dye", readout="dead_cell_dye", time_zero=True, replicates=2),
            DatasetConfig(name="glo", readout="atp", time_zero=True, replicates=2),
        ],
    )
    wells = simulate(config, seed=1).wells
    wells[S.READOUT] = wells[S.READOUT].replace({"dead_cell_dye": "CellTox Green"})  # as a source names it
    options = RunOptions(conversion=ConversionOptions(targets=(48.0,)))
    result = run_pipeline(canonical_columns(wells, source="sim"), options=options)
    metrics = result.metrics
    dye = metrics[metrics[S.READOUT] == "dead_cell_dye"]
    assert "auc_common" in set(dye[S.METRIC]) and (dye[S.STATUS] == "refused").all()
    assert dye[S.REASON].eq("readout_not_supported").all() and dye[S.VALUE].isna().all()
    converted = result.converted[result.converted[S.READOUT] == "dead_cell_dye"]
    assert len(converted) and converted[S.REASON].eq("readout_not_supported").all()
    assert (result.converted.loc[result.converted[S.READOUT] == "atp", S.STATUS] != "refused").any()
    glo = metrics[metrics[S.READOUT] == "atp"]
    growth = glo[S.SCALE].isin([S.GR, S.PERCENT_GROWTH]).to_numpy()
    assert has_flag(glo[S.FLAGS], "readout_caveat").to_numpy().tolist() == growth.tolist()
    assert (glo[S.STATUS] != "refused").any()
