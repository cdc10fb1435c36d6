"""Plate-matrix and mapping parsers: malformed input gives one clear InputFileError or ledger rows, never a traceback."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doseatlas import schemas as S
from doseatlas.errors import InputFileError
from doseatlas.ingest import read_any
from doseatlas.ingest._common import number_text
from doseatlas.ingest.plate_matrix import parse_matrix
from doseatlas.validate import validate_wells

MAP = (
    "plate,well,role,cell_line,perturbation_type,perturbagen,concentration,concentration_unit,time_h,readout,dataset\n"
    "*,A1,vehicle,MCF7,,,,,72,atp,lab\n*,B1,vehicle,MCF7,,,,,72,atp,lab\n"
    "*,A2,treated,MCF7,drug,taxol,1,uM,72,atp,lab\n*,B2,treated,MCF7,drug,taxol,10,uM,72,atp,lab\n"
    "P2,A3,blank,MCF7,,,,,72,atp,lab\n"
)
MATRIX = "Plate: P1\n,1,2,3\nA,100,50,1\nB,101,20,2\n\nPlate: P2\n,1,2,3\nA,90,45,3\nB,91,18,4\n"
HS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _files(tmp_path, matrix=MATRIX, layout=MAP):
    (tmp_path / "m.csv").write_text(matrix, encoding="utf-8")
    (tmp_path / "map.csv").write_text(layout, encoding="utf-8")
    return tmp_path / "m.csv", tmp_path / "map.csv"


def test_plate_matrix_reads_blocks_and_joins_map(tmp_path):
    matrix, layout = _files(tmp_path)
    table = read_any(matrix, format="plate-matrix", plate_map=layout)
    assert len(table) == 12
    p2 = table[(table[S.PLATE] == "P2")].set_index(S.WELL)
    assert p2.loc["A03", S.ROLE] == "blank" and p2.loc["A02", S.CONCENTRATION] == "1"
    assert p2.loc["A01", S.SOURCE_LINE] == 8
    result = validate_wells(table)
    # unmapped wells (A3/B3 on P1, B3 on P2) go to the ledger, everything else is used
    assert result.n_used == 9 and len(result.ledger) == 3


def test_plate_matrix_tab_separated_single_plate(tmp_path):
    matrix, layout = _files(tmp_path, matrix="\t1\t2\nA\t100\t50\nB\t101\t20\n")
    table = read_any(matrix, format="plate-matrix", plate_map=layout)
    assert list(table[S.PLATE][:4]) == ["m"] * 4
    # the map row for plate P2 (absent from the file) is kept with an empty signal -> ledger
    assert len(table) == 5 and table[S.SIGNAL].iloc[4] == "" and table[S.SOURCE_LINE].iloc[4] == 6


@pytest.mark.parametrize(
    ("matrix", "line", "message"),
    [
        ("Plate: P1\nA,1,2\n", 2, "before a column header"),
        ("Plate: P1\n,1,2\nA,1,2,3\n", 3, "has 3 values"),
        ("Plate: P1\n,1,2\nA,1,2\nA,3,4\n", 4, "appears twice"),
    ],
)
def test_plate_matrix_malformed_blocks(tmp_path, matrix, line, message):
    path = tmp_path / "m.csv"
    path.write_text(matrix, encoding="utf-8")
    with pytest.raises(InputFileError, match=message) as err:
        parse_matrix(path)
    assert err.value.line == line and str(path) in str(err.value)


LINE = st.one_of(
    st.sampled_from(
        ["Plate: P1", "Plate: P2", ",1,2,3", "A,1,2,3", "B,4,,x", "C,1", "", "junk", ",a,b", "A"]
    ),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r"), max_size=12),
)


@HS
@given(lines=st.lists(LINE, max_size=10))
def test_plate_matrix_fuzz_never_tracebacks(tmp_path, lines):
    matrix, layout = _files(tmp_path, matrix="\n".join(lines) + "\n")
    try:
        table = read_any(matrix, format="plate-matrix", plate_map=layout)
    except InputFileError as exc:
        assert str(tmp_path) in str(exc)
        return
    result = validate_wells(table)
    assert result.n_used + result.n_rejected == len(table)


VALUE = st.one_of(
    st.sampled_from(["72", "atp", "vehicle", "DMSO", "nM", "", "x", "-1", "1e-3"]), st.integers(-5, 5)
)


@st.composite
def mappings(draw):
    columns = draw(
        st.dictionaries(
            st.sampled_from(["Line", "Dose", "Lum", "Kind", "Drug", "Nope"]),
            st.sampled_from([*S.WELL_COLUMNS, "bogus", 3]),
            max_size=6,
        )
    )
    constants = draw(st.dictionaries(st.sampled_from([*S.WELL_COLUMNS, "bogus"]), VALUE, max_size=6))
    lines = [f'"{k}" = {v!r}'.replace("'", '"') for k, v in columns.items()]
    text = "[columns]\n" + "\n".join(lines) + "\n[constants]\n"
    text += "\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in constants.items()) + "\n"
    if draw(st.booleans()):
        text += '[values.role]\nDMSO = "vehicle"\ncpd = "treated"\n'
    if draw(st.integers(0, 5)) == 0:
        text = text.replace("=", draw(st.sampled_from(["", "==", "= ["])), 1)
    return text


DATA = "Line,Dose,Lum,Kind,Drug\nMCF7,0,100,DMSO,\nMCF7,10,50,cpd,taxol\nMCF7,x,,cpd,taxol\n"


@HS
@given(spec=mappings())
def test_mapping_fuzz_never_tracebacks(tmp_path, spec):
    (tmp_path / "d.csv").write_text(DATA, encoding="utf-8")
    (tmp_path / "map.toml").write_text(spec, encoding="utf-8")
    try:
        table = read_any(tmp_path / "d.csv", mapping=tmp_path / "map.toml")
    except InputFileError as exc:
        assert str(tmp_path) in str(exc)
        return
    assert len(table) == 3 and list(table[S.SOURCE_LINE]) == [2, 3, 4]
    result = validate_wells(table)
    assert result.n_used + result.n_rejected == 3


def test_mapping_full_example(tmp_path):
    (tmp_path / "d.csv").write_text(DATA, encoding="utf-8")
    spec = (
        '[columns]\nLine = "cell_line"\nDose = "concentration"\nLum = "signal"\nKind = "role"\nDrug = "perturbagen"\n'
        '[constants]\ntime_h = 72\nreadout = "atp"\ndataset = "labX"\nconcentration_unit = "nM"\nplate = "p1"\n'
        'perturbation_type = "drug"\n[values.role]\nDMSO = "vehicle"\ncpd = "treated"\n'
    )
    (tmp_path / "map.toml").write_text(spec, encoding="utf-8")
    table = read_any(tmp_path / "d.csv", mapping=tmp_path / "map.toml")
    assert list(table[S.ROLE]) == ["vehicle", "treated", "treated"]
    assert table.attrs["defaults"] == {
        "time_h": 72,
        "readout": "atp",
        "dataset": "labX",
        "concentration_unit": "nM",
        "plate": "p1",
        "perturbation_type": "drug",
    }
    result = validate_wells(table)
    assert result.n_used == 2 and list(result.ledger[S.SOURCE_LINE]) == [4]
    assert result.clean.loc[result.clean[S.ROLE] == "treated", S.CONCENTRATION].iloc[0] == pytest.approx(1e-8)


def test_mapping_missing_source_column_is_named(tmp_path):
    (tmp_path / "d.csv").write_text(DATA, encoding="utf-8")
    (tmp_path / "map.toml").write_text('[columns]\n"Cell" = "cell_line"\n', encoding="utf-8")
    with pytest.raises(InputFileError, match="Cell") as err:
        read_any(tmp_path / "d.csv", mapping=tmp_path / "map.toml")
    assert err.value.column == "Cell"


def _number_text_one(value) -> str:
    """The definition of ``number_text`` for one value."""
    if pd.isna(value):
        return ""
    number = pd.to_numeric(pd.Series([value], dtype=object), errors="coerce").astype(float).iloc[0]
    if not np.isfinite(number):
        return str(value).strip()
    if number % 1.0 == 0 and abs(number) < 2**53:
        return str(int(number))
    return repr(float(number))


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(
        st.one_of(
            st.none(),
            st.floats(allow_nan=True, allow_infinity=True),
            st.integers(-(10**16), 10**16),
            st.sampled_from(["1e-6", " 3 ", "abc", "", "0.1", "-0", "nan"]),
        ),
        max_size=20,
    )
)
def test_number_text_formats_each_value_as_defined(values):
    series = pd.Series(values, dtype=object)
    assert list(number_text(series)) == [_number_text_one(v) for v in values]


def test_parquet_rows_point_to_row_index_plus_one_and_text_rows_to_their_line(tmp_path):
    table = pd.DataFrame(
        {c: ["x"] * 4 for c in S.REQUIRED_WELL_COLUMNS} | {S.ROLE: ["vehicle", "treated", "oops", "blank"]}
    )
    table.to_parquet(tmp_path / "w.parquet")
    table.to_csv(tmp_path / "w.csv", index=False)
    assert list(read_any(tmp_path / "w.parquet")[S.SOURCE_LINE]) == [1, 2, 3, 4]  # no header line
    assert list(read_any(tmp_path / "w.csv")[S.SOURCE_LINE]) == [2, 3, 4, 5]  # header = line 1
    ledger = validate_wells(read_any(tmp_path / "w.parquet")).ledger
    assert 3 in set(ledger.loc[ledger[S.LEDGER_REASON] == "unknown_role", S.SOURCE_LINE])


@pytest.mark.parametrize(
    ("source", "key"),
    [
        ("skip_rows = -1", "skip_rows"),
        ("skip_rows = true", "skip_rows"),
        ("skip_rows = 1.5", "skip_rows"),
        ('sep = ";;"', "sep"),
        ('sep = ""', "sep"),
        ('seperator = ";"', "seperator"),
        ("header = 2", "header"),
    ],
)
def test_mapping_bad_or_unknown_source_key_is_an_error_naming_it(tmp_path, source, key):
    (tmp_path / "d.csv").write_text(DATA, encoding="utf-8")
    (tmp_path / "map.toml").write_text(f'[source]\n{source}\n[columns]\nLum = "signal"\n', encoding="utf-8")
    with pytest.raises(InputFileError, match=key) as err:
        read_any(tmp_path / "d.csv", mapping=tmp_path / "map.toml")
    assert err.value.column == key and "map.toml" in err.value.path


MAP = (
    '[columns]\nLine = "cell_line"\nDose = "concentration"\nLum = "signal"\nKind = "role"\nDrug = "perturbagen"\n'
    '[constants]\ntime_h = 72.0\nreadout = "atp"\ndataset = "labX"\nconcentration_unit = "nM"\nplate = 1.0\n'
    'perturbation_type = "drug"\n[values.role]\nDMSO = "vehicle"\ncpd = "treated"\n'
)


def test_mapping_lines_stay_physical_with_preamble_blank_quoted_and_short_lines(tmp_path):
    text = "exported by X\n" + DATA.replace("MCF7,10,50", '"MCF\n7",10,50') + "\nMCF7,1\n"
    (tmp_path / "d.csv").write_text(text, encoding="utf-8")
    (tmp_path / "map.toml").write_text("[source]\nskip_rows = 1\n" + MAP, encoding="utf-8")
    table = read_any(tmp_path / "d.csv", mapping=tmp_path / "map.toml")
    assert list(table[S.SOURCE_LINE]) == [3, 4, 6, 7, 8]
    assert table[S.PLATE].eq("1").all() and table[S.TIME_H].eq("72").all()  # TOML numbers as one text form
    reasons = dict(zip(*validate_wells(table).ledger[[S.SOURCE_LINE, S.LEDGER_REASON]].T.values, strict=True))
    assert reasons == {6: "missing_signal", 7: "blank_line", 8: "wrong_field_count"}


def test_mapping_source_column_named_twice_is_an_error_naming_it(tmp_path):
    (tmp_path / "d.csv").write_text(DATA.replace("Drug\n", "Lum\n", 1), encoding="utf-8")
    (tmp_path / "map.toml").write_text(MAP, encoding="utf-8")
    with pytest.raises(InputFileError, match="Lum") as err:
        read_any(tmp_path / "d.csv", mapping=tmp_path / "map.toml")
    assert err.value.column == "Lum"
