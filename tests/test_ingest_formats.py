"""Format readers on small hand-made files: mapping of columns, kept metadata, unknowns, provenance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from doseatlas import schemas as S
from doseatlas.errors import ConfigError, InputFileError
from doseatlas.ingest import READERS, read_any
from doseatlas.ingest._common import EXCLUDED_BY_SOURCE, well_names
from doseatlas.validate import validate_responses, validate_wells

from conftest import external_dir


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_well_names_1536():
    assert list(well_names(np.array([0, 47, 48, 1535]), n_columns=48)) == ["A01", "A48", "B01", "AF48"]


def test_gdsc_roles_units_and_excluded_wells(tmp_path):
    head = "BARCODE,POSITION,TAG,CELL_LINE_NAME,DRUG_ID,CONC,INTENSITY,ASSAY,DURATION,SEEDING_DENSITY,DRUGSET_ID\n"
    rows = [
        "7,1,UN-USED,X,,,5,Glo,4,250,1",
        "7,49,NC-1,X,4000,,100,Glo,4,250,1",
        "7,50,B,X,,,10,Glo,4,250,1",
        "7,51,L1-D1-S,X,1003,0.1,55,Glo,4,250,1",
        "7,52,PC-1,X,1862,4,12,Glo,4,250,1",
        "7,53,NC-0,X,,,98,Glo,4,250,1",
    ]
    table = read_any(_write(tmp_path / "g.csv", head + "\n".join(rows) + "\n"), format="gdsc-raw")
    assert list(table[S.ROLE]) == [
        EXCLUDED_BY_SOURCE,
        "vehicle",
        "blank",
        "treated",
        "positive_control",
        "untreated",
    ]
    assert list(table[S.WELL]) == ["A01", "B01", "B02", "B03", "B04", "B05"]
    assert list(table[S.SOURCE_LINE]) == [2, 3, 4, 5, 6, 7]
    treated = table.iloc[3]
    assert (treated[S.PERTURBAGEN], treated[S.CONCENTRATION], treated[S.CONCENTRATION_UNIT]) == (
        "1003",
        "0.1",
        "uM",
    )
    assert treated[S.TIME_H] == "96" and treated[S.READOUT] == "atp" and treated[S.DATASET] == "GDSC"
    result = validate_wells(table)
    assert result.n_used == 5 and list(result.ledger[S.SOURCE_LINE]) == [2]


def test_gdsc_bad_position_is_one_clear_error(tmp_path):
    path = _write(
        tmp_path / "g.csv", "BARCODE,POSITION,TAG,CELL_LINE_NAME,DRUG_ID,CONC,INTENSITY\n1,x,B,X,,,1\n"
    )
    with pytest.raises(InputFileError, match=r"line 2, column 'POSITION'"):
        read_any(path, format="gdsc-raw")


def test_grmetrics_case_a_emits_controls_and_unknowns(tmp_path):
    text = (
        "cell_line\tagent\treplicate\tconcentration\tcell_count\tcell_count__ctrl\tcell_count__time0\n"
        "A\td\t1\t0.1\t80\t100\t20\nA\td\t1\t1\t80\t100\t20\n"
    )
    table = read_any(_write(tmp_path / "a.tsv", text), format="grmetrics")
    assert sorted(table[S.ROLE]) == ["time_zero", "treated", "treated", "vehicle"]
    assert (table[S.READOUT] == S.Readout.UNKNOWN).all()
    assert list(table.loc[table[S.ROLE] != "time_zero", S.TIME_H].unique()) == [""]
    result = validate_wells(table)  # no time column and no time_h option: reads without a time -> ledger
    assert list(result.clean[S.ROLE]) == ["time_zero"]
    assert set(result.ledger[S.LEDGER_REASON]) == {"missing_time"} and result.n_rejected == 3
    table = read_any(tmp_path / "a.tsv", format="grmetrics", time_h=72)
    assert table.attrs["defaults"][S.TIME_H] == 72 and validate_wells(table).n_rejected == 0


def test_grmetrics_case_b(tmp_path):
    data = _write(
        tmp_path / "d.tsv",
        "cell_line\tagent\treplicate\ttime\tconcentration\tcell_count\tctrl_tag\ttime0_tag\n"
        "A\td\t1\t72\t0.1\t80\tc1\tt1\nA\td\t1\t72\t1\t40\tc1\tt1\n",
    )
    ctrl = _write(
        tmp_path / "c.tsv",
        "cell_line\treplicate\ttime\tctrl_tag\tcell_count\nA\t1\t72\tc1\t100\nA\t1\t72\tc1\t100\n",
    )
    t0 = _write(tmp_path / "t.tsv", "cell_line\ttime0_tag\tcell_count\nA\tt1\t20\n")
    table = read_any(data, format="grmetrics", ctrl=ctrl, time0=t0)
    result = validate_wells(table)
    assert result.n_used == 5 and set(table[S.SOURCE_FILE]) == {str(data), str(ctrl), str(t0)}
    assert table[S.PLATE].nunique() == 1


def test_pharmacogx_response_table(tmp_path):
    raw = _write(
        tmp_path / "raw_long.csv",
        "exp_id,dose_index,dose_uM,viability_pct\ne1,1,0.1,90\ne1,2,1,45\ne2,1,0.1,x\n",
    )
    _write(
        tmp_path / "sensitivity_info.csv",
        "exp_id,sampleid,treatmentid,duration_h\ne1,L1,D1,72\ne2,L1,D1,72\n",
    )
    table = read_any(raw, format="pharmacogx")
    assert (
        list(table[S.RESPONSE]) == ["0.9", "0.45", "x"]
        and (table[S.RESPONSE_SCALE] == S.RELATIVE_VIABILITY).all()
    )
    assert list(table[S.REPLICATE]) == ["1", "1", "2"] and (table[S.TIME_H] == "72").all()
    result = validate_responses(table)
    assert result.n_used == 2 and list(result.ledger[S.SOURCE_LINE]) == [4]


def test_curvecurator_response_table(tmp_path):
    _write(
        tmp_path / "p.toml",
        "['Meta']\nid = 'X'\ntreatment_time = '3 d'\n['Experiment']\nexperiments = [0, 1, 2]\n"
        "doses = [0.0, 10.0, 100.0]\ndose_scale = '1e-9'\ndose_unit = 'M'\ncontrol_experiment = [0]\n",
    )
    data = _write(tmp_path / "d.tsv", "Name\tRaw 0\tRaw 1\tRaw 2\nL1_drugA\t2\t1\t\n")
    table = read_any(data, format="curvecurator")
    assert list(table[S.RESPONSE]) == ["0.5", ""] and list(table[S.CONCENTRATION]) == ["10", "100"]
    assert (table[S.CONCENTRATION_UNIT] == "nM").all() and (table[S.TIME_H] == "72").all()
    assert (table[S.CELL_LINE] == "L1").all() and (table[S.PERTURBAGEN] == "drugA").all()
    assert validate_responses(table).n_rejected == 1


def test_thunor_nearest_read(tmp_path):
    _write(
        tmp_path / "x_wells_treated.csv",
        "dataset,drug,cell_line,dose,plate,well_id,well_num\n4,d,L,1e-6,P,11,25\n",
    )
    _write(
        tmp_path / "x_assays_treated.csv",
        "assay,well_id,value,timepoint_hours\nCell count,11,5,1.0\nCell count,11,50,70\n",
    )
    _write(
        tmp_path / "x_controls.csv",
        "dataset,assay,cell_line,plate,well_id,value,well_num,timepoint_hours\n4,Cell count,L,P,12,100,0,70\n",
    )
    table = read_any(tmp_path / "x_wells_treated.csv", format="thunor-hts", time_h=72)
    # every read is a row: the one at 1 h is kept for the ledger (reason read_time_not_selected), not dropped
    assert list(table[S.TIME_H]) == ["1", "70", "70"] and list(table[S.WELL]) == ["B02", "B02", "A01"]
    not_selected = S.RowReason.READ_TIME_NOT_SELECTED.value
    assert list(table[S.ROLE]) == [not_selected, S.Role.TREATED.value, S.Role.VEHICLE.value]
    assert table.attrs["reads_not_selected"] == 1
    checked = validate_wells(table)
    assert (checked.n_used, checked.n_rejected) == (2, 1)
    assert checked.ledger[S.LEDGER_REASON].tolist() == [not_selected]
    assert checked.ledger[S.SOURCE_LINE].tolist() == [2]
    every = read_any(tmp_path / "x_wells_treated.csv", format="thunor-hts", time_h=None)
    assert len(every) == 3 and not every[S.ROLE].isin(S.LEDGER_ROLES).any()


def test_thunor_well_listed_twice_with_other_descriptions_is_an_error(tmp_path):
    _write(
        tmp_path / "x_wells_treated.csv",
        "dataset,drug,cell_line,dose,plate,well_id,well_num\n4,d,L,1e-6,P,11,25\n4,e,L,1e-6,P,11,25\n",
    )
    _write(tmp_path / "x_assays_treated.csv", "assay,well_id,value,timepoint_hours\nCell count,11,5,70\n")
    _write(
        tmp_path / "x_controls.csv",
        "dataset,assay,cell_line,plate,well_id,value,well_num,timepoint_hours\n4,Cell count,L,P,12,100,0,70\n",
    )
    with pytest.raises(InputFileError, match="well_id '11' is listed twice"):
        read_any(tmp_path / "x_wells_treated.csv", format="thunor-hts")


def test_gdr_controls_and_day0(tmp_path):
    _write(
        tmp_path / "RawTreated.csv",
        "row_id,col_id,Concentration,ReadoutValue,BackgroundValue,CorrectedReadout,record_id\nG1_d_m_72,C1,1,60,10,50,5\n",
    )
    _write(
        tmp_path / "Controls.csv",
        "row_id,col_id,control_type,CorrectedReadout,record_id\nG1_d_m_72,C1,UntrtReadout,100,1\nG1_d_m_72,C1,Day0Readout,25,2\n",
    )
    table = read_any(tmp_path / "RawTreated.csv", format="gdr")
    assert list(table[S.ROLE]) == ["treated", "vehicle", "time_zero"]
    assert list(table[S.TIME_H]) == ["72", "72", "0"] and list(table[S.SIGNAL]) == ["50", "100", "25"]


def test_read_any_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown format"):
        read_any(tmp_path / "x.csv", format="nope")
    with pytest.raises(InputFileError, match="no input file"):
        read_any([], format="gdsc-raw")
    assert {
        "gdsc-raw",
        "grmetrics",
        "pharmacogx",
        "curvecurator",
        "thunor-hts",
        "gdr",
        "plate-matrix",
    } <= set(READERS)


def test_read_any_refuses_mixing_wells_and_responses(tmp_path):
    wells = _write(tmp_path / "w.csv", ",".join(S.REQUIRED_WELL_COLUMNS) + "\n" + ",".join(["x"] * 11) + "\n")
    cols = S.REQUIRED_RESPONSE_COLUMNS
    responses = _write(tmp_path / "r.csv", ",".join(cols) + "\n" + ",".join(["x"] * len(cols)) + "\n")
    mapping = _write(tmp_path / "m.toml", "[constants]\n")
    assert len(read_any([wells, wells], mapping=mapping)) == 2
    with pytest.raises(InputFileError, match="cannot be mixed"):
        read_any([wells, responses], mapping=mapping)


def test_thunor_hdf5_that_is_not_hdf5_is_one_clear_error(tmp_path):
    bad = tmp_path / "screen.h5"
    bad.write_bytes(b"not an hdf5 file\n" * 10)
    with pytest.raises(InputFileError, match=r"screen\.h5"):
        read_any(bad, format="thunor-hts")


def test_thunor_hdf5_without_the_thunor_stores_is_refused(tmp_path):
    path = tmp_path / "other.h5"
    pd.DataFrame({"a": [1.0]}).to_hdf(path, key="something")
    with pytest.raises(InputFileError, match="not a Thunor HDF5 file"):
        read_any(path, format="thunor-hts")


INCUCYTE_MAP = (
    "well,role,cell_line,perturbation_type,perturbagen,concentration,concentration_unit,readout,dataset\n"
    "A1,blank,,,,,,nuclei_count,incu\nB1,vehicle,,,,,,nuclei_count,incu\n"
    "C1,treated,,drug,drugX,1,uM,nuclei_count,incu\n"
)


def test_incucyte_export_time_course_with_label_cell_type_and_images(tmp_path):
    export = tmp_path / "run1.txt"
    export.write_text(
        "Label: plateA\t\t\t\nCell Type: MCF7\t\t\t\n\t\t\t\n"
        "Date Time\tElapsed\tA1\tB1\tC1, Image 1\tC1, Image 2\n"
        "3/27/2018 2:20:00 PM\t0\t3\t100\t40\t60\n"
        "3/28/2018 2:20:00 PM\t24\t2\t200\t\t\n"
        "3/29/2018 2:20:00 PM\t48\t4\t400\t70\t80\n"
    )
    (tmp_path / "map.csv").write_text(INCUCYTE_MAP)
    table = read_any(export, format="incucyte", plate_map=tmp_path / "map.csv")
    assert set(table[S.PLATE]) == {"plateA"} and set(table[S.CELL_LINE]) == {"MCF7"}
    at = table.set_index([S.WELL, S.TIME_H])
    assert at.loc[("C01", "48"), S.SIGNAL] == "150.0"  # the two images of C1 summed
    assert ("C01", "24") not in at.index  # empty cells: not read at that time
    assert at.loc[("B01", "0"), S.ROLE] == "time_zero" and at.loc[("A01", "0"), S.ROLE] == "blank"
    assert at.loc[("B01", "24"), S.ROLE] == "vehicle" and at.loc[("C01", "48"), S.ROLE] == "treated"
    assert at.loc[("C01", "48"), S.SOURCE_LINE] == 7
    with_time = INCUCYTE_MAP.replace("readout,dataset", "readout,dataset,time_h").replace(
        "incu\n", "incu,72\n"
    )
    (tmp_path / "timed.csv").write_text(with_time)
    with pytest.raises(InputFileError, match="leave time_h empty"):
        read_any(export, format="incucyte", plate_map=tmp_path / "timed.csv")
    (tmp_path / "not.txt").write_text("A\tB\n1\t2\n")
    with pytest.raises(InputFileError, match="not an IncuCyte export"):
        read_any(tmp_path / "not.txt", format="incucyte", plate_map=tmp_path / "map.csv")


def test_incucyte_minimal_export_from_thunor_is_read_cell_for_cell(tmp_path):
    export = external_dir("thunor_hts007") / "data" / "test_incucyte_minimal.txt"
    (tmp_path / "map.csv").write_text(INCUCYTE_MAP.replace(",,,,,,nuclei", ",CL,,,,,nuclei"))
    table = read_any(export, format="incucyte", plate_map=tmp_path / "map.csv")
    read = table[table[S.SIGNAL].astype(str).str.strip() != ""]
    assert len(read) == 18 * 8 and set(read[S.PLATE]) == {"test_incucyte_minimal"}
    at = read.set_index([S.WELL, S.TIME_H])[S.SIGNAL]
    assert at[("A01", "0")] == "3" and at[("H01", "136")] == "5112" and at[("D01", "56")] == "4456"
    thunor_io = pytest.importorskip("thunor.io")  # its own reader, where installed (bench extra)
    theirs = thunor_io.read_incucyte(str(export)).controls.reset_index()  # no drugs: all wells are "controls"
    assert len(theirs) == len(read)
    assert sorted(theirs["value"].astype(float)) == sorted(read[S.SIGNAL].astype(float))
