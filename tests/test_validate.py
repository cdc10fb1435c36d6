"""Validation: every problem collected, rows accounted for, clear errors for unusable files."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doseatlas import schemas as S
from doseatlas.errors import InputFileError
from doseatlas.ingest import read_canonical
from doseatlas.pipeline import run_pipeline
from doseatlas.validate import validate_responses, validate_wells

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
        ({"time_h": "inf"}, "non_finite", "time_h"),
        ({"time_h": "-inf"}, "non_finite", "time_h"),
        ({"time_h": ""}, "missing_time", "time_h"),
        ({"time_h": "nan"}, "missing_time", "time_h"),
        ({"role": "vehicle", "time_h": "", **CONTROL}, "missing_time", "time_h"),
        ({"role": "blank", "time_h": "", **CONTROL}, "missing_time", "time_h"),
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


def test_exact_repeat_of_a_well_keeps_one_and_conflicting_reads_keep_none():
    rows = plate()
    rows = [*rows, dict(rows[0]), {**rows[1], S.SIGNAL: "55"}]
    result, reasons = _reasons(rows)
    assert reasons == {len(rows): "duplicate_row", 3: "conflicting_reads", len(rows) + 1: "conflicting_reads"}
    assert result.n_used == len(rows) - 3
    assert "line 2" in result.ledger.set_index(S.SOURCE_LINE).loc[len(rows), S.LEDGER_MESSAGE]


def test_equal_values_written_differently_are_one_read_and_rejected_rows_take_no_part():
    rows = plate()
    rows = [*rows, {**rows[0], S.SIGNAL: "100.0"}, {**rows[1], S.SIGNAL: "n/a"}]
    _, reasons = _reasons(rows)
    assert reasons == {len(rows): "duplicate_row", len(rows) + 1: "not_a_number"}


@pytest.mark.parametrize("read", [validate_wells, "responses"])
def test_equal_rows_without_a_well_are_replicates_not_duplicates(read):
    rows = [{**r, S.WELL: ""} for r in plate(vehicle=[100, 100, 100], treated={1.0: 50.0})]
    rows += [dict(rows[-1]), dict(rows[-1])]  # three replicate wells with equal counts
    if read == "responses":
        table = frame(rows).drop(columns=[S.ROLE, S.SIGNAL]).assign(response="0.5", response_scale=S.GR)
        result = validate_responses(table[table.index >= 5])
    else:
        result = validate_wells(frame(rows))
    assert result.ledger.empty and result.n_used == result.n_read


def test_response_table_reads_of_one_well_follow_the_same_rule():
    table = frame([row(well=w) for w in ("B1", "B1", "B2", "B2")]).drop(columns=[S.ROLE, S.SIGNAL])
    table = table.assign(response=["0.5", "0.5", "0.5", "0.6"], response_scale=S.GR)
    reasons = dict(
        zip(*validate_responses(table).ledger[[S.SOURCE_LINE, S.LEDGER_REASON]].T.values, strict=True)
    )
    assert reasons == {3: "duplicate_row", 4: "conflicting_reads", 5: "conflicting_reads"}


@settings(max_examples=25, deadline=None)
@given(order=st.permutations(range(11)))
def test_reads_of_one_well_are_judged_by_values_not_by_row_order(order):
    rows = plate(treated={0.01: 95.0, 0.1: 90.0, 1.0: 55.0, 10.0: 20.0})
    rows = [*rows, {**rows[6], S.SIGNAL: "70"}, dict(rows[7])]  # a conflicting read, an exact repeat
    table = frame(rows)
    shuffled = table.iloc[list(order)].reset_index(drop=True)
    a, b = validate_wells(table), validate_wells(shuffled)
    assert (
        a.ledger.sort_values(S.SOURCE_LINE)
        .reset_index(drop=True)
        .equals(b.ledger.sort_values(S.SOURCE_LINE).reset_index(drop=True))
    )
    columns = [c for c in a.clean.columns if c != S.ROW_ID]
    assert (
        a.clean[columns].sort_values(S.SOURCE_LINE).reset_index(drop=True)
        .equals(b.clean[columns].sort_values(S.SOURCE_LINE).reset_index(drop=True))
    )  # fmt: skip
    assert sorted(a.ledger[S.LEDGER_REASON]) == ["conflicting_reads", "conflicting_reads", "duplicate_row"]


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
def test_text_of_a_column_is_the_canonical_text_of_each_value(series):
    from doseatlas.validate import stripped_text

    assert list(stripped_text(series)) == [_canonical_text(v) for v in series.astype(object)]


def _canonical_text(value) -> str:
    """The definition: missing -> empty; a number as the same identifier typed into a CSV file reads
    (an integral float as an integer); text stripped, never rewritten."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool | int):
        return str(value)
    if isinstance(value, float):
        integral = math.isfinite(value) and value == int(value) and abs(value) < 2**53
        return str(int(value)) if integral else repr(value)
    return str(value).strip()


IDENTIFIERS = [S.DATASET, S.PLATE, S.WELL, S.CELL_LINE, S.PERTURBAGEN, S.REPLICATE]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    numbers=st.lists(
        # (the wells add their row's position: every value stays below 2**53, where a float is an integer)
        st.integers(-(2**53) + 1, 2**53 - 1 - 16),
        min_size=len(IDENTIFIERS),
        max_size=len(IDENTIFIERS),
    ),
    kinds=st.lists(
        st.sampled_from(["int", "float", "text"]), min_size=len(IDENTIFIERS), max_size=len(IDENTIFIERS)
    ),
)
def test_numeric_identifiers_have_one_text_form_in_parquet_and_csv(tmp_path, numbers, kinds):
    rows = plate(treated={1.0: 50.0})
    as_text = pd.DataFrame(rows)
    typed = as_text.copy()
    for column, n, kind in zip(IDENTIFIERS, numbers, kinds, strict=True):
        offset = as_text.index.to_numpy() if column == S.WELL else 0  # wells stay distinct
        as_text[column] = [str(n + o) for o in np.broadcast_to(offset, len(rows))]
        values = n + np.broadcast_to(offset, len(rows)).astype(np.int64)
        typed[column] = {"int": values, "float": values.astype(float), "text": values.astype(str)}[kind]
    as_text.to_csv(tmp_path / "w.csv", index=False)
    typed.to_parquet(tmp_path / "w.parquet")
    from_csv = validate_wells(read_canonical(tmp_path / "w.csv")).clean
    from_parquet = validate_wells(read_canonical(tmp_path / "w.parquet")).clean
    assert from_csv[IDENTIFIERS].equals(from_parquet[IDENTIFIERS])
    assert from_csv[S.PLATE].iloc[0] == str(numbers[1]) and len(from_csv) == len(rows)


def test_plate_1_0_from_parquet_and_1_from_csv_are_one_plate(tmp_path):
    controls = pd.DataFrame([r for r in plate() if r[S.ROLE] != "treated"]).assign(plate=1.0)
    treated = pd.DataFrame([r for r in plate() if r[S.ROLE] == "treated"]).assign(plate="1")
    controls.to_parquet(tmp_path / "controls.parquet")
    treated.to_csv(tmp_path / "treated.csv", index=False)
    raw = pd.concat([read_canonical(tmp_path / "controls.parquet"), read_canonical(tmp_path / "treated.csv")])
    responses = run_pipeline(raw).responses
    assert set(responses[S.PLATE]) == {"1"} and responses[S.RELATIVE_VIABILITY].notna().all()


def _write_lines(path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _csv_lines(rows) -> list[str]:
    return pd.DataFrame(rows).to_csv(index=False).splitlines()


def test_blank_and_truncated_lines_go_to_the_ledger_with_their_own_reason(tmp_path):
    lines = _csv_lines(plate())
    lines = [*lines[:3], "", *lines[3:5], " ,  ,", "d1,p1,A99,A,treated", *lines[5:], ",".join(["x"] * 20)]
    _write_lines(tmp_path / "w.csv", lines)
    raw = read_canonical(tmp_path / "w.csv")
    result = validate_wells(raw)
    reasons = dict(zip(result.ledger[S.SOURCE_LINE], result.ledger[S.LEDGER_REASON], strict=True))
    assert reasons == {
        4: "blank_line",
        7: "blank_line",
        8: "wrong_field_count",
        len(lines): "wrong_field_count",
    }
    message = result.ledger.set_index(S.SOURCE_LINE).loc[8, S.LEDGER_MESSAGE]
    assert message == f"the line has 5 field(s), the header {len(lines[0].split(','))}"
    assert result.n_read == len(lines) - 1 == result.n_used + result.n_rejected


def test_ledger_lines_are_the_physical_lines_where_records_start(tmp_path):
    table = pd.DataFrame(plate())
    table[S.PERTURBAGEN] = table[S.PERTURBAGEN].where(table[S.ROLE] != "treated", "drug,\nwith a comma")
    table.loc[len(table) - 1, S.SIGNAL] = "oops"
    path = tmp_path / "w.csv"
    table.to_csv(path, index=False)
    ledger = validate_wells(read_canonical(path)).ledger
    physical = path.read_text().split("\n")
    (line,) = ledger[S.SOURCE_LINE]
    assert physical[line - 1].startswith("d1,p1,A08") and "oops" in physical[line]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_column_named_twice_is_one_error_naming_it(tmp_path, suffix):
    path = tmp_path / f"w{suffix}"
    if suffix == ".csv":
        lines = _csv_lines(plate())
        _write_lines(path, [lines[0] + ", signal", *(x + ",7" for x in lines[1:])])
    else:
        table = pd.DataFrame(plate())
        table.insert(0, " signal", "7")
        table.to_parquet(path)
    with pytest.raises(InputFileError, match="signal") as err:
        read_canonical(path)
    assert err.value.column == "signal" and "twice" in str(err.value)


def test_metrics_do_not_depend_on_the_order_of_conflicting_reads():
    doses = [0.001, 0.01, 0.1, 1.0, 10.0, 100.0]
    rows = plate(treated={d: 10 + 90 / (1 + d) for d in doses})
    rows += plate(treated={d: 12 + 88 / (1 + d) for d in doses}, plate_id="p2")
    rows.append({**rows[8], S.SIGNAL: "30"})  # well A09 of p1 (dose 1) read again, differently
    first, last = run_pipeline(frame(rows)).metrics, run_pipeline(frame(rows[::-1])).metrics
    columns = [*S.METRIC_KEY, S.VALUE, S.STATUS, S.LOWER, S.UPPER]
    assert (
        first[columns]
        .sort_values(list(S.METRIC_KEY))
        .reset_index(drop=True)
        .equals(last[columns].sort_values(list(S.METRIC_KEY)).reset_index(drop=True))
    )


def test_every_ledger_reason_is_documented_with_its_meaning():
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[1] / "docs" / "formats.md").read_text(encoding="utf-8")
    for reason in S.RowReason:
        assert f"| `{reason.value}` | {S.ROW_REASON_MEANING[reason]} |" in docs, reason
    assert "today reason `unknown_role`" not in docs  # GDSC UN-USED wells: excluded_by_source


@pytest.mark.parametrize("with_note", [False, True])
def test_an_empty_table_validates_to_nothing(with_note):
    table = frame([])
    if with_note:
        table[S.RECORD_PROBLEM] = pd.Series(dtype=object)
    result = validate_wells(table)
    assert result.n_read == result.n_used == result.n_rejected == 0


def test_a_huge_junk_value_is_quoted_clipped_in_the_ledger():
    rows = plate()
    rows[0] = {**rows[0], S.READOUT: "x" * 1_000_000}
    result = validate_wells(frame(rows))
    message = result.ledger.loc[result.ledger[S.LEDGER_REASON] == "unknown_readout", S.LEDGER_MESSAGE].iloc[0]
    assert len(message) < 400 and "1,000,000 characters" in message
