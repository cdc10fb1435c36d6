"""Malformed input never gives a traceback or a lost row: a clean run with ledger entries, or one clear error."""

from __future__ import annotations

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doseatlas import schemas as S
from doseatlas.errors import DoseatlasError, InputFileError
from doseatlas.ingest import read_canonical
from doseatlas.pipeline import run_pipeline

from wells import plate

CELL = st.one_of(
    st.sampled_from(
        ["", "NaN", "inf", "-1", "0", "1e-6", "abc", "treated", "vehicle", "blank", "uM", "nM", "µM"]
    ),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=6),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
)
COLUMN = st.sampled_from(list(S.WELL_COLUMNS))


@st.composite
def corrupted_tables(draw):
    rows = plate(time_zero=[30.0, 31.0]) + plate(plate_id="p2", vehicle=[], blank=[])
    table = pd.DataFrame(rows)
    for _ in range(draw(st.integers(0, 12))):
        i = draw(st.integers(0, len(table) - 1))
        table.loc[i, draw(COLUMN)] = draw(CELL)
    if draw(st.integers(0, 4)) == 0:  # a whole column wrong: often every row is rejected
        table[draw(COLUMN)] = draw(CELL)
    if draw(st.booleans()):
        table = pd.concat([table, table.sample(n=2, random_state=draw(st.integers(0, 9)))], ignore_index=True)
    if draw(st.integers(0, 9)) == 0:
        table = table.drop(columns=[draw(st.sampled_from(list(S.REQUIRED_WELL_COLUMNS)))])
    return table


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=corrupted_tables(), sep=st.sampled_from([",", "\t"]))
def test_corrupted_files_run_cleanly_or_fail_with_one_error(tmp_path, table, sep):
    path = tmp_path / ("w.csv" if sep == "," else "w.tsv")
    table.to_csv(path, sep=sep, index=False)
    try:
        raw = read_canonical(path)
    except InputFileError as exc:
        assert str(path) in str(exc)
        return
    result = run_pipeline(raw)
    s = result.summary
    assert s["rows_used"] + s["rows_in_ledger"] == s["rows_read"] == len(raw)
    if not table.astype(str).apply(lambda c: c.str.contains(r"[\r\n]")).any().any():
        assert len(raw) == len(table), "a row of the file was lost or invented"
    assert result.ledger[S.LEDGER_REASON].isin([r.value for r in S.RowReason]).all()
    assert result.responses[S.ROW_ID].is_unique


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_the_reader(tmp_path, blob):
    path = tmp_path / "w.csv"
    path.write_bytes(blob)
    try:
        raw = read_canonical(path)
    except InputFileError:
        return
    result = run_pipeline(raw)
    assert result.summary["rows_used"] + result.summary["rows_in_ledger"] == len(raw)


# ------------------------------------------------------------------ hostile lines (issue 10 items 12, 13, 15)
TIME = st.sampled_from(["", "nan", "NaN", "inf", "-inf", "1e309", " 72 ", "72.0", "-0", "-3", "abc", "72"])
NUMBER_ID = st.sampled_from(["1", "1.0", " 1 ", "01", "1e0", "2", "2.5"])
ORDER = [
    S.WELL,
    *(c for c in S.WELL_COLUMNS if c not in (S.WELL, S.SERIES)),
]  # the well (a unique marker) first


@st.composite
def hostile_lines(draw):
    """A canonical CSV as lines, and for each record: its first physical line and its marker well."""
    rows = plate(time_zero=[30.0, 31.0]) + plate(plate_id="p2", vehicle=[90.0], blank=[])
    sep = draw(st.sampled_from([",", "\t"]))
    lines, records = [sep.join(ORDER)], []
    for i, r in enumerate(rows):
        values = {**r, S.WELL: f"W{i:03d}"}
        if draw(st.integers(0, 3)) == 0:
            values[S.TIME_H] = draw(TIME)
        for column in (S.DATASET, S.PLATE, S.CELL_LINE, S.REPLICATE):
            if draw(st.integers(0, 5)) == 0:
                values[column] = draw(NUMBER_ID)
        fields = [values[c] for c in ORDER]
        if draw(st.integers(0, 6)) == 0:  # a quoted cell over several lines
            fields[ORDER.index(S.PERTURBAGEN)] = '"x' + sep + '\n"" y\n"'
        shape = draw(st.integers(0, 9))
        if shape == 0:
            fields = fields[: draw(st.integers(1, len(fields) - 1))]  # truncated row
        elif shape == 1:
            fields = [*fields, "extra"]
        records.append((len(lines) + 1, values[S.WELL]))
        lines.extend(sep.join(fields).split("\n"))
        if draw(st.integers(0, 8)) == 0:
            records.append((len(lines) + 1, ""))  # a blank line is a record of its own
            lines.append(draw(st.sampled_from(["", "  ", sep * 3])))
    return lines, dict(records), sep, draw(st.sampled_from(["\n", "\r\n"]))


def _runs_or_one_clear_error(raw_reader):
    try:
        raw = raw_reader()
        return raw, run_pipeline(raw)
    except DoseatlasError as exc:  # anything else is a crash
        return None, exc


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=hostile_lines())
def test_hostile_lines_are_accounted_for_at_their_physical_line(tmp_path, case):
    lines, starts, sep, newline = case
    path = tmp_path / ("w.csv" if sep == "," else "w.tsv")
    path.write_bytes(newline.join(lines).encode() + newline.encode())
    raw, result = _runs_or_one_clear_error(lambda: read_canonical(path))
    assert raw is not None, f"a well-formed header must not make the file unreadable: {result}"
    s = result.summary
    assert s["rows_used"] + s["rows_in_ledger"] == s["rows_read"] == len(raw) == len(starts)
    ledger = result.ledger
    assert set(ledger[S.SOURCE_LINE]) <= set(starts), "a ledger line that is not where a record starts"
    blank = ledger[S.LEDGER_REASON] == S.RowReason.BLANK_LINE
    assert all(starts[line] == "" for line in ledger.loc[blank, S.SOURCE_LINE])
    for line in ledger.loc[~blank, S.SOURCE_LINE]:
        assert lines[line - 1].startswith(starts[line] + sep) or lines[line - 1] == starts[line]
    used = result.responses
    assert all(starts[line] == well for line, well in zip(used[S.SOURCE_LINE], used[S.WELL], strict=True))
    times = dict(zip(raw[S.SOURCE_LINE], raw[S.TIME_H].str.strip().str.lower(), strict=True))
    no_time = ledger[S.LEDGER_REASON].isin([S.RowReason.MISSING_TIME, S.RowReason.NON_FINITE])
    assert all(times[line] in ("", "nan", "inf", "-inf", "1e309") for line in ledger.loc[no_time & (ledger[
        S.LEDGER_COLUMN] == S.TIME_H), S.SOURCE_LINE])  # fmt: skip
    assert all(times[line] not in ("", "nan", "inf", "-inf", "1e309") for line in used[S.SOURCE_LINE])


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    number=st.one_of(st.integers(-(10**6), 10**6), st.sampled_from([0, 2**53 - 1])),
    kinds=st.fixed_dictionaries(
        {c: st.sampled_from(["int", "float", "text"]) for c in (S.DATASET, S.PLATE, S.CELL_LINE, S.REPLICATE)}
    ),
)
def test_numeric_identifiers_as_int_float_or_text_are_one_identifier(tmp_path, number, kinds):
    table = pd.DataFrame(plate(treated={0.1: 90.0, 1.0: 55.0, 10.0: 20.0}))
    for column, kind in kinds.items():
        table[column] = {"int": number, "float": float(number), "text": str(number)}[kind]
    table.to_parquet(tmp_path / "w.parquet")
    raw, result = _runs_or_one_clear_error(lambda: read_canonical(tmp_path / "w.parquet"))
    assert raw is not None and result.ledger.empty
    assert list(raw[S.SOURCE_LINE]) == list(range(1, len(table) + 1))
    for column in kinds:
        assert set(result.responses[column]) == {str(number)}
