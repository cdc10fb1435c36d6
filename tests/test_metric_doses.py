"""The drug rows grouped by (curve, concentration) once (doseatlas.metrics._doses): the per-dose steps of the
metrics give, from it, the same numbers to the bit as their own sorts of the rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from doseatlas import schemas as S
from doseatlas.metrics import uncertainty as U
from doseatlas.metrics._doses import DoseRuns


def _rows(seed: int, *, n_curves: int = 40, close_doses: bool = False):
    """Curve codes, concentrations (some missing, some 0) and responses (ties, NaN, inf) in shuffled order."""
    rng = np.random.default_rng(seed)
    doses = 10.0 ** -np.arange(4.0, 10.0)
    if close_doses:  # two concentrations one ulp apart: same log10
        doses = np.append(doses, np.nextafter(doses[0], 1.0))
    codes = np.repeat(np.arange(n_curves), 3 * len(doses))
    conc = np.tile(np.repeat(doses, 3), n_curves)
    conc[rng.random(len(conc)) < 0.03] = np.nan
    conc[rng.random(len(conc)) < 0.02] = 0.0
    y = np.round(rng.normal(0.5, 0.3, len(conc)), 2)  # rounded: tied responses within a dose
    y[rng.random(len(y)) < 0.05] = np.nan
    y[rng.random(len(y)) < 0.01] = np.inf
    shuffle = rng.permutation(len(conc))
    return codes[shuffle], conc[shuffle], y[shuffle]


def _curves(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    table = pd.DataFrame(
        {"top": 1.0, "bottom": rng.uniform(0, 0.3, n), "log10_ec50": rng.uniform(-8, -6, n), "hill": 1.2}
    )
    for a in U.PARAMS:
        table[f"cov_{a}_{a}"] = 0.01
    table.loc[::7, "cov_top_top"] = 0.0  # a fixed top
    return table


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)  # NaN equal to NaN, else exact


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("close_doses", [False, True])
def test_sandwich_terms_from_the_runs_are_those_of_the_sort(seed, close_doses):
    codes, conc, y = _rows(seed, close_doses=close_doses)
    runs = DoseRuns.of(codes, conc, rows=np.arange(len(codes)), keys=pd.DataFrame(index=range(40)))
    assert runs.log_distinct is not close_doses
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.log10(conc)
    curves = _curves(40, seed)
    offset = np.zeros(40)
    _same(
        U.sandwich(codes, x, y, curves, offset=offset, runs=runs).columns(),
        U.sandwich(codes, x, y, curves, offset=offset).columns(),
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_dose_runs_number_the_doses_as_a_sorted_groupby(seed):
    codes, conc, y = _rows(seed)
    runs = DoseRuns.of(codes, conc, rows=np.arange(len(codes)), keys=pd.DataFrame(index=range(40)))
    table = pd.DataFrame({"c": codes, "conc": conc, "y": y})
    grouped = table.groupby(["c", "conc"], sort=True, dropna=False)
    dose = np.empty(len(codes), dtype=np.int64)
    dose[runs.order] = runs.dose
    np.testing.assert_array_equal(dose, grouped.ngroup().to_numpy())
    keys = grouped.size().index.to_frame(index=False)
    np.testing.assert_array_equal(runs.curve, keys["c"].to_numpy())
    np.testing.assert_array_equal(runs.concentration, keys["conc"].to_numpy())
    ordered = y[runs.sorted_by(y)]
    expected = table.sort_values(["c", "conc", "y"], kind="stable", na_position="last")["y"].to_numpy()
    np.testing.assert_array_equal(ordered, expected)


def test_pure_error_is_the_replicate_sum_of_squares_about_the_dose_means():
    codes, conc, y = _rows(3)
    responses = pd.DataFrame(
        {
            S.DATASET: "d",
            S.CELL_LINE: np.char.add("c", (codes % 5).astype(str)),
            S.PERTURBATION_TYPE: S.PerturbationType.DRUG.value,
            S.PERTURBAGEN: np.char.add("p", (codes // 5).astype(str)),
            S.READOUT: "atp",
            S.TIME_H: 72.0,
            S.SERIES: "",
            S.SEEDING_DENSITY: np.nan,
            S.CONCENTRATION: conc,
            S.RELATIVE_VIABILITY: y,
        }
    )
    got = U._pure_error(responses, {S.RELATIVE_VIABILITY: 2.0}).set_index([S.CELL_LINE, S.PERTURBAGEN])
    finite = responses[np.isfinite(y)].assign(v=lambda t: t[S.RELATIVE_VIABILITY] / 2.0)
    by_dose = finite.groupby([S.CELL_LINE, S.PERTURBAGEN, S.CONCENTRATION], dropna=False)["v"]
    ss = by_dose.apply(lambda v: ((v - v.mean()) ** 2).sum()).groupby(level=[0, 1]).sum()
    np.testing.assert_allclose(got["_ss_pe"].reindex(ss.index), ss, rtol=1e-12)
    wells = finite.groupby([S.CELL_LINE, S.PERTURBAGEN]).size()
    np.testing.assert_array_equal(got["_n_wells"].reindex(wells.index), wells)


@pytest.mark.parametrize("n_groups", [50, 3])  # 3: groups of about 1000 values (sorted per column)
@pytest.mark.parametrize("method", ["mean", "median", "trimmed_mean", "std", "sum"])
def test_summaries_of_several_columns_are_those_of_each_column(n_groups, method):
    """summary_by_code of a 2-D array (one sort of the codes for every column) gives each column's own result
    to the bit."""
    from doseatlas._stats import summary_by_code

    rng = np.random.default_rng(5)
    codes = rng.integers(0, n_groups, 3000)
    codes[codes == n_groups - 1] = 0  # an empty group
    a = rng.normal(size=3000) * 10.0 ** rng.integers(-8, 8, 3000)  # sums that depend on their order
    b = np.where(rng.random(3000) < 0.1, np.nan, np.round(a, 1))
    got = summary_by_code(codes, np.stack([a, b]), n_groups, method=method)
    assert got.shape == (2, n_groups)
    for row, values in zip(got, (a, b), strict=True):
        np.testing.assert_array_equal(row, summary_by_code(codes, values, n_groups, method=method))


def test_percent_growth_on_the_gr_curve_shares_the_gr_sandwich_terms():
    """Every percent-growth key reads the GR curve with the GR responses: the metrics step computes the sandwich
    terms once and the GR scale takes them (compute._sandwich's ``known``); they are those the GR scale computes
    on its own, to the bit."""
    from doseatlas.ingest.canonical import canonical_columns
    from doseatlas.metrics import compute as C
    from doseatlas.normalize import normalize
    from doseatlas.pipeline import FitOptions, fit_all_scales
    from doseatlas.simulate import DatasetConfig, SimulationConfig, simulate
    from doseatlas.validate import validate_wells

    dataset = DatasetConfig(name="a", plate_format=96, read_times_h=[72.0], time_zero=True)
    wells = simulate(SimulationConfig(n_cell_lines=2, n_drugs=3, datasets=[dataset]), seed=3).wells
    responses = S.with_series(normalize(validate_wells(canonical_columns(wells, source="sim")).clean))
    curves = S.with_series(fit_all_scales(responses, options=FitOptions()))
    drugs = C.DrugCurves.of(responses)

    def keys(scale):
        return C._curves_for(
            scale, C._scale_keys(responses, scale, drugs=drugs), curves, responses, drugs=drugs
        )

    pg = keys(S.PERCENT_GROWTH)
    assert np.isfinite(pg[C.R0]).all()  # time zero on every plate: every key reads the GR curve
    known = {}
    C._sandwich(pg, drugs, S.PERCENT_GROWTH, known=known)
    assert S.GR in known
    gr = keys(S.GR)
    _same(C._sandwich(gr, drugs, S.GR, known=known).columns(), C._sandwich(gr, drugs, S.GR).columns())
