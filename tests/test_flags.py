"""Flags on every number (issue 13 part 4): declarations, each code's rule, the run's column and the export."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from doseatlas import schemas as S
from doseatlas.errors import ConfigError
from doseatlas.harmonize.export import ExportOptions, build_labels
from doseatlas.metrics.flags import (
    FLAG_CODES,
    FLAGS,
    FlagCode,
    FlagOptions,
    flag_metrics,
    has_flag,
    join_flags,
    readout_discordant,
)
from doseatlas.metrics.registry import REGISTRY, render_markdown
from doseatlas.qc import Z_FACTOR
from doseatlas.spatial import EDGE_EFFECT, EDGE_EFFECT_SE

St = S.MetricStatus
INF = np.inf


def row(dataset="a", readout="atp", status=St.ESTIMATED, value=1e-6, lower=5e-7, upper=2e-6, **kw) -> dict:
    metric = kw.pop("metric", "ic50")
    out = {
        S.DATASET: dataset,
        S.CELL_LINE: kw.pop("cell_line", "C1"),
        S.PERTURBATION_TYPE: "drug",
        S.PERTURBAGEN: kw.pop("perturbagen", "d"),
        S.READOUT: readout,
        S.DURATION_H: kw.pop("duration_h", 72.0),
        S.SERIES: "",
        S.METRIC: metric,
        S.VALUE: value,
        S.UNIT: REGISTRY[metric].unit,
        S.STATUS: status.value,
        S.LOWER: lower,
        S.UPPER: upper,
        S.REASON: None,
        S.SCALE: REGISTRY[metric].scale,
    }
    assert not kw
    return out


def test_every_code_is_declared_once_with_a_definition_and_documented():
    names = [f.name for f in FLAGS]
    assert len(names) == len(set(names)) == len(FLAG_CODES)
    assert {"edge_effect", "low_z_factor", "signal_increase", "readout_discordant", "time_dependent"} <= set(
        names
    )
    doc = render_markdown()
    for flag in FLAGS:
        assert flag.definition and flag.raised_by
        assert f"| `{flag.name}` |" in doc


def test_flags_are_sorted_joined_and_tested_as_whole_codes():
    got = join_flags({"b_code": np.array([1, 0, 1]), "a_code": np.array([1, 1, 0])}, 3)
    assert got.tolist() == ["a_code;b_code", "a_code", "b_code"]
    flags = pd.Series(["edge_effect;time_dependent", "", None, "low_z_factor"])
    assert has_flag(flags, "edge_effect").tolist() == [True, False, False, False]
    assert has_flag(flags, "low_z_factor").tolist() == [False, False, False, True]
    with pytest.raises(ConfigError, match="unknown flag"):
        has_flag(flags, "edge")


def test_readouts_disagreeing_beyond_their_intervals_flag_both_sides():
    metrics = pd.DataFrame(
        [
            row("lab_a", "atp", value=3e-7, lower=2e-7, upper=4e-7),  # far below the resazurin bound
            row("lab_b", "resazurin", St.RIGHT_CENSORED, np.nan, 3e-5, INF),
            row("lab_a", "atp", value=3e-7, lower=2e-7, upper=4e-7, cell_line="C2"),  # overlapping intervals
            row("lab_b", "resazurin", value=5e-7, lower=3e-7, upper=9e-7, cell_line="C2"),
            row(
                "lab_a", "atp", value=1e-7, lower=5e-8, upper=2e-7, cell_line="C3"
            ),  # same readout: not compared
            row("lab_b", "atp", value=1e-5, lower=5e-6, upper=2e-5, cell_line="C3"),
            row("lab_a", "atp", value=1e-7, lower=np.nan, upper=np.nan, cell_line="C4"),  # no interval
            row("lab_b", "resazurin", value=1e-5, lower=5e-6, upper=2e-5, cell_line="C4"),
            row("lab_a", "atp", value=1e-7, lower=5e-8, upper=2e-7, cell_line="C5"),  # refused side
            row("lab_b", "resazurin", St.REFUSED, np.nan, np.nan, np.nan, cell_line="C5"),
            row(
                "lab_a", "atp", St.LEFT_CENSORED, np.nan, 0.0, 1e-8, cell_line="C6"
            ),  # left bound below estimate
            row("lab_b", "resazurin", value=1e-6, lower=5e-7, upper=2e-6, cell_line="C6"),
            row("lab_a", "atp", value=1e-7, lower=5e-8, upper=2e-7, cell_line="C7", duration_h=48.0),
            row("lab_b", "resazurin", value=1e-5, lower=5e-6, upper=2e-5, cell_line="C7"),  # other duration
        ]
    )
    got = readout_discordant(metrics)
    assert got.tolist() == [True, True] + [False] * 8 + [True, True] + [False, False]


def test_flag_metrics_marks_curves_from_their_plates_responses_and_time_dependence():
    metrics = pd.DataFrame(
        [row(perturbagen=p, metric=m) for p in ("d", "e", "f") for m in ("ic50", "emax")]
    ).assign(**{S.FLAGS: "stale"})
    responses = pd.DataFrame(
        {
            S.DATASET: "a",
            S.PLATE: ["p1", "p1", "p2", "p2", "p3", "p3"],
            S.CELL_LINE: "C1",
            S.PERTURBATION_TYPE: "drug",
            S.PERTURBAGEN: ["d", "d", "e", "e", "f", "f"],
            S.READOUT: "atp",
            S.TIME_H: 72.0,
            S.SERIES: "",
            S.CONCENTRATION: [1e-7, 1e-5] * 3,
            S.RELATIVE_VIABILITY: [0.9, 0.2, 0.9, 0.3, 1.0, 1.35],
        }
    )
    plates = pd.DataFrame(
        {
            S.DATASET: "a",
            S.PLATE: ["p1", "p2", "p3"],
            S.CELL_LINE: "C1",
            S.TIME_H: 72.0,
            S.READOUT: "atp",
            EDGE_EFFECT: [0.7, 0.98, np.nan],
            EDGE_EFFECT_SE: [0.03, 0.03, np.nan],
            Z_FACTOR: [0.7, 0.2, np.nan],
        }
    )
    dependence = pd.DataFrame(
        {k: [v] for k, v in row(perturbagen="e").items() if k in (S.DATASET, S.CELL_LINE, S.PERTURBATION_TYPE,
                                                               S.PERTURBAGEN, S.READOUT, S.SERIES)}
    ).assign(time_dependent=True)  # fmt: skip
    out = flag_metrics(metrics, responses=responses, plates=plates, dependence=dependence)
    by_drug = out.groupby(S.PERTURBAGEN)[S.FLAGS].agg(set)
    assert by_drug["d"] == {FlagCode.EDGE_EFFECT}
    assert by_drug["e"] == {"low_z_factor;time_dependent"}
    assert by_drug["f"] == {FlagCode.SIGNAL_INCREASE}
    loose = flag_metrics(
        metrics, responses=responses, plates=plates, dependence=dependence.iloc[:0],
        options=FlagOptions(min_z_factor=0.1, min_edge_effect=0.5, signal_increase=0.5),
    )  # fmt: skip
    assert set(loose[S.FLAGS]) == {""}
    with pytest.raises(ConfigError):
        FlagOptions(min_edge_effect=1.5)


def test_export_keeps_flags_unions_them_on_consensus_and_filters_by_them():
    metrics = pd.DataFrame(
        [
            row("lab_a", "atp", value=1e-6, lower=5e-7, upper=2e-6),
            row("lab_b", "resazurin", value=1.2e-6, lower=6e-7, upper=2.4e-6),
        ]
    ).assign(**{S.FLAGS: ["edge_effect", "low_z_factor;time_dependent"]})
    labels = build_labels(metrics, options=ExportOptions())
    consensus = labels[labels[S.DATASET] == S.CONSENSUS_DATASET]
    assert consensus[S.FLAGS].tolist() == ["edge_effect;low_z_factor;time_dependent"]
    assert labels.loc[labels[S.DATASET] == "lab_a", S.FLAGS].tolist() == ["edge_effect"]
    kept = build_labels(metrics, options=ExportOptions(exclude_flags=("edge_effect",)))
    assert kept[S.DATASET].tolist() == ["lab_b", S.CONSENSUS_DATASET]
    assert kept[S.N_SOURCES].iloc[-1] == 1
    unflagged = build_labels(metrics.drop(columns=[S.FLAGS]), options=ExportOptions())  # an older run
    assert set(unflagged[S.FLAGS]) == {""}
    with pytest.raises(ConfigError, match="unknown flag"):
        ExportOptions(exclude_flags=("edgy",))


def test_the_bundled_example_flags_atpzolid_readout_discordant():
    from doseatlas.cli import example_path
    from doseatlas.ingest import canonical_columns
    from doseatlas.pipeline import run_pipeline

    wells = pd.read_parquet(example_path())
    wells = wells[wells[S.PERTURBAGEN].isin(["atpzolid", "statinib"]) | (wells[S.ROLE] != "treated")]
    result = run_pipeline(canonical_columns(wells, source="example"))
    ic50 = result.metrics[(result.metrics[S.METRIC] == "ic50") & (result.metrics[S.DURATION_H] == 72.0)]
    atp = ic50[(ic50[S.PERTURBAGEN] == "atpzolid") & (ic50[S.STATUS] != St.REFUSED.value)]
    wide = atp.pivot_table(index=S.CELL_LINE, columns=S.READOUT, values=S.STATUS, aggfunc="first")
    both = wide.dropna().index  # cell lines with an ATP estimate and a resazurin bound
    assert len(both) >= 3 and (wide.loc[both, "atp"] == "estimated").all()
    assert (wide.loc[both, "resazurin"] == "right_censored").all()
    compared = atp[atp[S.CELL_LINE].isin(both)]
    assert has_flag(compared[S.FLAGS], "readout_discordant").all(), compared
    assert result.summary["flags"]["readout_discordant"] >= 2 * len(both)
    assert result.metrics[S.FLAGS].notna().all()
