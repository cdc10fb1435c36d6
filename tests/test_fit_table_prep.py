"""The curves table's preparation (fit/table.py): curve numbering, point order and design summaries computed once
for every response scale give what a groupby / lexsort per scale gives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from doseatlas import schemas as S
from doseatlas.fit import fit_curves
from doseatlas.fit._order import sort_runs
from doseatlas.fit.table import _curve_numbers, _group_curves, fit_scales


def test_curve_numbers_are_the_sorted_groupby_numbers():
    rng = np.random.default_rng(0)
    for _ in range(60):
        n = int(rng.integers(1, 300))
        frame = pd.DataFrame(
            {
                S.DATASET: rng.choice(np.array(["a", "b", None, np.nan, "B"], dtype=object), n),
                S.CELL_LINE: pd.array(rng.choice(["x", "y", "z"], n), dtype="str"),
                S.PERTURBATION_TYPE: "drug",
                S.SEEDING_DENSITY: rng.choice([np.nan, 0.0, -0.0, 1000.0, 3.5], n),
                S.SERIES: rng.choice(np.array(["", "s1", None], dtype=object), n),
            }
        )
        expected = frame.groupby(list(frame.columns), sort=True, dropna=False).ngroup().to_numpy()
        numbers, strict = _curve_numbers(frame)
        np.testing.assert_array_equal(numbers, expected)
        density, missing = frame[S.SEEDING_DENSITY], frame[S.DATASET][frame[S.DATASET].isna()]
        same = not np.signbit(density[density == 0]).any() and len(set(map(type, missing))) <= 1
        assert strict == same, "None and NaN, -0.0 and 0.0 group together but are not the same value"
    text_only = frame.assign(**{S.DATASET: "a", S.SEEDING_DENSITY: 1.0, S.SERIES: ""})
    assert _curve_numbers(text_only)[1]


def test_sorting_the_runs_is_the_lexsort():
    rng = np.random.default_rng(1)
    for trial in range(100):
        n = int(rng.integers(1, 2000))
        curve = rng.integers(0, int(rng.integers(1, 40)), n)
        x = rng.choice([np.nan, -np.inf, -8.0, -7.0, -6.0], n)
        y = rng.choice([np.nan, 0.0, -0.0, 1.0, np.inf, -np.inf, 0.5], n) if trial % 2 else rng.normal(size=n)
        base = np.lexsort((x, curve))
        key = np.column_stack([curve[base], np.nan_to_num(x[base], nan=99.0)])
        bounds = np.append(np.flatnonzero(np.r_[True, (key[1:] != key[:-1]).any(axis=1)]), n)
        np.testing.assert_array_equal(sort_runs(base, bounds, y), np.lexsort((y, x, curve)))


def _responses(rng: np.random.Generator, *, lines: int = 3) -> pd.DataFrame:
    conc = 10.0 ** np.linspace(-9, -5, 7)
    rows = []
    for line in range(lines):
        for drug in ("d1", "d2"):
            for rep in range(3):
                for c in conc:
                    rv = 0.2 + 0.8 / (1 + (c / 1e-7) ** (1 + line)) + rng.normal(0, 0.03)
                    rows.append({S.DATASET: "ds", S.CELL_LINE: f"L{line}", S.PERTURBATION_TYPE: "drug",
                                 S.PERTURBAGEN: drug, S.READOUT: "atp", S.TIME_H: 72.0, S.CONCENTRATION: c,
                                 S.REPLICATE: rep, S.SEEDING_DENSITY: 1000.0, S.RELATIVE_VIABILITY: rv,
                                 S.PERCENT_GROWTH: 100 * rv - rng.uniform(0, 5), S.GR: rv - 0.1})  # fmt: skip
    table = pd.DataFrame(rows)
    table.loc[table.sample(frac=0.1, random_state=2).index, S.GR] = np.nan
    return table


def test_fitting_every_scale_at_once_is_fitting_each_scale():
    responses = _responses(np.random.default_rng(3))
    together = fit_scales(responses, models=dict.fromkeys(S.RESPONSE_SCALES))
    shuffled = fit_scales(responses.sample(frac=1.0, random_state=4), models=dict.fromkeys(S.RESPONSE_SCALES))
    for scale, table, again in zip(S.RESPONSE_SCALES, together, shuffled, strict=True):
        pd.testing.assert_frame_equal(table, fit_curves(responses, scale=scale), check_exact=True)
        pd.testing.assert_frame_equal(again, table, check_exact=True)


def _design(responses: pd.DataFrame, scale: str) -> pd.DataFrame:
    """n_doses, n_replicates, conc range and replicate SD per curve by a groupby on (curve key, concentration)."""
    keys = [k for k in S.CURVE_KEY if k not in (S.DURATION_H, S.SERIES)]
    used = responses[responses[scale].notna() & (responses[S.CONCENTRATION] >= 0)]
    by_dose = used.groupby([*keys, S.CONCENTRATION])[scale].agg(["size", "std"]).reset_index()
    per_curve = by_dose.groupby(keys).agg(
        n_doses=("size", "size"), n_replicates=("size", "max"), replicate_sd=("std", "mean")
    )
    ranges = used[used[S.CONCENTRATION] > 0].groupby(keys)[S.CONCENTRATION].agg(["min", "max"])
    return per_curve.join(ranges).reset_index(drop=True)


@pytest.mark.parametrize("scale", [S.RELATIVE_VIABILITY, S.GR])
def test_two_concentrations_with_one_log10_are_two_doses(scale):
    responses = _responses(np.random.default_rng(5), lines=2)
    low = responses[S.CONCENTRATION].min()
    twin = np.nextafter(low, np.inf)
    assert twin != low and np.log10(twin) == np.log10(low)
    hit = (responses[S.CONCENTRATION] == low) & (responses[S.REPLICATE] == 0)
    responses.loc[hit, S.CONCENTRATION] = twin
    assert not _group_curves(responses, scales=(scale,), keys=S.CURVE_KEY).distinct_doses
    curves = fit_curves(responses, scale=scale)
    expected = _design(responses, scale)
    assert curves["n_doses"].tolist() == expected["n_doses"].tolist()
    assert curves["n_doses"].max() == 8, "the twin concentrations are two doses"
    assert curves["n_replicates"].tolist() == expected["n_replicates"].tolist()
    assert curves["conc_min"].tolist() == expected["min"].tolist()
    assert curves["conc_max"].tolist() == expected["max"].tolist()
    np.testing.assert_allclose(curves["replicate_sd"], expected["replicate_sd"], rtol=1e-12)


def test_a_curve_whose_rows_hold_unequal_key_values_takes_them_from_its_first_point():
    responses = _responses(np.random.default_rng(6), lines=1)
    responses[S.SEEDING_DENSITY] = 0.0
    responses.loc[responses[S.CONCENTRATION] == responses[S.CONCENTRATION].min(), S.SEEDING_DENSITY] = -0.0
    grouped = _group_curves(responses, scales=(S.RELATIVE_VIABILITY,), keys=S.CURVE_KEY)
    assert grouped.shared_keys is None, "-0.0 and 0.0 are one curve, not one value"
    curves = fit_curves(responses, scale=S.RELATIVE_VIABILITY)
    assert len(curves) == 2
    assert np.signbit(curves[S.SEEDING_DENSITY].to_numpy()).all(), "the first point is at the lowest dose"
