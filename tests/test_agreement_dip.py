"""DIP rates (issue 12 part 5) against thunor 1.0.3 on its HTS007 screen (../shared/data/external/thunor_hts007),
and on simulated time courses against the model's exact net growth rate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from doseatlas import schemas as S
from doseatlas.metrics import MetricOptions
from doseatlas.timecourse import DIP_FIRST_TIME_H, DIP_RATE, DIP_SE, dip_curves_and_metrics, dip_rates

from conftest import external_dir


def hts007_reads(folder) -> pd.DataFrame:
    """HTS007's treated and control time courses as canonical well rows (one per well and read)."""
    wells = pd.read_csv(folder / "data" / "hts007_wells_treated.csv")
    assays = pd.read_csv(folder / "data" / "hts007_assays_treated.csv").merge(wells, on="well_id")
    ctrl = pd.read_csv(folder / "data" / "hts007_controls.csv")

    def rows(t, *, role, ptype, drug, dose):
        return pd.DataFrame(
            {
                S.DATASET: "hts007",
                S.PLATE: t["plate"],
                S.WELL: t["well_id"].astype(str),
                S.CELL_LINE: t["cell_line"],
                S.ROLE: role,
                S.PERTURBATION_TYPE: ptype,
                S.PERTURBAGEN: drug,
                S.CONCENTRATION: dose,
                S.READOUT: S.Readout.NUCLEI_COUNT.value,
                S.TIME_H: t["timepoint_hours"],
                S.SIGNAL: t["value"],
            }
        )

    treated = rows(assays, role="treated", ptype="drug", drug=assays["drug"], dose=assays["dose"])
    controls = rows(ctrl, role="vehicle", ptype=None, drug=None, dose=0.0)
    return pd.concat([treated, controls], ignore_index=True)


@pytest.fixture(scope="module")
def hts007():
    folder = external_dir("thunor_hts007")
    return folder, dip_rates(hts007_reads(folder))


@pytest.mark.external
@pytest.mark.parametrize("kind", ["treated", "controls"])
def test_per_well_dip_rates_equal_thunor(hts007, kind):
    folder, dip = hts007
    ref = pd.read_csv(folder / "reference" / f"thunor_dip_rates_{kind}.csv")
    ref[S.WELL] = ref["well_id"].astype(str)
    role = "treated" if kind == "treated" else "vehicle"
    both = ref.merge(dip[dip[S.ROLE] == role], on=[S.PLATE, S.WELL], suffixes=("_ref", ""))
    assert len(both) == len(ref)  # every well of thunor's table (4,061 treated, 226 control)
    np.testing.assert_allclose(both[DIP_RATE], both["dip_rate_ref"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(both[DIP_SE], both["dip_fit_std_err"], rtol=1e-7, atol=1e-12)  # measured 1e-8
    if kind == "treated":
        assert (both[DIP_FIRST_TIME_H] == both["dip_first_timepoint"]).all()


@pytest.mark.external
def test_dip_ll4_fits_agree_with_thunor_where_the_data_determine_them(hts007):
    folder, dip = hts007
    curves, metrics = dip_curves_and_metrics(dip, fit_options={}, metric_options=MetricOptions())
    assert len(curves) == 216 and set(metrics[S.METRIC]) == {
        "dip_ic50",
        "dip_ec50",
        "dip_einf",
        "dip_emax",
        "dip_auc",
    }
    ref = pd.read_csv(folder / "reference" / "thunor_fit_params_dip_LL4.csv")
    ref[["b", "c", "d", "e"]] = ref["popt"].str.split(";", expand=True).astype(float)
    control = dip[dip[S.ROLE] == "vehicle"].groupby(S.CELL_LINE)[DIP_RATE].mean()
    both = ref[
        ["cell_line", "drug", "b", "c", "d", "e", "fit_model", "min_dose_measured", "max_dose_measured"]
    ].merge(curves, left_on=["cell_line", "drug"], right_on=[S.CELL_LINE, S.PERTURBAGEN])
    sigmoid = both[(both["fit_model"] == "HillCurveLL4") & (both["selected"] == "sigmoid")]
    assert len(sigmoid) >= 185  # 191 measured: thunor LL4 on 195 curves, doseatlas sigmoid on 209
    # where thunor's EC50 lies inside the tested range (elsewhere its unbounded fits extrapolate to 1e15 M)
    inside = sigmoid[
        (sigmoid["e"] >= 10 * sigmoid["min_dose_measured"]) & (sigmoid["e"] <= sigmoid["max_dose_measured"])
    ]
    assert len(inside) >= 150
    top = inside["d"] / inside[S.CELL_LINE].map(control)
    assert np.median(np.abs(inside["log10_ec50"] - np.log10(inside["e"]))) < 0.08  # measured 0.060
    assert np.median(np.abs(inside["top"] - top)) < 0.012  # measured 0.008


def test_dip_rate_of_a_simulated_time_course_is_the_model_rate():
    from doseatlas.ingest.canonical import canonical_columns
    from doseatlas.simulate import CellLine, DatasetConfig, Drug, SimulationConfig, simulate
    from doseatlas.validate import validate_wells

    times = [6.0 * i for i in range(1, 17)]
    config = SimulationConfig(
        cell_lines=[CellLine(name="A", doubling_time_h=24.0), CellLine(name="B", doubling_time_h=40.0)],
        drugs=[Drug(name="d", ec50_div_m=1e-7, death_max_per_h=0.03, ec50_death_m=1e-6)],
        datasets=[
            DatasetConfig(
                name="tc", readout="nuclei_count", read_times_h=times, time_course=True, noiseless=True
            )
        ],
    )
    sim = simulate(config, seed=0)
    clean = validate_wells(canonical_columns(sim.wells, source="sim")).clean
    dip = dip_rates(clean)
    assert (dip["n_reads"] == len(times)).all(), "every well is read at every time"
    treated = dip[dip[S.ROLE] == "treated"]
    for line in ("A", "B"):
        rows = treated[treated[S.CELL_LINE] == line]
        curve = sim.curves[("tc", line, "drug", "d")]
        inhibition, death, _ = curve.effects(rows[S.CONCENTRATION].to_numpy(float))  # molar once validated
        k = curve.k0 * (1 - inhibition) - death  # exact net rate of the live cells (no lag)
        np.testing.assert_allclose(rows[DIP_RATE], k / np.log(2), rtol=1e-6, atol=1e-9)
    controls = dip[dip[S.ROLE] != "treated"]
    np.testing.assert_allclose(
        controls[DIP_RATE], 1 / controls[S.CELL_LINE].map({"A": 24.0, "B": 40.0}), rtol=1e-6
    )
    curves, metrics = dip_curves_and_metrics(dip, fit_options={}, metric_options=MetricOptions())
    assert (curves["selected"] == "sigmoid").all()
    assert (metrics.loc[metrics[S.METRIC] == "dip_emax", S.STATUS] == "estimated").all()


def test_a_time_course_run_has_dip_curves_and_metrics_in_both_engines(tmp_path):
    from doseatlas.ingest.canonical import read_canonical
    from doseatlas.pipeline import run_pipeline
    from doseatlas.scale import run_partitioned
    from doseatlas.simulate import DatasetConfig, SimulationConfig, simulate

    dataset = DatasetConfig(
        name="tc", readout="nuclei_count", read_times_h=[12, 24, 36, 48, 60, 72], time_course=True
    )
    sim = simulate(SimulationConfig(n_cell_lines=2, n_drugs=2, datasets=[dataset]), seed=3)
    path = tmp_path / "tc.csv"
    sim.wells.to_csv(path, index=False)
    memory = run_pipeline(read_canonical(path))
    dip_rows = memory.metrics[memory.metrics[S.SCALE] == S.DIP_RELATIVE]
    assert set(dip_rows[S.METRIC]) == {"dip_ic50", "dip_ec50", "dip_einf", "dip_emax", "dip_auc"}
    assert len(dip_rows) == 2 * 2 * 5 and set(dip_rows[S.DURATION_H]) == {72.0}
    assert (
        len(memory.dip)
        == sim.wells[sim.wells[S.ROLE].isin(["treated", "vehicle", "untreated"])]
        .groupby([S.PLATE, S.WELL])
        .ngroups
    )
    dask = run_partitioned([path], read=read_canonical, n_partitions=3)
    pd.testing.assert_frame_equal(dask.dip, memory.dip)
    for name, key in (("curves", [S.CURVE_ID]), ("metrics", [S.CURVE_ID, S.METRIC])):
        pd.testing.assert_frame_equal(
            getattr(dask, name).sort_values(key, ignore_index=True),
            getattr(memory, name).sort_values(key, ignore_index=True),
        )


@pytest.mark.external
def test_a_manifest_with_every_thunor_read_gives_thunors_dip_rates(tmp_path):
    """The user's path: the thunor-hts reader with ``time_h = "all"`` in a manifest, the whole pipeline."""
    from doseatlas.ingest._common import well_names
    from doseatlas.ingest.manifest import load_manifest, read_manifest
    from doseatlas.pipeline import run_pipeline

    folder = external_dir("thunor_hts007")
    manifest = tmp_path / "sources.toml"
    manifest.write_text(
        "[[source]]\n"
        f'path = "{(folder / "data" / "hts007_wells_treated.csv").as_posix()}"\n'
        'format = "thunor-hts"\n'
        'options = { time_h = "all" }\n'
    )
    table = read_manifest(load_manifest(manifest))
    result = run_pipeline(table)
    ref = pd.read_csv(folder / "reference" / "thunor_dip_rates_treated.csv")
    ref[S.WELL] = well_names(ref["well_num"].to_numpy(), n_columns=24)  # the reader's well names
    ref[S.PLATE] = ref[S.PLATE].astype(str)
    dip = result.dip[result.dip[S.ROLE] == "treated"]
    both = ref.merge(dip, on=[S.PLATE, S.WELL], suffixes=("_ref", ""))
    assert len(both) == len(ref) == 4061
    np.testing.assert_allclose(both[DIP_RATE], both["dip_rate_ref"], rtol=0, atol=1e-12)
    assert set(result.metrics.loc[result.metrics[S.SCALE] == S.DIP_RELATIVE, S.METRIC]) >= {
        "dip_ic50",
        "dip_auc",
    }
