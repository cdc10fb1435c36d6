"""Ground-truth simulator: model properties, truth definitions, well table invariants, config errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from doseatlas import schemas as S
from doseatlas.errors import SimulationError
from doseatlas.simulate import (
    TRUTH_COLUMNS,
    CellLine,
    DatasetConfig,
    Drug,
    GeneticPerturbation,
    SimulationConfig,
    example_config,
    simulate,
)
from doseatlas.simulate.model import Curve, ReadoutModel
from doseatlas.simulate.truth import THRESHOLD_METRICS

SMALL = SimulationConfig(n_cell_lines=2, n_drugs=2, n_genetic=1)

curves = st.builds(
    lambda td, emax, ec50, h, death, ec50d: Curve(
        readout=ReadoutModel(readout=S.Readout.NUCLEI_COUNT, scale=1.0),
        n0=2000.0,
        k0=np.log(2.0) / td,
        lag_h=0.0,
        emax_div=emax,
        ec50_div_m=10.0**ec50,
        hill=h,
        death_max=death,
        ec50_death_m=10.0**ec50d,
        hill_death=h,
    ),
    st.floats(15.0, 80.0),
    st.floats(0.0, 1.0),
    st.floats(-9.0, -5.0),
    st.floats(0.3, 4.0),
    st.floats(0.0, 0.15),
    st.floats(-9.0, -5.0),
)
concs = st.floats(-10.0, -3.0).map(lambda x: 10.0**x)


@settings(max_examples=60, deadline=None)
@given(curve=curves, conc=concs)
def test_gr_is_time_invariant_under_exponential_growth(curve: Curve, conc: float) -> None:
    assert curve.gr(conc, 72.0) == pytest.approx(curve.gr(conc, 96.0), rel=1e-9, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(curve=curves, conc=concs, t1=st.floats(12.0, 120.0), t2=st.floats(12.0, 120.0))
def test_relative_viability_scales_as_power_of_time(curve: Curve, conc: float, t1: float, t2: float) -> None:
    rv1, rv2 = curve.relative_viability(conc, t1), curve.relative_viability(conc, t2)
    assert rv2 == pytest.approx(rv1 ** (t2 / t1), rel=1e-9, abs=1e-300)


def test_onset_lag_breaks_time_invariance() -> None:
    """Control of the property tests: with a lag, GR changes with duration."""
    curve = Curve(
        ReadoutModel(S.Readout.NUCLEI_COUNT, 1.0), 2000.0, 0.03, 12.0, 0.9, 1e-7, 1.0, 0.05, 1e-7, 1.0
    )
    assert abs(curve.gr(1e-6, 72.0) - curve.gr(1e-6, 96.0)) > 1e-3


@pytest.fixture(scope="module")
def example():
    return simulate(example_config(), seed=3)


def test_truth_roots_satisfy_their_definitions(example) -> None:
    truth = example.truth
    rows = truth[truth[S.METRIC].isin(list(THRESHOLD_METRICS)) & (truth[S.STATUS] == "estimated")]
    assert len(rows) > 100
    for row in rows.itertuples(index=False):
        scale, threshold = THRESHOLD_METRICS[row.metric]
        got = example.response(
            dataset=row.dataset,
            cell_line=row.cell_line,
            perturbagen=row.perturbagen,
            scale=scale,
            concentration=row.value,
            time_h=row.duration_h,
        )
        assert abs(float(got) - threshold) <= 1e-9 * max(1.0, abs(threshold)), row
        assert row.conc_min <= row.value <= row.conc_max


def test_censoring_and_limits(example) -> None:
    truth = example.truth
    for row in truth[truth[S.METRIC].isin(list(THRESHOLD_METRICS))].itertuples(index=False):
        scale, threshold = THRESHOLD_METRICS[row.metric]
        key = {"dataset": row.dataset, "cell_line": row.cell_line, "perturbagen": row.perturbagen}

        def at(c: float, k: dict = key, s: str = scale, t: float = row.duration_h) -> float:
            return float(example.response(**k, scale=s, concentration=c, time_h=t))

        if row.status == "right_censored":
            assert np.isnan(row.value) and row.lower == row.conc_max and row.upper == np.inf
            assert at(row.conc_max) > threshold
        elif row.status == "left_censored":
            assert np.isnan(row.value) and row.lower == 0 and row.upper == row.conc_min
            assert at(row.conc_min) < threshold
    statuses = set(truth[S.STATUS])
    assert {"estimated", "right_censored", "left_censored"} <= statuses
    limits = truth[truth[S.METRIC].isin(["grinf", "einf"])]
    assert (limits[S.STATUS] == "estimated").all() and (limits[S.LOWER] == limits[S.VALUE]).all()
    assert list(truth.columns) == list(TRUTH_COLUMNS)


def test_genetic_truth_has_effects_only(example) -> None:
    truth = example.truth
    genetic = truth[truth[S.PERTURBATION_TYPE].isin(["knockout", "knockdown"])]
    assert set(genetic[S.METRIC]) == {"rv_effect", "gr_effect"}
    assert genetic["conc_min"].isna().all()
    aavs1 = genetic[genetic[S.PERTURBAGEN] == "AAVS1"]
    assert np.allclose(aavs1[S.VALUE], 1.0)  # no-effect control: RV 1, GR 1
    drugs = truth[truth[S.PERTURBATION_TYPE] == "drug"]
    assert not drugs[S.METRIC].isin(["rv_effect", "gr_effect"]).any()


def test_well_table_shape_and_controls(example) -> None:
    wells = example.wells
    assert list(wells.columns) == list(S.WELL_COLUMNS)
    per_plate = wells.groupby([S.DATASET, S.PLATE])[[S.CELL_LINE, S.TIME_H, S.READOUT]].nunique()
    assert (per_plate == 1).all().all()
    assert not wells.duplicated([S.DATASET, S.PLATE, S.WELL]).any()
    controls = wells[wells[S.ROLE] != "treated"]
    assert (controls[S.PERTURBATION_TYPE] == "").all() and controls[S.PERTURBAGEN].isna().all()
    assert (wells.loc[wells[S.ROLE] == "vehicle", S.CONCENTRATION] == 0).all()
    t0 = wells[wells[S.ROLE] == "time_zero"]
    assert (t0[S.TIME_H] == 0).all() and set(t0[S.DATASET]) == {"lab_b", "crispr_ko"}
    assert set(wells.loc[wells[S.DATASET] == "lab_a", S.ROLE]) == {"treated", "vehicle", "blank"}
    assert set(wells.loc[wells[S.DATASET] == "lab_b", S.CONCENTRATION_UNIT]) >= {"nM"}
    assert set(wells.loc[wells[S.DATASET] == "lab_b", S.TIME_H]) == {0.0, 72.0, 96.0}


def test_knockouts_carry_no_concentration(example) -> None:
    wells = example.wells
    genetic = wells[wells[S.PERTURBATION_TYPE].isin(["knockout", "knockdown"])]
    assert len(genetic) > 0 and (genetic[S.ROLE] == "treated").all()
    assert genetic[S.CONCENTRATION].isna().all() and (genetic[S.CONCENTRATION_UNIT] == "").all()
    drugs = wells[wells[S.PERTURBATION_TYPE] == "drug"]
    assert (drugs[S.CONCENTRATION] > 0).all() and not set(drugs[S.PERTURBAGEN]) & set(genetic[S.PERTURBAGEN])


def test_nuclei_counts_are_integers(example) -> None:
    counts = example.wells.loc[example.wells[S.READOUT] == "nuclei_count", S.SIGNAL]
    assert len(counts) > 0 and np.array_equal(counts, np.round(counts)) and (counts >= 0).all()


def test_deterministic_by_seed() -> None:
    a, b, c = simulate(SMALL, seed=7), simulate(SMALL, seed=7), simulate(SMALL, seed=8)
    pd.testing.assert_frame_equal(a.wells, b.wells)
    pd.testing.assert_frame_equal(a.truth, b.truth)
    assert not np.allclose(a.wells[S.SIGNAL], c.wells[S.SIGNAL][: len(a.wells)])
    assert a.config.drugs != c.config.drugs  # random biology depends on the seed too


def test_explicit_biology_is_used() -> None:
    config = SimulationConfig(
        cell_lines=[CellLine(name="X", doubling_time_h=24.0, seeding_density=1000.0)],
        drugs=[Drug(name="d", emax_div=1.0, ec50_div_m=1e-7, hill=1.0)],
        datasets=[DatasetConfig(name="s", readout="nuclei_count", time_zero=True)],
    )
    truth = simulate(config, seed=0).truth.set_index(S.METRIC)
    # cytostatic, full division block, no lag: GRinf = 2^(0) - 1 = 0 and Einf = 2^(-72/24)
    assert truth.loc["grinf", S.VALUE] == pytest.approx(0.0, abs=1e-12)
    assert truth.loc["einf", S.VALUE] == pytest.approx(2.0**-3, rel=1e-12)
    assert truth.loc["lc50", S.STATUS] == "right_censored"  # cytostatic drugs never kill


def test_noiseless_wells_equal_expected_signal() -> None:
    config = SimulationConfig(
        cell_lines=[CellLine(name="X", doubling_time_h=30.0, seeding_density=1500.0, lag_h=4.0)],
        genetic=[GeneticPerturbation(name="G", division_inhibition=0.5, death_rate_per_h=0.01)],
        drugs=[Drug(name="d", ec50_div_m=1e-7, death_max_per_h=0.05)],
        datasets=[
            DatasetConfig(name="s", readout="srb", noiseless=True, time_zero=True, read_times_h=[48.0])
        ],
    )
    result = simulate(config, seed=0)
    wells = result.wells
    _, background, _ = config.datasets[0].readout_defaults()
    treated = wells[wells[S.PERTURBATION_TYPE] == "drug"]
    expected = result.curves[("s", "X", "drug", "d")].signal(treated[S.CONCENTRATION].to_numpy() * 1e-6, 48.0)
    np.testing.assert_allclose(treated[S.SIGNAL] - background, expected, rtol=1e-12)
    assert np.allclose(wells.loc[wells[S.ROLE] == "blank", S.SIGNAL], background)


def test_atp_interference_only_affects_atp() -> None:
    drug = Drug(name="i", emax_div=0.0, ec50_div_m=1e-6, atp_interference=0.8, atp_ec50_m=1e-7)
    base = {"cell_lines": [CellLine(name="X", doubling_time_h=30.0)], "drugs": [drug]}
    for readout, affected in (("atp", True), ("resazurin", False), ("nuclei_count", False)):
        config = SimulationConfig(**base, datasets=[DatasetConfig(name="s", readout=readout)])
        einf = simulate(config).truth.set_index(S.METRIC).loc["einf", S.VALUE]
        assert (einf < 0.5) if affected else einf == pytest.approx(1.0), readout


def test_edge_effect_lowers_outer_wells() -> None:
    config = SimulationConfig(
        cell_lines=[CellLine(name="X", doubling_time_h=30.0)],
        drugs=[Drug(name="d")],
        datasets=[
            DatasetConfig(
                name="s",
                edge_loss=0.4,
                cv=0.0,
                plate_gain_sd=0.0,
                seeding_cv=0.0,
                additive_sd=0.0,
                n_vehicle=40,
            )
        ],
    )
    vehicle = simulate(config).wells.query("role == 'vehicle'")
    edge = vehicle[S.WELL].str[0].isin(["A", "H"]) | vehicle[S.WELL].str[1:].isin(["01", "12"])
    assert edge.any() and (~edge).any()
    assert vehicle.loc[edge, S.SIGNAL].max() < vehicle.loc[~edge, S.SIGNAL].min()


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"n_cell_lines": 0}, "n_cell_lines"),
        ({"datasets": [{"name": "a", "readout": "mts"}]}, "not simulated"),
        ({"datasets": [{"name": "a", "concentration_unit": "ug/ml"}]}, "concentration_unit"),
        ({"datasets": [{"name": "a", "read_times_h": [72, -1]}]}, "read_times_h"),
        ({"datasets": [{"name": "a", "n_vehicle": 100}]}, "controls fill"),
        ({"datasets": [{"name": "a"}, {"name": "a"}]}, "duplicate dataset"),
        ({"datasets": [{"name": "a"}], "typo": 1}, "typo"),
    ],
)
def test_invalid_config_raises_one_clear_error(kwargs: dict, needle: str) -> None:
    with pytest.raises(SimulationError, match=needle) as info:
        SimulationConfig(**kwargs)
    assert "\n" not in str(info.value)


def test_unknown_names_and_bad_seed_raise() -> None:
    with pytest.raises(SimulationError, match="unknown drug"):
        simulate(SimulationConfig(datasets=[DatasetConfig(name="a", drugs=["nope"])]))
    with pytest.raises(SimulationError, match="seed"):
        simulate(SMALL, seed=-1)
