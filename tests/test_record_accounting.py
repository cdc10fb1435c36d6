"""summary.json counts the records of the source files: rows a reader folds or derives are counted with a reason."""

from __future__ import annotations

import pandas as pd

from doseatlas import schemas as S
from doseatlas.ingest import merged_attrs, read_any
from doseatlas.pipeline import run_pipeline

from conftest import external_dir

INCUCYTE_MAP = (
    "well,role,cell_line,perturbation_type,perturbagen,concentration,concentration_unit,readout,dataset\n"
    "A1,vehicle,L,,,,,nuclei_count,incu\nC1,treated,L,drug,drugX,1,uM,nuclei_count,incu\n"
)


def _accounting(summary: dict) -> None:
    assert summary["rows_read"] == summary["rows_used"] + summary["rows_in_ledger"]
    folded, synthesized = summary[S.RECORDS_FOLDED], summary[S.ROWS_SYNTHESIZED]
    assert summary[S.SOURCE_RECORDS] == summary["rows_read"] + sum(folded.values()) - sum(
        synthesized.values()
    )


def test_incucyte_images_summed_into_one_well_read_are_counted(tmp_path):
    export = tmp_path / "run1.txt"
    export.write_text(
        "Date Time\tElapsed\tA1\tC1, Image 1\tC1, Image 2\n"
        "3/27/2018 2:20:00 PM\t0\t100\t40\t60\n"
        "3/28/2018 2:20:00 PM\t24\t200\t\t\n"
        "3/29/2018 2:20:00 PM\t48\t400\t70\t80\n"
    )
    (tmp_path / "map.csv").write_text(INCUCYTE_MAP)
    summary = run_pipeline(read_any(export, format="incucyte", plate_map=tmp_path / "map.csv")).summary
    _accounting(summary)
    assert summary[S.RECORDS_FOLDED] == {"further_images_summed_into_their_well": 2}
    assert summary["rows_read"] == 5 and summary[S.SOURCE_RECORDS] == 7  # the 7 non-empty cells of the export


def test_grmetrics_case_a_controls_derived_from_treated_rows_are_counted():
    path = external_dir("gr_metrics_toy") / "input" / "toy_example_input1.tsv"
    summary = run_pipeline(read_any(path, format="grmetrics")).summary
    _accounting(summary)
    assert summary[S.SOURCE_RECORDS] == len(pd.read_csv(path, sep="\t")) == 1008
    assert summary[S.ROWS_SYNTHESIZED] == {"case_a_control_wells_from_ctrl_and_time0_columns": 224}


def test_curvecurator_control_columns_are_counted_as_reference_records():
    path = external_dir("curvecurator_ctrp_sarcoma") / "viability_CTRP_40" / "dose_responses_40.0.tsv"
    summary = run_pipeline(read_any(path, format="curvecurator")).summary
    _accounting(summary)
    raw_columns = pd.read_csv(path, sep="\t").filter(like="Raw ")
    assert summary[S.SOURCE_RECORDS] == raw_columns.size  # every cell of every Raw column
    assert summary[S.RECORDS_FOLDED] == {"control_values_used_as_reference": len(raw_columns)}


def test_one_to_one_readers_report_no_folded_or_derived_records():
    data = external_dir("gdrtestdata") / "prism_gdc8025"
    summary = run_pipeline(read_any(data / "RawTreated.csv", format="gdr")).summary
    _accounting(summary)
    records = len(pd.read_csv(data / "RawTreated.csv")) + len(pd.read_csv(data / "Controls.csv"))
    assert summary[S.SOURCE_RECORDS] == summary["rows_read"] == records
    assert summary[S.RECORDS_FOLDED] == {} and summary[S.ROWS_SYNTHESIZED] == {}


def test_record_counts_add_up_over_files_and_other_attrs_keep_the_first_value():
    merged = merged_attrs(
        [
            {S.RECORDS_FOLDED: {"a": 2}, "doubling_times": {"X": 1.0}, "defaults": "first"},
            {
                S.RECORDS_FOLDED: {"a": 3, "b": 1},
                "doubling_times": {"X": 9.0, "Y": 2.0},
                "defaults": "second",
            },
        ]
    )
    assert merged[S.RECORDS_FOLDED] == {"a": 5, "b": 1}
    assert merged["doubling_times"] == {"X": 1.0, "Y": 2.0} and merged["defaults"] == "first"
