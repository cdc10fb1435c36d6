"""A curve whose responses are infinite or overflow the fit's residuals is refused (non_finite_response), in
both engines, never fitted into garbage parameters and 'estimated' metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from doseatlas import schemas as S
from doseatlas.cli import example_path
from doseatlas.fit import fit_curves
from doseatlas.ingest import read_canonical
from doseatlas.metrics import compute_metrics
from doseatlas.pipeline import RunOptions, run_pipeline

WHY = "non_finite_response"  # S.RefusalReason.NON_FINITE_RESPONSE
DOSES = np.logspace(-9, -5, 9)


def _responses(values: np.ndarray, *, perturbation: str = "drug") -> pd.DataFrame:
    n = len(values)
    table = pd.DataFrame(
        {
            S.DATASET: "d",
            S.CELL_LINE: "c",
            S.PERTURBATION_TYPE: perturbation,
            S.PERTURBAGEN: "x",
            S.READOUT: "atp",
            S.TIME_H: 72.0,
            S.CONCENTRATION: np.resize(DOSES, n),
            S.TIME_ZERO_SIGNAL: np.nan,
            S.VEHICLE_SIGNAL: 1.0,
        }
    )
    for scale in S.RESPONSE_SCALES:
        table[scale] = np.nan
        table[S.reason_column(scale)] = S.RefusalReason.NO_TIME_ZERO.value
    table[S.RELATIVE_VIABILITY] = values
    table[S.reason_column(S.RELATIVE_VIABILITY)] = None
    return table


@pytest.mark.parametrize("bad", [np.inf, -np.inf, 1e200, -1e300, 5e302])
def test_a_curve_with_a_non_finite_or_overflowing_response_is_refused(bad):
    values = np.tile(1.0 / (1.0 + DOSES / 1e-7), 2)
    values[3] = bad
    responses = _responses(values)
    curves = fit_curves(responses, scale=S.RELATIVE_VIABILITY)
    (curve,) = curves.itertuples(index=False)
    assert curve.status == "non_finite" and getattr(curve, S.REASON) == WHY
    assert np.isnan(curve.top) and np.isnan(curve.log10_ec50) and np.isnan(curve.rss)
    metrics = compute_metrics(responses, curves)
    rv = metrics[metrics[S.SCALE] == S.RELATIVE_VIABILITY]
    assert len(rv) > 0 and (rv[S.STATUS] == "refused").all() and (rv[S.REASON] == WHY).all()
    assert rv[[S.VALUE, S.LOWER, S.UPPER]].isna().all().all()


def test_an_ordinary_curve_has_no_reason_and_large_finite_responses_still_fit():
    values = np.tile(1e6 / (1.0 + DOSES / 1e-7), 2)  # an odd scale, but nowhere near overflow
    curves = fit_curves(_responses(values), scale=S.RELATIVE_VIABILITY)
    assert curves[S.STATUS].iloc[0] in ("converged", "singular") and pd.isna(curves[S.REASON].iloc[0])


def test_a_knockout_effect_with_a_non_finite_response_is_refused():
    responses = _responses(np.array([0.5, 0.6, np.inf]), perturbation="knockout")
    metrics = compute_metrics(responses, fit_curves(responses, scale=S.RELATIVE_VIABILITY))
    effect = metrics[metrics[S.METRIC] == "rv_effect"].iloc[0]
    assert effect[S.STATUS] == "refused" and effect[S.REASON] == WHY and np.isnan(effect[S.VALUE])


def _hostile_wells() -> tuple[pd.DataFrame, list[dict]]:
    """The example with one treated well read at 1e308 (relative viability 5.6e302: finite, but its square
    is not) and one plate whose blanks read 0 and whose vehicle reads 1e-300 (relative viabilities of about
    1e303 to inf)."""
    wells = pd.read_parquet(example_path())
    drug = wells[(wells[S.ROLE] == "treated") & (wells[S.PERTURBATION_TYPE] == "drug")]
    first, last = drug.index[0], drug.index[-1]
    wells.loc[first, S.SIGNAL] = 1e308
    plate = wells[S.PLATE] == wells.loc[last, S.PLATE]
    wells.loc[plate & (wells[S.ROLE] == "blank"), S.SIGNAL] = 0.0
    wells.loc[plate & (wells[S.ROLE] == "vehicle"), S.SIGNAL] = 1e-300
    keys = [S.DATASET, S.CELL_LINE, S.PERTURBAGEN, S.READOUT]
    return wells, [
        {**wells.loc[i, keys].to_dict(), S.DURATION_H: wells.loc[i, S.TIME_H]} for i in (first, last)
    ]


def _rows(table: pd.DataFrame, key: dict) -> np.ndarray:
    mine = np.logical_and.reduce([table[k] == v for k, v in key.items()])
    return mine & (table[S.SCALE] == S.RELATIVE_VIABILITY).to_numpy()


def _check_refused(result, keys: list[dict]) -> None:
    curves, metrics = result.curves, result.metrics
    for key in keys:
        mine = _rows(curves, key)
        assert mine.sum() >= 1
        assert (curves.loc[mine, S.REASON] == WHY).all() and curves.loc[mine, "top"].isna().all()
        rows = _rows(metrics, key)
        assert rows.sum() >= 7
        assert (metrics.loc[rows, S.REASON] == WHY).all() and (metrics.loc[rows, S.STATUS] == "refused").all()
    assert not (metrics[S.VALUE].abs() > 1e100).any()  # no 'estimated' 1e301 AUC anywhere
    fitted = curves[["top", "bottom", "log10_ec50", "hill", "rss", "flat_value"]]
    assert not (fitted.abs() > 1e100).any().any()


def test_both_engines_refuse_curves_with_overflowing_responses(tmp_path):
    wells, keys = _hostile_wells()
    path = tmp_path / "wells.parquet"
    wells.to_parquet(path)
    _check_refused(run_pipeline(read_canonical(path)), keys)
    pytest.importorskip("dask")
    from doseatlas.scale import run_partitioned

    _check_refused(run_partitioned([path], read=read_canonical, options=RunOptions(), n_partitions=3), keys)


EXTREME = st.sampled_from([np.inf, -np.inf, 1e308, -1e200, 1.0000001e100, 1e100, -1e99, 1e30])


@settings(max_examples=15, deadline=None)
@given(
    values=st.lists(st.one_of(st.floats(-2.0, 2.0), EXTREME, st.just(np.nan)), min_size=18, max_size=18).map(
        np.array
    )
)
def test_a_curve_is_refused_exactly_when_a_response_is_beyond_1e100(values):
    responses = _responses(values)
    curves = fit_curves(responses, scale=S.RELATIVE_VIABILITY)
    metrics = compute_metrics(responses, curves)
    overflowing = bool((np.abs(values) > S.MAX_ABS_RESPONSE).any())
    assert (curves[S.REASON] == WHY).all() == overflowing
    assert (curves[S.STATUS] == "non_finite").all() == overflowing
    rv = metrics[metrics[S.SCALE] == S.RELATIVE_VIABILITY]
    assert (rv[S.REASON] == WHY).all() == overflowing and (rv[S.REASON] == WHY).any() == overflowing
    if overflowing:
        assert rv[[S.VALUE, S.LOWER, S.UPPER]].isna().all().all()
