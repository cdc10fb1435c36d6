"""Validation: every problem collected, rows accounted for, clear errors for unusable files."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from doseatlas import schemas as S
from doseatlas.errors import InputFileError
from doseatlas.ingest import read_canonical
from doseatlas.validate import validate_wells

from wells import CONTROL, frame, plate, row


def _reasons(rows):
    result = validate_wells(frame(rows))
    return result, dict(zip(result.ledger[S.SOURCE_LINE], result.ledger[S.LEDGER_REASON], strict=True))


@pytest.mark.parametrize(
    ("changes", "reason", "column"),
    [
        ({"role": "bogus"}, "unknown_role", "role"),
        ({"concentration_unit": "furlong"}, "unknown_unit", "concentration_unit"),
        ({"readout": "magic"}, "unknown_readout", "readout"),
        ({"perturbation_type": "prayer"}, "unknown_perturbation_type", "perturbation_type"),
        ({"concentration": "-1"}, "negative_concentration", "concentration"),
        ({"concentration": "inf"}, "non_finite", "concentration"),
        ({"concentration": ""}, "missing_concentration", "concentration"),
        ({"concentration": "1,5"}, "not_a_number", "concentration"),
        ({"signal": ""}, "missing_signal", "signal"),
        ({"signal": "n/a"}, "not_a_number", "signal"),
        ({"signal": "-inf"}, "non_finite", "signal"),
        ({"time_h": "-3"}, "negative_time", "time_h"),
        ({"dataset": ""}, "missing_value", "dataset"),
        ({"perturbagen": ""}, "missing_value", "perturbagen"),
        ({"concentration": "0"}, "inconsistent_role", "concentration"),
    ],
)
def test_bad_row_goes_to_ledger_with_reason_and_column(changes, reason, column):
    rows = [*plate(), row(well="Z99", **changes)]
    result, _ = _reasons(rows)
    assert result.n_rejected == 1
    entry = result.ledger.iloc[0]
    assert entry[S.LEDGER_REASON] == reason
    assert entry[S.LEDGER_COLUMN] == column
    assert entry[S.SOURCE_LINE] == len(rows) + 1
    assert result.n_used + result.n_rejected == result.n_read == len(rows)


def test_all_problems_of_a_row_are_reported_in_one_pass():
    rows = [
        *plate(),
        row(role="treated", signal="abc", concentration="-2", concentration_unit="x", readout="?"),
    ]
    result, _ = _reasons(rows)
    message = result.ledger.iloc[0][S.LEDGER_MESSAGE]
    for fragment in ("signal 'abc'", "negative", "unknown readout"):
        assert fragment in message


def test_duplicates_same_well_and_exact_rows():
    rows = plate()
    rows = [*rows, dict(rows[0]), {**rows[1], S.SIGNAL: "55"}]
    result, reasons = _reasons(rows)
    assert sorted(reasons.values()) == ["duplicate_row", "duplicate_row"]
    assert result.n_used == len(rows) - 2


def test_units_are_converted_to_molar_and_controls_are_blank():
    rows = [
        row(concentration=5, concentration_unit=u, well=f"B{i}") for i, u in enumerate(S.CONCENTRATION_UNITS)
    ]
    rows.append(row(role="vehicle", well="C1", **CONTROL))
    clean = validate_wells(frame(rows)).clean
    expected = [5 * f for f in S.CONCENTRATION_UNITS.values()] + [0.0]
    assert clean[S.CONCENTRATION].tolist() == pytest.approx(expected, rel=1e-12)
    assert clean[S.PERTURBATION_TYPE].iloc[-1] == ""


def test_knockout_needs_no_concentration():
    rows = [*plate(), row(perturbation_type="knockout", perturbagen="TP53", concentration="", well="K1")]
    result, _ = _reasons(rows)
    assert result.n_rejected == 0
    assert pd.isna(result.clean[S.CONCENTRATION].iloc[-1])


def test_missing_required_column_names_file_and_column(tmp_path):
    path = tmp_path / "wells.csv"
    pd.DataFrame(plate()).drop(columns=[S.SIGNAL, S.READOUT]).to_csv(path, index=False)
    with pytest.raises(InputFileError) as err:
        read_canonical(path)
    assert str(path) in str(err.value) and "signal" in str(err.value) and "readout" in str(err.value)


@pytest.mark.parametrize("content", [b"\xff\xfe\x00garbage\x00", b""])
def test_unreadable_file_is_one_clear_error(tmp_path, content):
    path = tmp_path / "bad.parquet"
    path.write_bytes(content)
    with pytest.raises(InputFileError, match=r"bad\.parquet"):
        read_canonical(path)


def test_line_numbers_point_into_the_file(tmp_path):
    path = tmp_path / "wells.tsv"
    rows = [*plate(), row(signal="oops", well="Q1")]
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
    result = validate_wells(read_canonical(path))
    assert result.ledger[S.SOURCE_LINE].tolist() == [len(rows) + 1]
    line = path.read_text().splitlines()[len(rows)]
    assert "oops" in line


@pytest.mark.parametrize("role", ["excluded_by_source", "not_in_plate_map"])
def test_rows_the_source_excludes_go_to_the_ledger_with_their_own_reason(role):
    _, reasons = _reasons([*plate(), row(role=role, well="X1")])
    assert list(reasons.values()) == [role]


_VALUES = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**12), 10**12),
    st.text(alphabet=" \t0123456789.eE+-abcµ", max_size=8),
)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.lists(_VALUES, max_size=12).map(lambda v: pd.Series(v, dtype=object)),
        st.lists(st.floats(allow_nan=True), max_size=12).map(lambda v: pd.Series(v, dtype=float)),
        st.lists(st.integers(-(10**9), 10**9), max_size=12).map(lambda v: pd.Series(v, dtype="int64")),
        st.lists(st.one_of(st.none(), st.text(max_size=6)), max_size=12).map(
            lambda v: pd.Series(v, dtype="str")
        ),
    )
)
def test_text_of_a_column_is_the_stripped_str_of_each_value(series):
    from doseatlas.validate import stripped_text

    expected = [("" if pd.isna(v) else str(v).strip()) for v in series.astype(object)]
    assert list(stripped_text(series)) == expected
