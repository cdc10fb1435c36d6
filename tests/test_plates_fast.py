"""The plate-level steps on integer codes (issue 15) give the numbers of the pandas / numpy code they replace."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from doseatlas.qc import PLATE_KEY, combined_codes, key_table, run_codes
from doseatlas.spatial import HUBER_K, N_PASSES, _backfit, _median, _median_near, group_medians


def _table(seed: int, n: int = 3000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    plate = np.sort(rng.integers(0, 40, n))  # plates in runs, as read
    frame = pd.DataFrame(
        {
            "dataset": np.where(plate < 20, "a", "b"),
            "plate": np.array([f"p{p:02d}" for p in range(40)], dtype=object)[plate],
            "cell_line": np.array(["x", "y", None], dtype=object)[plate % 3],
            "time_h": np.where(plate % 7 == 0, np.nan, 24.0 * (1 + plate % 2)),
            "readout": "atp",
            "drug": rng.choice(np.array(["d1", "d2", np.nan], dtype=object), n),
            "conc": rng.choice([0.0, 1e-6, np.nan], n),
        }
    )
    frame.loc[rng.choice(n, 50, replace=False), "plate"] = "p05"  # a plate in several runs
    return frame


@pytest.mark.parametrize("seed", [0, 1])
def test_run_codes_and_key_table_are_a_sorted_groupby(seed):
    frame = _table(seed)
    codes, firsts = run_codes(frame, PLATE_KEY)
    grouped = frame.groupby(PLATE_KEY, dropna=False, sort=True)
    np.testing.assert_array_equal(codes, grouped.ngroup().to_numpy())
    pd.testing.assert_frame_equal(key_table(firsts), grouped.size().index.to_frame(index=False))
    shuffled = frame.sample(frac=1.0, random_state=seed)
    np.testing.assert_array_equal(
        run_codes(shuffled, PLATE_KEY)[0], shuffled.groupby(PLATE_KEY, dropna=False, sort=True).ngroup()
    )


def test_combined_codes_number_conditions_as_a_sorted_groupby():
    frame = _table(2)
    plate, firsts = run_codes(frame, PLATE_KEY)
    columns = ["dataset", "cell_line", "drug", "conc", "time_h"]
    got = combined_codes(frame, columns, plate=plate, keys=key_table(firsts))
    expected = frame[columns].groupby(columns, dropna=False, sort=True).ngroup().to_numpy()
    np.testing.assert_array_equal(got, expected)


def test_group_medians_are_pandas_grouped_medians_to_the_bit():
    rng = np.random.default_rng(3)
    values = rng.lognormal(0, 1, 5000)
    values[rng.choice(5000, 400, replace=False)] = np.nan
    group = rng.integers(0, 300, 5000)
    group[group == 7] = 8  # a code without rows
    values[group == 9] = np.nan  # a group without a value
    expected = pd.Series(values).groupby(group).transform("median").to_numpy()
    np.testing.assert_array_equal(group_medians(values, group).view(np.int64)[~np.isnan(expected)],
                                  expected.view(np.int64)[~np.isnan(expected)])  # fmt: skip
    assert np.isnan(group_medians(values, group)[np.isnan(expected)]).all()


def _backfit_numpy(y, plate, cond, edge):
    """The backfitting passes written with numpy and pandas (the implementation before the compiled one)."""

    def means(group, values, weights, n):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.bincount(group, weights=weights * values, minlength=n) / np.bincount(
                group, weights=weights, minlength=n
            )

    n_p, n_c = int(plate.max()) + 1, int(cond.max()) + 1
    a, e, w = np.zeros(n_p), np.zeros(n_p), np.ones(len(y))
    inside, out = (~edge).astype(float), edge.astype(float)
    for i in range(N_PASSES):
        b = means(cond, y - a[plate] - e[plate] * out, w, n_c)
        r = y - b[cond]
        a_in, a_out = means(plate, r, w * inside, n_p), means(plate, r, w * out, n_p)
        a = np.where(np.isnan(a_in), np.nan_to_num(a_out), a_in)
        e = np.nan_to_num(a_out - a_in)
        if i >= N_PASSES // 3:
            resid = r - a[plate] - e[plate] * out
            leverage = w / np.bincount(cond, weights=w, minlength=n_c)[cond]
            with np.errstate(divide="ignore", invalid="ignore"):
                z = np.abs(resid) / np.sqrt(np.clip(1.0 - leverage, 1e-12, None))
                scale = 1.4826 * pd.Series(z).groupby(plate).transform("median").to_numpy()
                w = np.where(z > HUBER_K * scale, HUBER_K * scale / z, 1.0)
    leverage = w / np.bincount(cond, weights=w, minlength=n_c)[cond]
    return r - a[plate], w, leverage


def test_compiled_backfit_gives_the_numpy_passes_bit_for_bit():
    rng = np.random.default_rng(4)
    n = 4000
    plate = np.sort(rng.integers(0, 12, n))
    cond = rng.integers(0, 150, n)
    edge = rng.random(n) < 0.3
    edge[plate == 3] = True  # a plate without interior wells
    y = rng.normal(0, 0.1, n) + 0.2 * edge + rng.normal(0, 1, 150)[cond]
    y[rng.choice(n, 20, replace=False)] += 3.0  # outliers: Huber weights below 1
    for got, expected in zip(
        _backfit(y, plate, cond, edge), _backfit_numpy(y, plate, cond, edge), strict=True
    ):
        np.testing.assert_array_equal(got, expected)
        assert np.array_equal(np.nan_to_num(got).view(np.int64), np.nan_to_num(expected).view(np.int64))


def test_median_near_a_guess_is_the_median_to_the_bit():
    rng = np.random.default_rng(5)
    for size in (1, 2, 3, 4, 7, 50, 51, 384):
        values = np.abs(rng.normal(0, 1, size))
        values[rng.random(size) < 0.1] = np.nan
        values[rng.random(size) < 0.2] = 0.5  # ties
        expected = _median(values.copy())
        for guess in (np.nan, 0.0, 0.5, 0.49, 0.51, expected, expected * 1.019, 3.0):
            got = _median_near(values.copy(), guess, np.empty(size))
            assert np.array_equal(got, expected, equal_nan=True), (size, guess)
