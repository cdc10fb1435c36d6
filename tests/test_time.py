"""Time (issue 12): control growth, conversion to a target duration, time-dependent drugs, and the
simulator's slow drugs and confluence, all against the simulator's exact truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.integrate import solve_ivp

from doseatlas import growth as G
from doseatlas import schemas as S
from doseatlas.ingest.canonical import canonical_columns
from doseatlas.metrics.compute import pg_level
from doseatlas.metrics.convert import ConversionOptions, gr_level, rv_to_gr_level
from doseatlas.pipeline import RunOptions, run_pipeline
from doseatlas.simulate import CellLine, DatasetConfig, Drug, SimulationConfig, simulate
from doseatlas.simulate.model import population

KEY = [S.DATASET, S.CELL_LINE, S.PERTURBAGEN]
LINES = [
    CellLine(name="A", doubling_time_h=20.0),
    CellLine(name="B", doubling_time_h=30.0),
    CellLine(name="C", doubling_time_h=45.0),
]
DRUGS = [
    Drug(name="stat", ec50_div_m=1e-7, hill=1.2),
    Drug(name="tox", ec50_div_m=3e-7, death_max_per_h=0.05, ec50_death_m=1e-6, hill=1.0),
    Drug(name="part", emax_div=0.7, ec50_div_m=5e-8, hill=1.5),
    Drug(name="kill", ec50_div_m=1e-7, death_max_per_h=0.08, ec50_death_m=2e-7, hill=2.0),
]


def _run(config: SimulationConfig, *, seed: int = 0, targets=(72.0,)):
    sim = simulate(config, seed=seed)
    options = RunOptions(conversion=ConversionOptions(targets=tuple(targets)))
    return sim, run_pipeline(canonical_columns(sim.wells, source="sim"), options=options)


def _config(*, lines=LINES, drugs=DRUGS, read_times=(72.0, 96.0), **dataset) -> SimulationConfig:
    dataset = {"time_zero": True, **dataset}
    ds = DatasetConfig(name="sim", readout="nuclei_count", read_times_h=list(read_times), **dataset)
    return SimulationConfig(cell_lines=lines, drugs=drugs, datasets=[ds])


# ------------------------------------------------------------------------------------------------ growth
def test_growth_table_recovers_the_doubling_time():
    _, result = _run(_config(noiseless=True))
    growth = result.growth.set_index([S.CELL_LINE, S.DURATION_H])
    for line in LINES:
        for t in (72.0, 96.0):
            assert growth.loc[(line.name, t), S.DOUBLING_TIME_H] == pytest.approx(
                line.doubling_time_h, rel=1e-6
            )
    assert (result.growth[G.FLAGS] == "").all()


def test_growth_interval_covers_the_truth_with_noise():
    _, result = _run(_config(replicates=3), seed=4)
    truth = result.growth[S.CELL_LINE].map({c.name: c.doubling_time_h for c in LINES})
    inside = (result.growth[S.LOWER] <= truth) & (truth <= result.growth[S.UPPER])
    assert inside.mean() >= 0.8, result.growth


def test_confluent_control_is_flagged_not_exponential_and_not_converted():
    lines = [*LINES[:2], CellLine(name="full", doubling_time_h=20.0, capacity_cells=8000.0)]
    _, result = _run(_config(lines=lines, read_times=(48.0, 72.0, 96.0)), targets=(72.0,))
    flagged = result.growth.loc[result.growth[G.FLAGS].str.contains(G.NOT_EXPONENTIAL), S.CELL_LINE]
    assert set(flagged) == {"full"}
    conv = result.converted
    full = conv[conv[S.CELL_LINE] == "full"]
    assert len(full) and (full[S.REASON] == S.RefusalReason.GROWTH_NOT_EXPONENTIAL.value).all()
    assert not (
        conv[conv[S.CELL_LINE] != "full"][S.REASON] == S.RefusalReason.GROWTH_NOT_EXPONENTIAL.value
    ).any()


def test_no_net_growth_and_slow_growth_are_flagged():
    lines = [CellLine(name="slow", doubling_time_h=200.0), CellLine(name="ok", doubling_time_h=20.0)]
    _, result = _run(_config(lines=lines, drugs=DRUGS[:1], noiseless=True))
    flags = result.growth.set_index(S.CELL_LINE)[G.FLAGS]
    assert G.LONGER_THAN_ASSAY in flags["slow"].iloc[0]
    assert flags["ok"].iloc[0] == ""


def test_capacity_closed_form_solves_the_logistic_ode():
    n0, k0, lag, inhibition, death, capacity = 2000.0, np.log(2) / 24, 3.0, 0.3, 0.01, 30000.0

    def rhs(t, y):
        kd, d = (k0, 0.0) if t < lag else (k0 * (1 - inhibition), death)
        return [kd * y[0] * (1 - y[0] / capacity) - d * y[0], d * y[0]]

    ode = solve_ivp(rhs, [0, 96], [n0, 0.0], rtol=1e-11, atol=1e-9).y[:, -1]
    live, dead = population(
        n0=n0, k0=k0, lag_h=lag, inhibition=inhibition, death_per_h=death, time_h=96.0, capacity=capacity
    )
    np.testing.assert_allclose([live, dead], ode, rtol=1e-7)


# -------------------------------------------------------------------------------------------- conversion
def test_levels_reproduce_the_exponential_model():
    r0_t, t, h = 0.25, 96.0, 72.0
    r0_h = r0_t ** (h / t)
    # RV_H = RV_T^(H/T) and GR = 2^(1 + log2 RV / log2(1/r0)) - 1 at every duration
    rv_t = np.linspace(0.05, 0.95, 19)
    gr = 2.0 ** (1.0 + np.log2(rv_t) / np.log2(1.0 / r0_t)) - 1.0
    rv_h = rv_t ** (h / t)
    np.testing.assert_allclose(
        2.0 ** (1.0 + np.log2(rv_h) / np.log2(1.0 / r0_h)) - 1.0, gr, rtol=1e-12, atol=1e-14
    )
    assert gr_level("ic50", np.array([r0_h]))[0] == pytest.approx(rv_to_gr_level(0.5, r0_h))
    assert gr_level("gr50", np.array([r0_h]))[0] == 0.5
    # TGI is GR = 0 at any duration; PG = -50 is RV = r0/2
    assert gr_level("tgi", np.array([r0_h]))[0] == pytest.approx(0.0, abs=1e-12)
    assert rv_to_gr_level(pg_level(-0.5, r0_h), r0_h) == pytest.approx(gr_level("lc50", np.array([r0_h]))[0])


def test_noiseless_conversion_96_to_72_recovers_the_72_h_truth():
    sim, result = _run(_config(noiseless=True))
    truth, conv = sim.truth, result.converted
    for metric in ("ic50", "gi50", "lc50", "gr50"):
        t72 = truth[(truth[S.METRIC] == metric) & (truth[S.DURATION_H] == 72)]
        c = conv[(conv[S.METRIC] == metric) & (conv["source_duration_h"] == 96)]
        both = t72.merge(c, on=KEY, suffixes=("_t", "_c"))
        est = both[(both["status_t"] == "estimated") & (both["status_c"] == "estimated")]
        assert len(est) >= 4, metric
        error = np.abs(np.log10(est["value_c"] / est["value_t"]))
        assert np.median(error) < 0.03, (metric, error.describe())
        assert (both["status_t"] == both["status_c"]).mean() >= 0.9


def test_conversion_shrinks_the_72_vs_96_h_discrepancy():
    sim, result = _run(_config(replicates=3, cv=0.03), seed=2)
    conv, metrics, truth = result.converted, result.metrics, sim.truth
    for metric in ("ic50", "lc50"):
        t72 = truth[(truth[S.METRIC] == metric) & (truth[S.DURATION_H] == 72)][[*KEY, S.VALUE]]
        m96 = metrics[(metrics[S.METRIC] == metric) & (metrics[S.DURATION_H] == 96)][[*KEY, S.VALUE]]
        c = conv[(conv[S.METRIC] == metric) & (conv["source_duration_h"] == 96)][[*KEY, S.VALUE]]
        d = t72.merge(m96, on=KEY, suffixes=("", "_96")).merge(c, on=KEY, suffixes=("", "_c"))
        d = d[np.isfinite(d[[S.VALUE, "value_96", "value_c"]]).all(axis=1)]
        raw = np.median(np.abs(np.log10(d["value_96"] / d[S.VALUE])))
        converted = np.median(np.abs(np.log10(d["value_c"] / d[S.VALUE])))
        assert converted < 0.2 * raw + 0.03, (metric, raw, converted)


def _shift_removed(sim, result, metric: str) -> float:
    """1 - |median signed log10 error of converted 96->72 h| / |that of the measured 96 h value| (vs 72 h truth)."""
    truth, metrics, conv = sim.truth, result.metrics, result.converted
    t72 = truth[(truth[S.METRIC] == metric) & (truth[S.DURATION_H] == 72)][[*KEY, S.VALUE]]
    m96 = metrics[(metrics[S.METRIC] == metric) & (metrics[S.DURATION_H] == 96)][[*KEY, S.VALUE]]
    c = conv[(conv[S.METRIC] == metric) & (conv["source_duration_h"] == 96)][[*KEY, S.VALUE]]
    d = t72.merge(m96, on=KEY, suffixes=("", "_96")).merge(c, on=KEY, suffixes=("", "_c"))
    d = d[np.isfinite(d[[S.VALUE, "value_96", "value_c"]]).all(axis=1)]
    assert len(d) >= 10, metric
    raw = np.median(np.log10(d["value_96"] / d[S.VALUE]))
    left = np.median(np.log10(d["value_c"] / d[S.VALUE]))
    return 1 - abs(left) / abs(raw)


def test_conversion_removes_the_systematic_72_vs_96_h_shift():
    """Random cell lines and drugs with onset lags 0-6 h, well CV 0.05 + plate noise (scripts/time_acceptance.py)."""
    ds = DatasetConfig(name="sim", readout="atp", read_times_h=[72, 96], time_zero=True, cv=0.05)
    sim, result = _run(SimulationConfig(n_cell_lines=8, n_drugs=10, datasets=[ds]), seed=0)
    removed = {m: _shift_removed(sim, result, m) for m in ("ic50", "gi50", "lc50")}
    assert removed["ic50"] >= 0.8 and removed["gi50"] >= 0.8, removed
    assert removed["lc50"] >= 0.75, removed  # what is left is the onset lag (docs/time.md)


def test_without_onset_lag_the_conversion_removes_the_whole_shift():
    """Noise-free, lag-free plates: the exponential model is the truth, so nothing of the shift is left."""
    lines = [
        CellLine(name=f"L{i}", doubling_time_h=td) for i, td in enumerate([18, 22, 26, 30, 36, 42, 50, 60])
    ]
    sim, result = _run(_config(lines=lines, noiseless=True))
    for metric in ("ic50", "gi50", "lc50"):
        assert _shift_removed(sim, result, metric) >= 0.95, metric


def test_gr50_is_duration_invariant_and_its_conversion_is_the_measured_value():
    sim, result = _run(_config(noiseless=True))
    truth = sim.truth[sim.truth[S.METRIC] == "gr50"].pivot_table(
        index=[S.CELL_LINE, S.PERTURBAGEN], columns=S.DURATION_H, values=S.VALUE
    )
    np.testing.assert_allclose(truth[72.0], truth[96.0], rtol=1e-9)
    measured = result.metrics[(result.metrics[S.METRIC] == "gr50") & (result.metrics[S.DURATION_H] == 96)]
    conv = result.converted[
        (result.converted[S.METRIC] == "gr50") & (result.converted["source_duration_h"] == 96)
    ]
    both = measured.merge(conv, on=[S.CELL_LINE, S.PERTURBAGEN], suffixes=("_m", "_c"))
    est = both[both["status_m"] == "estimated"]
    np.testing.assert_allclose(est["value_c"], est["value_m"], rtol=1e-12)


def test_converted_rows_say_what_they_are_and_refuse_what_the_model_cannot_carry():
    _, result = _run(_config(noiseless=True), targets=(72.0, 400.0))
    conv = result.converted
    assert set(conv["basis"]) == {"converted"}
    at72 = conv[conv[S.DURATION_H] == 72.0]
    assert set(at72["source_duration_h"]) == {96.0}  # the measured 72 h curves are not "converted" to 72 h
    assert at72[S.DOUBLING_TIME_H].notna().all()
    far = conv[conv[S.DURATION_H] == 400.0]
    assert (far[S.REASON] == S.RefusalReason.TARGET_DURATION_OUT_OF_RANGE.value).all()
    _, no_t0 = _run(_config(time_zero=False, noiseless=True))
    assert (no_t0.converted[S.REASON] == S.RefusalReason.NO_GROWTH_ESTIMATE.value).all()


# ------------------------------------------------------------------------------------ time-dependent drugs
def test_planted_slow_drugs_are_flagged_time_dependent_and_not_converted():
    slow = [Drug(name=f"slow{i}", ec50_div_m=1e-7 * 3**i, hill=1.5, onset_h=36.0) for i in range(3)]
    fast = [Drug(name=f"fast{i}", ec50_div_m=1e-7 * 3**i, hill=1.5) for i in range(3)]
    sim, result = _run(_config(drugs=slow + fast, read_times=(48.0, 120.0), replicates=3), targets=(72.0,))
    dep = result.time_dependence
    rate = dep.assign(slow=dep[S.PERTURBAGEN].str.startswith("slow")).groupby("slow")["time_dependent"].mean()
    assert rate[True] >= 0.8, dep
    assert rate[False] == 0.0, dep
    flagged = dep.loc[dep["time_dependent"], [S.CELL_LINE, S.PERTURBAGEN]]
    conv = result.converted.merge(flagged, on=[S.CELL_LINE, S.PERTURBAGEN])
    assert len(conv) and (conv[S.REASON] == S.RefusalReason.TIME_DEPENDENT.value).all()
    # every metric row of a time-dependent pair carries the flag, and no other row does
    marked = result.metrics.merge(flagged.assign(_td=True), on=[S.CELL_LINE, S.PERTURBAGEN], how="left")
    assert (marked[S.FLAGS].str.contains("time_dependent") == marked["_td"].eq(True)).all()
    # the truth agrees that these drugs' GR50 falls with time (the model's exponential assumption fails)
    gr50 = sim.truth[(sim.truth[S.METRIC] == "gr50") & sim.truth[S.PERTURBAGEN].str.startswith("slow")]
    value = gr50[S.VALUE].fillna(gr50[S.LOWER])  # right-censored: at least the bound
    wide = gr50.assign(v=value).pivot_table(
        index=[S.CELL_LINE, S.PERTURBAGEN], columns=S.DURATION_H, values="v"
    )
    assert (np.log10(wide[48.0] / wide[120.0]) > 0.3).mean() >= 0.8


def test_time_tables_are_written_with_the_run(tmp_path):
    from typer.testing import CliRunner

    from doseatlas.cli import app

    sim = simulate(_config(drugs=DRUGS[:2]), seed=1)
    wells = tmp_path / "wells.parquet"
    sim.wells.to_parquet(wells)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(wells), "--out", str(out), "--target-duration", "72"])
    assert result.exit_code == 0, result.output
    conv = pd.read_parquet(out / "converted.parquet")
    assert len(conv) and set(conv[S.DURATION_H]) == {72.0}
    assert len(pd.read_parquet(out / "growth.parquet")) == 6
    bad = CliRunner().invoke(
        app, ["run", str(wells), "--out", str(tmp_path / "o2"), "--target-duration", "-1"]
    )
    assert bad.exit_code == 2


def test_export_at_a_duration_uses_measured_rows_and_converted_ones_where_not_measured(tmp_path):
    from typer.testing import CliRunner

    from doseatlas.cli import app

    run = tmp_path / "run"
    assert CliRunner().invoke(app, ["run", "--out", str(run), "--target-duration", "72"]).exit_code == 0
    out = tmp_path / "export"
    result = CliRunner().invoke(
        app, ["export", str(run), "--out", str(out), "--duration", "72", "--metric", "gi50"]
    )
    assert result.exit_code == 0, result.output
    labels = pd.read_parquet(out / "labels.parquet")
    source = labels[labels[S.DATASET] != "consensus"]
    assert set(source[S.DURATION_H]) == {72.0}
    # lab_b measured 72 h itself: its rows are measured; nothing converted duplicates them
    assert set(source.loc[source[S.DATASET] == "lab_b", "basis"]) == {"measured"}
    assert not source.duplicated([S.DATASET, S.CELL_LINE, S.PERTURBAGEN, S.METRIC]).any()
    bad = CliRunner().invoke(app, ["export", str(run), "--out", str(tmp_path / "e2"), "--duration", "0"])
    assert bad.exit_code == 2


def test_converted_rows_fill_a_duration_a_data_set_did_not_measure():
    from doseatlas.io.export import with_converted

    _, result = _run(_config(read_times=(96.0,), noiseless=True), targets=(72.0,))
    rows = with_converted(result.metrics, result.converted, duration_h=72.0)
    at72 = rows[rows[S.DURATION_H] == 72.0]
    assert len(at72) and set(at72["basis"]) == {"converted"} and set(at72["source_duration_h"]) == {96.0}


def test_converted_intervals_use_the_measured_crossings_interval_machinery():
    """A converted crossing's interval is built as a measured one's (issue 14: noise model, dose-clustered
    sandwich, local misfit, plate controls): gr50 is duration-invariant, so its converted row (96 h -> 72 h) is
    the crossing of the same GR curve at the same level and must carry the measured 96 h interval exactly (the
    earlier uniform-factor interval differed on most curves)."""
    _, result = _run(_config(replicates=3, cv=0.03), seed=3)
    measured = result.metrics[(result.metrics[S.METRIC] == "gr50") & (result.metrics[S.DURATION_H] == 96.0)]
    conv = result.converted[result.converted[S.METRIC] == "gr50"]
    both = measured.merge(conv, on=[*KEY, S.METRIC], suffixes=("", "_conv"))
    both = both[(both[S.STATUS] == "estimated") & np.isfinite(both[S.UPPER])]  # not opened near a plateau
    assert len(both) >= 6 and (both["status_conv"] == "estimated").all()
    np.testing.assert_allclose(both["value_conv"], both[S.VALUE], rtol=1e-9)
    np.testing.assert_allclose(both["lower_conv"], both[S.LOWER], rtol=1e-9)
    np.testing.assert_allclose(both["upper_conv"], both[S.UPPER], rtol=1e-9)


@pytest.mark.slow
def test_converted_intervals_cover_the_truth_at_the_target_duration():
    """96 h -> 72 h and 72 h -> 96 h conversions of random cell lines and drugs (the simulator's default plate,
    seeding and additive noise, well CV 0.05, onset lags 0-6 h) against the truth at the target duration:
    with the measured crossings' interval, ic50, gi50 and gr50 cover 0.952-0.976 (the earlier uniform-factor
    interval: 0.927-0.942). lc50 and tgi (0.916-0.942 then; 0.959-0.988 re-measured on seeds 0-2 at CV
    0.02 / 0.05, docs/time.md) keep the exponential model's own bias (the onset lag)."""
    frames = []
    for seed in (0, 1):
        ds = DatasetConfig(name="sim", readout="atp", read_times_h=[72, 96], time_zero=True, cv=0.05)
        sim = simulate(SimulationConfig(n_cell_lines=8, n_drugs=10, datasets=[ds]), seed=seed)
        options = RunOptions(conversion=ConversionOptions(targets=(72.0, 96.0)))
        result = run_pipeline(canonical_columns(sim.wells, source="sim"), options=options)
        key = [*KEY, S.METRIC, S.DURATION_H]
        truth = sim.truth[[*key, S.STATUS, S.VALUE]].rename(columns={S.STATUS: "st_true", S.VALUE: "truth"})
        frames.append(result.converted.merge(truth, on=key))
    rows = pd.concat(frames)
    rows = rows[(rows[S.STATUS] == "estimated") & (rows["st_true"] == "estimated")]
    inside = (rows[S.LOWER] <= rows["truth"]) & (rows["truth"] <= rows[S.UPPER])
    coverage = inside.groupby(rows[S.METRIC]).mean()
    assert (rows[S.METRIC].value_counts()[["ic50", "gi50", "gr50"]] >= 250).all()
    assert coverage[["ic50", "gi50", "gr50"]].between(0.94, 0.985).all(), coverage
    assert coverage[["lc50", "tgi"]].min() >= 0.88, coverage
