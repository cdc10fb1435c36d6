"""Nominal durations (issue 12 part 1): reads minutes apart are one duration; the actual time stays on every row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from doseatlas import schemas as S
from doseatlas.durations import DurationOptions, distinct_times, nominal_map
from doseatlas.errors import ConfigError
from doseatlas.ingest.canonical import canonical_columns
from doseatlas.pipeline import run_pipeline
from doseatlas.simulate import DatasetConfig, SimulationConfig, simulate


def _nominal(times, dataset="d", **options):
    table = pd.DataFrame({S.DATASET: dataset, S.TIME_H: times})
    mapping = nominal_map(distinct_times(table), options=DurationOptions(**options))
    return dict(zip(mapping[S.TIME_H], mapping["_nominal"], strict=True))


def test_reads_minutes_apart_share_a_nominal_duration():
    got = _nominal([0.0, 72.0, 72.1, 72.3, 95.8, 96.2, 0.8, 1.0, 30.2, 30.8])
    assert got[0.0] == 0.0
    assert {got[72.0], got[72.1], got[72.3]} == {72.0}
    assert {got[95.8], got[96.2]} == {96.0}
    assert {got[0.8], got[1.0]} == {1.0}
    assert {got[30.2], got[30.8]} == {30.5}  # not all within 0.6 h of a whole hour: the median, to 0.1 h


def test_tolerance_is_an_option_and_is_checked():
    assert _nominal([72.0, 72.4], abs_h=0.1, rel=0.0) == {72.0: 72.0, 72.4: 72.4}
    with pytest.raises(ConfigError):
        DurationOptions(abs_h=-1)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=500.0, allow_nan=False), min_size=1, max_size=30))
def test_nominal_map_is_order_free_and_keeps_time_zero(times):
    forward = _nominal(times)
    backward = _nominal(list(reversed(times)))
    assert forward == backward
    assert all((value == 0) == (t == 0) for t, value in forward.items())
    assert all(abs(value - t) <= max(0.5, 0.02 * t) * 40 for t, value in forward.items())


def test_plates_read_a_few_minutes_apart_make_one_curve_and_keep_their_times():
    dataset = DatasetConfig(
        name="d", readout="nuclei_count", read_times_h=[72.0], replicates=2, time_zero=True
    )
    wells = simulate(SimulationConfig(n_cell_lines=2, n_drugs=2, datasets=[dataset]), seed=1).wells
    late = wells[S.REPLICATE].eq(2) & wells[S.TIME_H].gt(0)
    wells.loc[late, S.TIME_H] = 72.2  # the second replicate's plates were read 12 minutes later
    result = run_pipeline(canonical_columns(wells, source="sim"))
    assert set(result.curves[S.DURATION_H]) == {72.0}
    assert set(result.metrics[S.DURATION_H].dropna()) == {72.0}
    assert set(result.responses[S.READ_TIME_H]) == {72.0, 72.2}
    assert set(result.responses[S.TIME_H]) == {72.0}
    assert np.isclose(result.curves["n_replicates"].max(), 2)
