"""The harmonize step in runs: two sources with different spellings end with one canonical name; readers of
identity evidence; the command-line options; GDSC raw identifiers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from doseatlas import schemas as S
from doseatlas.cli import app, example_path
from doseatlas.errors import InputFileError
from doseatlas.harmonize import HarmonizeOptions, UserIdentity
from doseatlas.ingest import read_any
from doseatlas.ingest.identities import read_cellosaurus, read_identity_table
from doseatlas.pipeline import RunOptions, run_pipeline

CHECKER = Path(__file__).resolve().parents[2] / "shared" / "checks" / "check_output.py"
runner = CliRunner()

EXCERPT = """\
----------------------------------------------------------------------------
        CELLOSAURUS: a knowledge resource on cell lines (test excerpt)
----------------------------------------------------------------------------
ID   A-549
AC   CVCL_0023
AS   CVCL_6316
SY   A549; A.549; NCI-A549
DR   Cosmic-CLP; 905949
DR   DepMap; ACH-000681
DR   ATCC; CCL-185
CA   Cancer cell line
//
ID   HeLa
AC   CVCL_0030
SY   HELA; Hela; He La
DR   Cosmic-CLP; 930299
//
ID   HeLa S3
AC   CVCL_0058
SY   HeLaS3; Hela S3
//
"""


def _two_sources() -> pd.DataFrame:
    """The bundled example with lab_a calling CL04 'A-549' and statinib 'dabrafenib mesylate', lab_b calling
    them 'A549_LUNG' and 'dabrafenib'."""
    wells = pd.read_parquet(example_path())
    wells = wells[wells[S.DATASET].isin(["lab_a", "lab_b"])].copy()
    lab_a = wells[S.DATASET] == "lab_a"
    line = wells[S.CELL_LINE] == "CL04"
    drug = wells[S.PERTURBAGEN] == "statinib"
    wells.loc[line & lab_a, S.CELL_LINE] = "A-549"
    wells.loc[line & ~lab_a, S.CELL_LINE] = "A549_LUNG"
    wells.loc[drug & lab_a, S.PERTURBAGEN] = "dabrafenib mesylate"
    wells.loc[drug & ~lab_a, S.PERTURBAGEN] = "dabrafenib"
    return wells


def _read(wells: pd.DataFrame) -> pd.DataFrame:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "wells.parquet"
        wells.to_parquet(path, index=False)
        return read_any([path])


@pytest.fixture(scope="module")
def two_sources_run():
    return run_pipeline(_read(_two_sources()))


def test_two_sources_end_with_one_canonical_cell_line_and_drug(two_sources_run):
    metrics = two_sources_run.metrics
    pair = metrics[metrics[S.CELL_LINE_SOURCE].isin(["A-549", "A549_LUNG"])]
    assert set(pair[S.CELL_LINE]) == {"A-549"} and set(pair[S.DATASET]) == {"lab_a", "lab_b"}
    drug = metrics[metrics[S.PERTURBAGEN_SOURCE].isin(["dabrafenib mesylate", "dabrafenib"])]
    assert set(drug[S.PERTURBAGEN]) == {"dabrafenib"} and set(drug[S.DATASET]) == {"lab_a", "lab_b"}
    assert not metrics.duplicated([*S.METRIC_KEY, S.SCALE]).any()
    for table in (two_sources_run.responses, two_sources_run.curves, metrics):
        assert {S.CELL_LINE_SOURCE, S.PERTURBAGEN_SOURCE, S.CELL_LINE_ID, S.PERTURBAGEN_ID} <= set(
            table.columns
        )
    identities = two_sources_run.identities.set_index([S.DATASET, S.SOURCE_NAME])
    assert identities.loc[("lab_b", "A549_LUNG"), S.IDENTITY_RULE] == S.IdentityRule.CCLE_SUFFIX
    assert identities.loc[("lab_a", "dabrafenib mesylate"), S.IDENTITY_RULE] == S.IdentityRule.SALT_SUFFIX
    assert two_sources_run.summary["identities"]["conflicts"] == 0


def test_identity_evidence_reaches_the_run(two_sources_run):
    cellosaurus = read_cellosaurus_text(EXCERPT)
    user = (UserIdentity("perturbagen", "dabrafenib", "dabrafenib", "PUBCHEM:44462760"),)
    result = run_pipeline(
        _read(_two_sources()), options=RunOptions(harmonize=HarmonizeOptions(user, cellosaurus))
    )
    metrics = result.metrics[result.metrics[S.CELL_LINE_SOURCE].isin(["A-549", "A549_LUNG"])]
    assert set(metrics[S.CELL_LINE_ID]) == {"CVCL_0023"}
    drug = result.metrics[result.metrics[S.PERTURBAGEN] == "dabrafenib"]
    assert set(drug[S.PERTURBAGEN_ID]) == {"PUBCHEM:44462760"} and drug[S.DATASET].nunique() == 2
    same = ["value", "status", "lower", "upper"]  # identities never change a number
    pd.testing.assert_frame_equal(result.metrics[same], two_sources_run.metrics[same])


def read_cellosaurus_text(text: str, tmp: Path | None = None):
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cellosaurus.txt"
        path.write_text(text, encoding="utf-8")
        return read_cellosaurus(path)


# ------------------------------------------------------------------------------------------ readers
def test_cellosaurus_excerpt_is_parsed():
    records = {r.accession: r for r in read_cellosaurus_text(EXCERPT)}
    assert set(records) == {"CVCL_0023", "CVCL_0030", "CVCL_0058"}
    assert records["CVCL_0023"].name == "A-549"
    assert records["CVCL_0023"].synonyms == ("A549", "A.549", "NCI-A549")
    assert records["CVCL_0023"].xrefs == ("COSMIC:905949", "DEPMAP:ACH-000681")
    assert records["CVCL_0058"].name == "HeLa S3" and records["CVCL_0058"].xrefs == ()


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("ID   X\nAC   CVCL_0001\nthis is not a line\n//\n", 3),
        ("ID   X\nSY   Y\n//\n", 1),
        ("ID   X\nAC   CVCL_0001\n", 1),
    ],
)
def test_a_bad_cellosaurus_file_names_the_line(tmp_path, text, line):
    path = tmp_path / "c.txt"
    path.write_text(text)
    with pytest.raises(InputFileError) as error:
        read_cellosaurus(path)
    assert error.value.line == line and str(path) in str(error.value)


_WORD = st.text(st.characters(codec="utf-8", exclude_characters=";\n\r/", exclude_categories=["Cs", "Zl", "Zp"]),
                min_size=1, max_size=12).map(str.strip).filter(lambda s: s and s != "//")  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_WORD, st.lists(_WORD, max_size=4), st.integers(0, 10**7)), max_size=6))
def test_cellosaurus_records_survive_a_round_trip(entries):
    text = "header line\n"
    for i, (name, synonyms, cosmic) in enumerate(entries):
        text += f"ID   {name}\nAC   CVCL_{i:04d}\n"
        text += f"SY   {'; '.join(synonyms)}\n" if synonyms else ""
        text += f"DR   Cosmic-CLP; {cosmic}\n//\n"
    records = read_cellosaurus_text(text)
    assert [(r.name, r.synonyms, r.xrefs) for r in records] == [
        (n, tuple(s), (f"COSMIC:{c}",)) for n, s, c in entries
    ]


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_read_or_refused_with_an_input_file_error(text):
    try:
        read_cellosaurus_text(text)
    except InputFileError:
        pass


def test_identity_table(tmp_path):
    path = tmp_path / "ids.csv"
    path.write_text(
        "kind,name,canonical,id\ncell_line, A-549 ,A549,CVCL_0023\nperturbagen,PLX-4032,vemurafenib,\n"
    )
    rows = read_identity_table(path)
    assert rows == (UserIdentity("cell_line", "A-549", "A549", "CVCL_0023"),
                    UserIdentity("perturbagen", "PLX-4032", "vemurafenib", None))  # fmt: skip


@pytest.mark.parametrize(
    ("text", "column", "line"),
    [
        ("kind,name,canonical\ndrug,X,Y\n", "kind", 2),
        ("kind,name,canonical\ncell_line,X,Y\ncell_line,,Y\n", "name", 3),
        ("kind,name\ncell_line,X\n", "canonical", None),
        ("kind,name,canonical\ncell_line,X,Y\ncell_line,X,Z\n", "name", 3),
    ],
)
def test_a_bad_identity_table_names_line_and_column(tmp_path, text, column, line):
    path = tmp_path / "ids.csv"
    path.write_text(text)
    with pytest.raises(InputFileError) as error:
        read_identity_table(path)
    assert (error.value.column, error.value.line) == (column, line)


# ------------------------------------------------------------------------------------------ command line
def test_cli_identity_options_and_contract(tmp_path):
    wells = tmp_path / "wells.parquet"
    _two_sources().to_parquet(wells)
    ids = tmp_path / "ids.csv"
    ids.write_text("kind,name,canonical,id\nperturbagen,dabrafenib,dabrafenib,PUBCHEM:44462760\n")
    cello = tmp_path / "cellosaurus.txt"
    cello.write_text(EXCERPT)
    out = tmp_path / "out"
    args = ["run", str(wells), "--out", str(out), "--identities", str(ids), "--cellosaurus", str(cello)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    identities = pd.read_parquet(out / "identities.parquet")
    assert set(identities.loc[identities[S.SOURCE_NAME] == "A549_LUNG", S.CANONICAL_ID]) == {"CVCL_0023"}
    html = (out / "report.html").read_text()
    assert html.index("Identities: conflicts") < html.index("Summary")
    if CHECKER.is_file():
        check = subprocess.run([sys.executable, str(CHECKER), str(out)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr


def test_cli_bad_identity_file_exits_2_naming_file_line_and_column(tmp_path):
    ids = tmp_path / "ids.csv"
    ids.write_text("kind,name,canonical\ncell_line,X,Y\nsample,Z,W\n")
    result = runner.invoke(app, ["run", "--out", str(tmp_path / "out"), "--identities", str(ids)])
    assert result.exit_code == 2
    assert "ids.csv" in result.output and "line 3" in result.output and "kind" in result.output
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------ GDSC identifiers
def test_gdsc_raw_carries_cosmic_and_drug_ids(tmp_path):
    head = "BARCODE,POSITION,TAG,CELL_LINE_NAME,COSMIC_ID,DRUG_ID,CONC,INTENSITY,ASSAY,DURATION\n"
    rows = ["7,49,NC-1,A549,905949,,100,Glo,4", "7,51,L1-D1-S,A549,905949,1003,0.1,55,Glo,4"]
    path = tmp_path / "g.csv"
    path.write_text(head + "\n".join(rows) + "\n")
    table = read_any(path, format="gdsc-raw")
    assert list(table[S.CELL_LINE_ID]) == ["COSMIC:905949"] * 2
    assert list(table[S.PERTURBAGEN_ID]) == ["", "GDSC_DRUG:1003"]


def test_partitioned_run_gives_the_same_identities_and_tables(tmp_path):
    pytest.importorskip("dask")
    from doseatlas.ingest.partitioned import list_parts, read_part
    from doseatlas.scale import run_partitioned

    wells = _two_sources()
    for i, (_, part) in enumerate(wells.groupby(S.DATASET)):
        part.to_parquet(tmp_path / f"part{i}.parquet", index=False)
    parts = list_parts([tmp_path])
    harmonize = HarmonizeOptions((UserIdentity("perturbagen", "dabrafenib", "dabrafenib", "PUBCHEM:44462760"),),
                                 read_cellosaurus_text(EXCERPT))  # fmt: skip
    options = RunOptions(harmonize=harmonize)
    ours = run_partitioned(parts, read=read_part, options=options, n_partitions=3)
    theirs = run_pipeline(pd.concat([read_part(p) for p in parts], ignore_index=True), options=options)
    pd.testing.assert_frame_equal(ours.identities, theirs.identities, check_exact=True)
    order = [*S.CURVE_KEY, S.SCALE, S.METRIC]
    a = theirs.metrics.sort_values(order).reset_index(drop=True)
    b = ours.metrics[a.columns].sort_values(order).reset_index(drop=True)
    pd.testing.assert_frame_equal(b, a, check_exact=True)
    assert set(ours.metrics.loc[ours.metrics[S.CELL_LINE_SOURCE] == "A549_LUNG", S.CELL_LINE_ID]) == {
        "CVCL_0023"
    }


def test_conflicts_are_warned_in_the_summary():
    wells = _two_sources()
    wells.loc[(wells[S.DATASET] == "lab_a") & (wells[S.CELL_LINE] == "CL05"), S.CELL_LINE] = "a549"
    result = run_pipeline(_read(wells))
    assert result.summary["identities"]["conflicts"] == 2  # lab_a: 'A-549' and 'a549' kept apart
    assert any("kept apart" in note for note in result.summary["notes"])
    assert not result.metrics.duplicated([*S.METRIC_KEY, S.SCALE]).any()
