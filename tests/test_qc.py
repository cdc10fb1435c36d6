"""Plate QC from well positions: edge effects and Z'-factor."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from doseatlas import schemas as S
from doseatlas.ingest import canonical_columns
from doseatlas.qc import EDGE_RATIO, N_POSITIVE, SSMD, Z_FACTOR, parse_wells, plate_qc
from doseatlas.simulate import DatasetConfig, SimulationConfig, simulate
from doseatlas.validate import validate_wells


def test_well_names_parse_to_rows_and_columns():
    got = parse_wells(pd.Series(["A01", "p24", "AF48", "H7", "junk", None]))
    assert got["row"].tolist()[:4] == [1, 16, 32, 8]
    assert got["col"].tolist()[:4] == [1, 24, 48, 7]
    assert got.iloc[4:].isna().all().all()


@pytest.mark.parametrize(("edge_loss", "expected"), [(0.0, 1.0), (0.3, 0.7)])
def test_edge_loss_of_the_simulator_is_measured(edge_loss, expected):
    config = SimulationConfig(
        n_cell_lines=3,
        n_drugs=3,
        datasets=[DatasetConfig(name="e", plate_format=384, edge_loss=edge_loss, cv=0.02, n_vehicle=24)],
    )
    clean = validate_wells(canonical_columns(simulate(config, seed=2).wells, source="sim")).clean
    qc = plate_qc(clean)
    assert qc[EDGE_RATIO].median() == pytest.approx(expected, abs=0.06)


def test_z_factor_needs_positive_controls():
    rows = [
        {
            S.DATASET: "d",
            S.PLATE: "p",
            S.CELL_LINE: "c",
            S.TIME_H: 72.0,
            S.READOUT: "atp",
            S.WELL: f"B{i:02d}",
            S.ROLE: role,
            S.SIGNAL: signal,
        }
        for i, (role, signal) in enumerate(
            [
                ("vehicle", 100),
                ("vehicle", 104),
                ("vehicle", 96),
                ("positive_control", 5),
                ("positive_control", 7),
            ],
            start=2,
        )
    ]
    z = plate_qc(pd.DataFrame(rows))[Z_FACTOR].iloc[0]
    assert 0.5 < z < 1.0
    no_pc = plate_qc(pd.DataFrame(rows[:3]))
    assert no_pc[Z_FACTOR].isna().all()


def test_plates_without_well_positions_get_no_edge_ratio():
    rows = [
        {
            S.DATASET: "d",
            S.PLATE: "p",
            S.CELL_LINE: "c",
            S.TIME_H: 72.0,
            S.READOUT: "atp",
            S.WELL: f"line{i}",
            S.ROLE: "vehicle",
            S.SIGNAL: 100.0,
        }
        for i in range(3)
    ]
    qc = plate_qc(pd.DataFrame(rows))
    assert len(qc) == 1 and qc[EDGE_RATIO].isna().all()


def test_z_factor_uses_the_strongest_positive_control_only():
    """A dose series of positive controls pooled into one group gives a meaningless Z' (GDSC: median -0.47)."""
    rng = np.random.default_rng(0)
    vehicle = [("vehicle", None, np.nan, s) for s in rng.normal(100, 3, 16)]
    series = [
        ("positive_control", "pc", c, s)
        for c, level in ((1e-8, 90.0), (1e-7, 60.0), (1e-6, 20.0), (1e-5, 4.0))
        for s in rng.normal(level, 1.0, 4)
    ]
    rows = [
        {S.DATASET: "d", S.PLATE: "p", S.CELL_LINE: "c", S.TIME_H: 72.0, S.READOUT: "atp",
         S.WELL: f"B{i:02d}", S.ROLE: role, S.PERTURBAGEN: drug, S.CONCENTRATION: conc, S.SIGNAL: signal}
        for i, (role, drug, conc, signal) in enumerate(vehicle + series, start=2)
    ]  # fmt: skip
    qc = plate_qc(pd.DataFrame(rows)).iloc[0]
    top = np.array([r[S.SIGNAL] for r in rows if r[S.CONCENTRATION] == 1e-5])
    veh = np.array([r[S.SIGNAL] for r in rows if r[S.ROLE] == "vehicle"])
    expected = 1 - 3 * (veh.std(ddof=1) + top.std(ddof=1)) / abs(veh.mean() - top.mean())
    assert qc[Z_FACTOR] == pytest.approx(expected, rel=1e-12)
    assert qc[Z_FACTOR] > 0.7  # pooled over the series it would be far below 0
    assert qc[SSMD] == pytest.approx(
        abs(veh.mean() - top.mean()) / np.hypot(veh.std(ddof=1), top.std(ddof=1))
    )
    assert qc[N_POSITIVE] == 4
