"""The vectorized paths of the stages before metrics give the numbers of their reference definitions, bit for bit.

Each fast path (grouped numpy, one sort, text made once per distinct value) is compared with the plain definition
it replaces, on small tables that hold the awkward values: NaN, -0.0, infinities, ties, empty groups.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from doseatlas import schemas as S
from doseatlas._canon import stripped_text
from doseatlas._stats import group_summary
from doseatlas.fit import table as T
from doseatlas.spatial import nanmedian
from doseatlas.validate import validate_wells


@pytest.mark.parametrize("shape", [(40, 16, 24), (3, 8, 12), (5, 2, 5), (0, 4, 4), (4, 5, 1)])
def test_nanmedian_is_numpys(shape):
    rng = np.random.default_rng(sum(shape))
    grid = rng.normal(size=shape)
    grid[rng.random(shape) < 0.4] = np.nan
    if shape[0] > 2:
        grid[1] = np.nan  # a plate without any value
        grid[2, :, 0] = np.inf
        grid[0, 0, :] = -np.inf
    for axis in (1, 2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            expected = np.nanmedian(grid, axis=axis)
        np.testing.assert_array_equal(nanmedian(grid, axis=axis), expected)


def _reference_ids(table: pd.DataFrame, keys: tuple[str, ...], scale: str) -> list[str]:
    series = keys.index(S.SERIES) if S.SERIES in keys else None
    seeding = keys.index(S.SEEDING_DENSITY) if S.SEEDING_DENSITY in keys else None
    rows = table[list(keys)].itertuples(index=False, name=None)
    return [T.curve_id(T._id_key(row, series, seeding), scale) for row in rows]


def test_curve_ids_are_those_of_curve_id():
    table = pd.DataFrame(
        {
            S.DATASET: ["a", "b", None, "c", "a"],
            S.CELL_LINE: ["x", np.nan, "z", "", "x"],
            S.PERTURBATION_TYPE: "drug",
            S.PERTURBAGEN: ["p", "p", "q", "q", "p"],
            S.READOUT: "atp",
            S.DURATION_H: [72.0, np.nan, 1e20, 0.1, 72.0],
            S.SERIES: ["", "s", None, "1", ""],
            S.SEEDING_DENSITY: [np.nan, 100.0, 2000.0, np.nan, 0.5],
        }
    )
    key_sets = [S.CURVE_KEY, (S.SERIES,), (S.SEEDING_DENSITY, S.DATASET), (S.SERIES, S.SEEDING_DENSITY)]
    for frame in (table, table.astype({S.DATASET: "str", S.SERIES: "str"}), table.iloc[:0]):
        for keys in key_sets:
            assert T._curve_ids(frame, keys, "gr") == _reference_ids(frame, keys, "gr")


def test_dose_spread_is_group_summary():
    rng = np.random.default_rng(3)
    n = 400
    used = pd.DataFrame(
        {
            "curve": rng.integers(0, 12, n),
            S.CONCENTRATION: rng.choice([0.0, -0.0, 1e-9, 1e-6, 3e-6, 1e-6 + 1e-22], n),
            "y": rng.choice([0.1, 0.2, 0.30000000000000004, 1e10, -3.0, 0.7], n)
            * rng.choice([1, 1.0000001], n),
        }
    )
    key = ["curve", S.CONCENTRATION]
    std = group_summary(used, key, "y", method="std").to_numpy()
    expected = used.groupby(key, sort=True).size().rename("count").reset_index()
    arrays = (used[c].to_numpy() for c in ("curve", S.CONCENTRATION, "y"))
    curve, count, got = T._dose_spread(*arrays, presorted=False)
    np.testing.assert_array_equal(curve, expected["curve"].to_numpy())
    np.testing.assert_array_equal(count, expected["count"].to_numpy())
    np.testing.assert_array_equal(got, std)


def _wells(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    signal = np.concatenate([rng.lognormal(8, 3, n - 6), [np.nan, -0.0, 2.0**53, 1e-300, 123.0, 5e-324]])
    dose = np.where(np.arange(n) % 7 == 0, np.nan, rng.choice([1.0, 0.1, -0.0, 1e-3], n))
    time = np.where(np.arange(n) % 11 == 0, np.inf, 72.0)
    dose[-6:], time[-6:] = 1.0, 72.0  # the odd signals on rows without another problem
    return pd.DataFrame(
        {
            S.DATASET: "d",
            S.PLATE: "p1",
            S.WELL: [f"{chr(65 + i // 24)}{i % 24 + 1:02d}" for i in range(n)],
            S.CELL_LINE: " c1 ",
            S.ROLE: np.where(np.arange(n) % 5 == 1, "vehicle", "treated"),
            S.READOUT: "atp",
            S.PERTURBATION_TYPE: "drug",
            S.PERTURBAGEN: "x",
            S.CONCENTRATION: dose,
            S.CONCENTRATION_UNIT: "uM",
            S.TIME_H: time,
            S.SIGNAL: signal,
            S.SOURCE_FILE: "f.csv",
            S.SOURCE_LINE: np.arange(n) + 2,
        }
    )


def test_float_columns_validate_as_their_text():
    """A float column is parsed as read; the same values given as their canonical text validate the same."""
    numbers = _wells(60)
    floats = [S.CONCENTRATION, S.TIME_H, S.SIGNAL]
    text = numbers.assign(**{c: stripped_text(numbers[c]) for c in floats})
    fast, slow = validate_wells(numbers), validate_wells(text)
    assert len(fast.ledger) > 0  # missing, infinite and zero-dose rows are rejected in both
    pd.testing.assert_frame_equal(fast.clean, slow.clean, check_exact=True)
    pd.testing.assert_frame_equal(fast.ledger, slow.ledger, check_exact=True)
    for column in floats:  # (equal frames may still differ in the sign of a zero)
        np.testing.assert_array_equal(np.signbit(fast.clean[column]), np.signbit(slow.clean[column]))
    assert (fast.clean[S.SIGNAL] == 0).any()  # the -0.0 signal is used, and read as 0.0 as its text reads
