"""doseatlas._codes: integer codes of key columns give the groups pandas gives (the whole-run steps rely on it)."""

import numpy as np
import pandas as pd
import pytest

from doseatlas._codes import (
    combine,
    factorize,
    joint_codes,
    per_distinct,
    same_values,
    text_column,
    value_changes,
)


@pytest.mark.parametrize("seed", range(6))
def test_combinations_are_numbered_as_a_sorted_groupby_numbers_them(seed):
    rng = np.random.default_rng(seed)
    n = 3000
    columns = [rng.integers(0, k, n) for k in (3, 2000, 40, 1500)[: 2 + seed % 3]]
    group, per = combine([(c, int(c.max()) + 1) for c in columns], n)
    table = pd.DataFrame({f"c{i}": c for i, c in enumerate(columns)})
    expected = table.groupby(list(table.columns), sort=True).ngroup().to_numpy()
    np.testing.assert_array_equal(group, expected)
    for column, codes in zip(columns, per, strict=True):
        np.testing.assert_array_equal(codes[group], column)  # each combination's codes


@pytest.mark.parametrize("sparse", [False, True])
def test_combinations_of_a_sorted_table_are_read_off_its_runs(sparse):
    rng = np.random.default_rng(2)
    n = 5000
    columns = [np.sort(rng.integers(0, 30, n)), rng.integers(0, 10**6 if sparse else 50, n)]
    table = pd.DataFrame({"a": columns[0], "b": columns[1]}).sort_values(["a", "b"], kind="stable")
    coded = [(table[c].to_numpy(), int(table[c].max()) + 1) for c in ("a", "b")]
    group, per = combine(coded, n)
    np.testing.assert_array_equal(group, table.groupby(["a", "b"], sort=True).ngroup().to_numpy())
    np.testing.assert_array_equal(per[1][group], table["b"].to_numpy())


def test_text_in_runs_is_factorized_as_pandas_does():
    values = np.array(["b"] * 3000 + [None] * 5 + ["a"] * 2000 + ["b"] * 10 + [np.nan] * 3, dtype=object)
    codes, uniques = factorize(values)
    expected_codes, expected_uniques = pd.factorize(values)
    np.testing.assert_array_equal(codes, expected_codes)
    assert list(uniques) == list(expected_uniques)


@pytest.mark.parametrize("seed", range(4))
def test_objects_in_runs_are_factorized_as_pandas_does(seed):
    # runs of shared objects (a column a step took to the rows from its distinct values), objects equal in value
    # but not in identity, missing values of several kinds and values a hash holds equal (1, 1.0, True)
    rng = np.random.default_rng(seed)
    pool = np.empty(10, dtype=object)
    pool[:] = ["b", "a", None, np.nan, float("nan"), 1, 1.0, True, "".join(["a", "b"]), "ab"]
    values = pool[np.repeat(rng.integers(0, len(pool), 300), rng.integers(1, 40, 300))]
    values[rng.integers(0, len(values), 30)] = "".join(["a", "b"])  # another object of the value "ab"
    codes, uniques = factorize(values)
    expected_codes, expected_uniques = pd.factorize(values)
    np.testing.assert_array_equal(codes, expected_codes)
    assert [type(u) for u in uniques] == [type(u) for u in expected_uniques]
    assert list(uniques) == list(expected_uniques)


@pytest.mark.parametrize("seed", range(4))
def test_changes_of_objects_in_runs_are_the_object_comparison(seed):
    # runs of one object: only the first of each run is compared, yet a NaN differs from itself as before
    rng = np.random.default_rng(seed)
    pool = np.empty(8, dtype=object)
    pool[:] = ["b", "a", None, np.nan, float("nan"), 1, 1.0, "".join(["a", "b"])]
    values = pool[np.repeat(rng.integers(0, len(pool), 300), rng.integers(1, 40, 300))]
    values[rng.integers(0, len(values), 30)] = "".join(["a", "b"])
    np.testing.assert_array_equal(value_changes(values), values[1:] != values[:-1])


@pytest.mark.parametrize("codes", [[0, -1, 1, 1, -1], [-1, -1], [], [1, 1]])
def test_a_text_column_from_codes_is_the_column_pandas_makes_of_the_texts_with_nan(codes):
    codes = np.array(codes, dtype=np.int8)
    texts = ("no_time_zero", "time_zero")
    objects = np.array([*texts, np.nan], dtype=object)[codes]
    got = text_column(codes, texts, missing=np.nan)
    if (codes >= 0).any():
        expected = pd.array(objects, dtype=pd.StringDtype(na_value=np.nan))
        pd.testing.assert_extension_array_equal(got, expected)
    else:
        assert got.dtype == object and pd.isna(got).all() and all(v is np.nan for v in got)


def test_tables_coded_together_match_as_a_merge_matches():
    rng = np.random.default_rng(1)
    left = pd.DataFrame({"a": rng.choice(["x", "y", None], 500), "t": rng.choice([72.0, np.nan], 500)})
    right = pd.DataFrame({"a": ["x", None], "time": [72.0, np.nan]}).astype({"a": "str"})
    (rows, keys), n = joint_codes([left, right], [["a", "t"], ["a", "time"]])
    hit = np.zeros(n, dtype=bool)
    hit[keys] = True
    merged = left.astype(object).merge(
        right.rename(columns={"time": "t"}).astype(object).assign(_hit=True), on=["a", "t"], how="left"
    )
    np.testing.assert_array_equal(hit[rows], merged["_hit"].notna().to_numpy())


def test_a_test_of_distinct_rows_is_taken_back_to_every_row():
    table = pd.DataFrame({"r": ["atp", "atp", "dna", None] * 50, "m": ["gr50", "ic50"] * 100})
    calls = []

    def test(frame):
        calls.append(len(frame))
        return (frame["r"].eq("atp") & frame["m"].eq("gr50")).to_numpy()

    np.testing.assert_array_equal(per_distinct(table, ["r", "m"], test), test(table))
    assert calls[0] == 4  # one row per distinct (readout, metric)


@pytest.mark.parametrize("codes", [[0, -1, 1, 1, -1], [-1, -1], [], [1, 1]])
def test_a_text_column_from_codes_is_the_column_pandas_makes_of_the_texts(codes):
    codes = np.array(codes, dtype=np.int8)
    texts = ("no_time_zero", "time_zero")
    objects = np.array([*texts, None], dtype=object)[codes]
    expected = pd.DataFrame({"c": objects})["c"]
    got = pd.DataFrame({"c": text_column(codes, texts)})["c"]
    pd.testing.assert_series_equal(got, expected)
    assert got.dtype == expected.dtype


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (["a", None, "b"], ["a", None, "b"]),
        (["a", None, "b"], ["a", "x", "b"]),
        (["a", None], [None, "a"]),
        ([], []),
        ([np.nan, "a"], [None, "a"]),
        ([1, "a"], ["1", "a"]),
        ([None, None], [None, None]),
    ],
)
def test_same_values_matches_the_object_comparison(left, right):
    """same_values (arrow text, Python objects or one of each) answers as comparing the values as objects."""
    text = pd.StringDtype("pyarrow", na_value=np.nan)
    for left_dtype, right_dtype in [(text, object), (object, text), (text, text), (object, object)]:
        a, b = pd.Series(left, dtype=left_dtype), pd.Series(right, dtype=right_dtype)
        x, y = a.to_numpy(dtype=object), b.to_numpy(dtype=object)
        missing = pd.isna(x)
        expected = bool(np.array_equal(missing, pd.isna(y)) and (x[~missing] == y[~missing]).all())
        assert same_values(a, b) is expected
