"""Seeding density (issue 13 part 2): never pooled, carried on every metric row, shifts tabulated."""

from __future__ import annotations

import numpy as np
import pandas as pd

from doseatlas import schemas as S
from doseatlas.ingest import canonical_columns
from doseatlas.metrics.density import SHIFT, density_shifts
from doseatlas.pipeline import run_pipeline
from doseatlas.report import density_section

CONCS = [1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4]


def _wells() -> pd.DataFrame:
    """One plate, one cell line, one drug seeded at 1,500 and 6,000 cells/well: the drug kills half the cells at
    1 uM at the low density and at 10 uM at the high one; the high density has 4x the vehicle signal."""
    rows = []
    for density, scale, ic50 in ((1500.0, 1.0, 1e-6), (6000.0, 4.0, 1e-5)):
        for rep in range(3):
            level = 1000.0 * scale * (1 + 0.01 * rep)
            rows += [("vehicle", 0.0, level, density)] * 2
            rows += [("treated", c, level / (1 + c / ic50), density) for c in CONCS]
    table = pd.DataFrame(
        {
            S.DATASET: "d",
            S.PLATE: "p1",
            S.WELL: [f"{chr(66 + i // 20)}{2 + i % 20:02d}" for i in range(len(rows))],
            S.CELL_LINE: "c",
            S.ROLE: [r[0] for r in rows],
            S.PERTURBATION_TYPE: "drug",
            S.PERTURBAGEN: ["" if r[0] == "vehicle" else "x" for r in rows],
            S.CONCENTRATION: [r[1] for r in rows],
            S.CONCENTRATION_UNIT: "M",
            S.TIME_H: 72.0,
            S.READOUT: "atp",
            S.SIGNAL: [r[2] for r in rows],
            S.SEEDING_DENSITY: [r[3] for r in rows],
        }
    )
    return canonical_columns(table, source="density.csv")


def test_densities_are_never_pooled_and_their_shift_is_tabulated():
    result = run_pipeline(_wells())
    assert set(result.responses[S.N_VEHICLE]) == {6}  # each density's own 6 vehicle wells, not all 12
    rv = result.responses.groupby(S.SEEDING_DENSITY)[S.RELATIVE_VIABILITY].max()
    assert (rv < 1.05).all()  # pooled vehicles would put the 6,000 wells at ~1.6
    ic50 = result.metrics[result.metrics[S.METRIC] == "ic50"].set_index(S.SEEDING_DENSITY)
    assert sorted(ic50.index) == [1500.0, 6000.0]
    assert abs(np.log10(ic50.loc[1500.0, S.VALUE]) + 6) < 0.05
    assert abs(np.log10(ic50.loc[6000.0, S.VALUE]) + 5) < 0.05
    assert result.metrics[S.SEEDING_DENSITY].notna().all()
    shifts = density_shifts(result.metrics).set_index(S.METRIC)
    assert abs(shifts.loc["ic50", SHIFT] - 1.0) < 0.1 and shifts.loc["ic50", "shift_scale"] == "log10"
    assert "ic50" in density_section(result)


def test_one_density_gives_no_shift_rows():
    wells = _wells()
    result = run_pipeline(wells[wells[S.SEEDING_DENSITY] == 1500.0])
    assert density_shifts(result.metrics).empty
    assert "No curve" in density_section(result)
