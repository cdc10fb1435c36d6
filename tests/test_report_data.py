"""Issue 15, report stage: the report is drawn from small aggregates (``doseatlas.report_data``), and the
aggregates of the parts of a run (split by cell line, as the partitioned engine's buckets hold whole pairs) add
up to those of the whole run: the same report, page for page."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from doseatlas import report
from doseatlas import schemas as S
from doseatlas.pipeline import run_pipeline
from doseatlas.report_data import merge_report_data, report_data
from doseatlas.simulate import DatasetConfig, SimulationConfig, simulate

META = {"package_version": "0", "schema_version": "1", "created_utc": "now", "command": "doseatlas run",
        "inputs": [], "parameters": {}}  # fmt: skip
PARTS = ("metrics", "responses", "curves", "ledger")


@pytest.fixture(scope="module")
def result():
    labs = [DatasetConfig(name=name, time_zero=True) for name in ("lab_a", "lab_b")]
    wells = simulate(SimulationConfig(n_cell_lines=4, n_drugs=3, datasets=labs), seed=3).wells
    wells = wells.assign(**{S.SOURCE_FILE: "sim.parquet", S.SOURCE_LINE: np.arange(len(wells))})
    run = run_pipeline(wells)
    flags = run.metrics[S.FLAGS].astype(object)
    flags[run.metrics[S.CELL_LINE].eq(run.metrics[S.CELL_LINE].iloc[0]).to_numpy()] = "high_cv"
    run.metrics[S.FLAGS] = flags.astype(run.metrics[S.FLAGS].dtype)  # flagged curves in one part only
    return run


def _part(result, lines) -> SimpleNamespace:
    tables = {
        name: (t[t[S.CELL_LINE].isin(lines).to_numpy()] if S.CELL_LINE in t else t.head(0))
        for name in PARTS
        for t in [getattr(result, name)]
    }
    return SimpleNamespace(**tables, consistency=result.consistency, summary=result.summary)


def test_parts_merge_to_the_report_of_the_whole_run(result):
    lines = sorted(result.metrics[S.CELL_LINE].unique())
    assert len(lines) >= 3 and result.metrics[S.DATASET].nunique() >= 2
    parts = [report_data(_part(result, lines[i::2])) for i in range(2)]
    merged = merge_report_data(
        parts,
        summary=result.summary,
        identities=result.identities,
        consistency=result.consistency,
        plates=result.plates,
    )
    whole = report_data(result)
    assert whole.plate_maps.count("<figure>") >= 1  # drawn from the whole run's wells, not from merged parts
    page = report.render_report(dataclasses.replace(whole, plate_maps=""), meta=META)
    assert "could not be" not in page and page.count("<img") >= 2
    assert report.render_report(merged, meta=META) == page
    assert report.NO_PLATE_MAPS in page


def test_counts_of_the_aggregates_are_those_of_the_rows(result):
    data = report_data(result)
    assert data.metric_counts["rows"].sum() == len(result.metrics)
    flagged = result.metrics[result.metrics[S.FLAGS].fillna("").ne("")]
    assert data.n_marked == len(flagged.drop_duplicates(list(S.CURVE_KEY))) > 0
    marks = data.marked.set_index(S.CELL_LINE)["mark"]
    assert (marks.loc[[result.metrics[S.CELL_LINE].iloc[0]]] == "high_cv").all()  # one mark per curve
    picks = report.final_picks(data.sample.candidates)
    assert len(picks) and len(data.sample.metrics) < len(result.metrics)
    # the sample does not depend on the row order
    shuffled = result.metrics.sample(frac=1.0, random_state=1)
    again = report.pick_curves(shuffled)
    pd.testing.assert_frame_equal(
        again[[*S.CURVE_KEY, S.METRIC]],
        report.pick_curves(result.metrics)[[*S.CURVE_KEY, S.METRIC]],
    )


def _marked_by_sorting(metrics: pd.DataFrame, most: int) -> tuple[pd.DataFrame, int]:
    """marked_curves as the rows say it: distinct (curve, mark) rows sorted by text, marks joined per curve."""
    text = (
        metrics[S.FLAGS].astype("string").fillna("") + " " + metrics[S.REVIEWED].astype("string").fillna("")
    )
    text = text.str.strip()
    keys = list(S.CURVE_KEY)
    rows = metrics[keys].assign(mark=text.to_numpy(dtype=object))[text.ne("").to_numpy(dtype=bool)]
    rows = rows.drop_duplicates().sort_values([*keys, "mark"], kind="stable")
    joined = rows.groupby(keys, dropna=False, sort=False)["mark"].agg(" ".join).reset_index()
    return joined.head(most).reset_index(drop=True), len(joined)


@pytest.mark.parametrize("n, in_order", [(400, False), (3000, True)])
def test_marked_curves_are_those_of_sorting_the_rows(n, in_order):
    from doseatlas.report_data import marked_curves

    rng = np.random.default_rng(5)
    text = pd.StringDtype(na_value=np.nan)
    metrics = pd.DataFrame(
        {
            S.DATASET: pd.array(rng.choice(["b", "a", None], n), dtype=text),
            S.CELL_LINE: pd.array(rng.choice(["CL2", "CL10", "cl1", "É"], n), dtype=text),
            S.PERTURBATION_TYPE: pd.array(["compound"] * n, dtype=text),
            S.PERTURBAGEN: pd.array(rng.choice(["d1", "d2", None], n), dtype=text),
            S.READOUT: pd.array(rng.choice(["atp", "count"], n), dtype=text),
            S.DURATION_H: rng.choice([72.0, 24.0, np.nan], n),
            S.SERIES: pd.array(rng.choice(["", "s1"], n), dtype=text),
            S.SEEDING_DENSITY: rng.choice([1000.0, np.nan, 500.0], n),
            S.FLAGS: pd.array(
                rng.choice(["", "edge_effect", "bound_limited;edge_effect", None], n), dtype=text
            ),
            S.REVIEWED: pd.array(
                rng.choice([None, "accepted", "rejected"], n, p=[0.8, 0.1, 0.1]), dtype=text
            ),
        }
    )
    if in_order:  # a table in curve order (as a run's): its key columns come in runs
        metrics = metrics.sort_values(list(S.CURVE_KEY), kind="stable").reset_index(drop=True)
    for most in (3, 10_000):
        (got, total), (want, count) = marked_curves(metrics, most=most), _marked_by_sorting(metrics, most)
        assert total == count > most // 1000
        pd.testing.assert_frame_equal(got.astype(object), want.astype(object), check_exact=True)


def test_candidate_ranks_hash_each_key_as_an_object():
    """The rank of a candidate curve is the hash of its key values as Python objects (text columns hashed as
    categoricals for speed must give the same hashes, missing values included)."""
    rng = np.random.default_rng(2)
    n = 300
    keys = pd.DataFrame(
        {
            "a": pd.array(rng.choice(["x", "", "É", None, "y;z"], n), dtype=pd.StringDtype(na_value=np.nan)),
            "b": pd.array(rng.choice(["p", None], n), dtype="string"),
            "c": rng.choice([72.0, np.nan, 0.0, -0.0], n),
            "d": pd.Series(rng.choice(["o", None, 3], n), dtype=object),
        }
    )
    for hash_key in ("0000000000000000", "0000000000000007"):
        want = pd.util.hash_pandas_object(keys.astype(object), index=False, hash_key=hash_key)
        got = pd.util.hash_pandas_object(report._hashable(keys), index=False, hash_key=hash_key)
        np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())
