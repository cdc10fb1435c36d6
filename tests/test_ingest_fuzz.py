"""Malformed input never gives a traceback or a lost row: a clean run with ledger entries, or one clear error."""

from __future__ import annotations

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doseatlas import schemas as S
from doseatlas.errors import InputFileError
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


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
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


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
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
