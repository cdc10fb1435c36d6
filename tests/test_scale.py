"""The partitioned (Dask) run gives the in-memory run's tables, bit for bit, however the input is split."""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from doseatlas import scale
from doseatlas import schemas as S
from doseatlas.cli import app, example_path
from doseatlas.errors import InputFileError
from doseatlas.ingest.partitioned import Part, list_parts, read_part
from doseatlas.io import RUN_TABLES, read_metadata
from doseatlas.pipeline import FitOptions, RunOptions, run_pipeline
from doseatlas.scale import plate_buckets, run_partitioned

pytest.importorskip("dask")

CHECKER = Path(__file__).resolve().parents[2] / "shared" / "checks" / "check_output.py"
TABLES = RUN_TABLES  # every output table, compared row for row


def _wells_with_bad_rows() -> pd.DataFrame:
    wells = pd.read_parquet(example_path())
    bad = wells.sample(n=6, random_state=1).copy()
    bad[S.ROLE] = "treatd"  # unknown role: the ledger
    wells = pd.concat([wells, bad, wells.iloc[[3, 4]]], ignore_index=True)  # and two exact duplicates
    return wells.sample(frac=1.0, random_state=2).reset_index(drop=True)  # plates scattered over the files


def _write_split(root: Path, wells: pd.DataFrame) -> Path:
    """Hive-partitioned by dataset, each data set split into 3 files by rows (plates span files)."""
    for dataset, block in wells.groupby(S.DATASET, sort=True):
        folder = root / f"dataset={dataset}"
        folder.mkdir(parents=True)
        for i, rows in enumerate(np.array_split(np.arange(len(block)), 3)):
            block.iloc[rows].drop(columns=[S.DATASET]).to_parquet(folder / f"part{i}.parquet")
    return root


@pytest.fixture(scope="module")
def split_input(tmp_path_factory) -> list[Part]:
    root = _write_split(tmp_path_factory.mktemp("parts"), _wells_with_bad_rows())
    return list_parts([root])


_IN_MEMORY: dict = {}


def _in_memory(parts: list[Part], policy: str):
    key = (tuple(str(p.path) for p in parts), policy)
    if key not in _IN_MEMORY:
        raw = pd.concat([read_part(p) for p in parts], ignore_index=True)
        _IN_MEMORY[key] = run_pipeline(raw, options=RunOptions(fit=FitOptions(policy=policy)))
    return _IN_MEMORY[key]


def _assert_same(ours, theirs) -> None:
    """Every table equal to the bit, columns and rows in the same order (no sorting here)."""
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(ours, name), getattr(theirs, name), check_exact=True, obj=name)
    assert ours.summary == theirs.summary


@pytest.mark.parametrize(
    ("policy", "n_partitions"),
    [
        ("shrink", 5),
        ("refuse", 1),
        pytest.param("refuse", 3, marks=pytest.mark.slow),
        pytest.param("refuse", 40, marks=pytest.mark.slow),
    ],
)
def test_partitioned_run_equals_the_in_memory_run(split_input, policy, n_partitions):
    options = RunOptions(fit=FitOptions(policy=policy))
    ours = run_partitioned(split_input, read=read_part, options=options, n_partitions=n_partitions)
    theirs = _in_memory(split_input, policy)
    _assert_same(ours, theirs)
    assert ours.summary["rows_read"] == ours.summary["rows_used"] + ours.summary["rows_in_ledger"]
    assert ours.summary["rows_in_ledger"] >= 8  # 6 unknown roles, 2 duplicates (and wells they read twice)
    assert ours.responses[S.ROW_ID].is_unique


def test_a_large_input_gets_more_buckets_than_asked_and_the_same_tables(split_input, monkeypatch):
    n_rows = sum(len(read_part(p)) for p in split_input)
    assert scale.bucket_count(2, n_rows, bucket_rows=n_rows // 5 + 1) == 5  # one per bucket_rows rows
    assert scale.bucket_count(2, n_rows, bucket_rows=n_rows - 1) == 2  # rounded up, at least as asked
    assert scale.bucket_count(8, n_rows) == 8  # a small input: the buckets asked for
    asked = []
    monkeypatch.setattr(scale, "BUCKET_ROWS", n_rows // 5 + 1)
    monkeypatch.setattr(scale, "plate_buckets", lambda keys, n: asked.append(n) or plate_buckets(keys, n))
    ours = run_partitioned(split_input, read=read_part, n_partitions=2)
    assert asked == [5]
    _assert_same(ours, _in_memory(split_input, "refuse"))


@pytest.mark.slow
def test_worker_processes_give_the_same_tables(split_input):
    ours = run_partitioned(split_input, read=read_part, n_partitions=4, workers=2)
    _assert_same(ours, _in_memory(split_input, "refuse"))


def test_hive_folders_become_columns_and_a_contradiction_is_an_error(tmp_path):
    wells = pd.read_parquet(example_path()).head(50)
    folder = tmp_path / "dataset=lab%20x"
    folder.mkdir()
    wells.drop(columns=[S.DATASET]).to_parquet(folder / "a.parquet")
    (part,) = list_parts([tmp_path])
    assert part.values == {S.DATASET: "lab x"}
    assert (read_part(part)[S.DATASET] == "lab x").all()
    wells.to_parquet(folder / "a.parquet")  # the file's own dataset column says otherwise
    with pytest.raises(InputFileError, match="contradicts") as err:
        read_part(list_parts([tmp_path])[0])
    assert err.value.column == S.DATASET


def test_an_unusable_part_is_one_clear_error_naming_file_and_column(tmp_path):
    wells = pd.read_parquet(example_path()).head(20)
    wells.to_parquet(tmp_path / "good.parquet")
    wells.drop(columns=[S.SIGNAL]).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(InputFileError, match=r"bad\.parquet") as err:
        run_partitioned(list_parts([tmp_path]), read=read_part, n_partitions=2)
    assert err.value.column == S.SIGNAL
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match=r"no \.parquet"):
        list_parts([tmp_path / "empty"])


def test_plates_tied_by_a_cell_line_share_a_bucket_and_buckets_are_balanced():
    keys = pd.DataFrame(
        {
            "plate": ["d\x1ftreated1", "d\x1ftreated2", "d\x1ftimezero", "d\x1fother", "d\x1fblank_only"],
            "line": ["d\x1fA", "d\x1fA", "d\x1fA", "d\x1fB", "d\x1f"],
            "has_line": [True, True, True, True, False],
            "rows": [100, 100, 10, 150, 5],
        }
    )
    buckets = plate_buckets(keys, 2)
    assert buckets["d\x1ftreated1"] == buckets["d\x1ftreated2"] == buckets["d\x1ftimezero"]
    assert buckets["d\x1fother"] != buckets["d\x1ftreated1"]  # 210 rows vs 150: one bucket each


def test_cli_dask_engine_meets_the_output_contract(tmp_path):
    root = _write_split(tmp_path / "in", pd.read_parquet(example_path()))
    out = tmp_path / "out"
    args = ["run", str(root), "--engine", "dask", "--partitions", "3", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    meta = read_metadata(out / "metrics.parquet")
    assert meta["parameters"]["engine"] == {"name": "dask", "workers": 1, "partitions": 3}
    assert len(meta["inputs"]) == 9 and all(i["checksum"].startswith("sha256:") for i in meta["inputs"])
    if CHECKER.is_file():
        check = subprocess.run([sys.executable, str(CHECKER), str(out)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
    bad = CliRunner().invoke(
        app, ["run", str(root), "--engine", "dask", "--format", "gdsc-raw", "--out", str(out)]
    )
    assert bad.exit_code == 2 and "is a directory" in " ".join(bad.output.split())  # not a GDSC raw file


def test_any_format_is_read_file_by_file_as_in_memory(tmp_path):
    from doseatlas.ingest import read_any, read_one

    wells = pd.read_parquet(example_path()).rename(columns={S.SIGNAL: "RLU", S.CELL_LINE: "Cell"})
    paths = []
    for i, rows in enumerate(np.array_split(np.arange(len(wells)), 2)):
        paths.append(tmp_path / f"export{i}.csv")
        wells.iloc[rows].to_csv(paths[-1], index=False)
    mapping = tmp_path / "map.toml"
    names = {c: c for c in wells.columns} | {"RLU": "signal", "Cell": "cell_line"}
    mapping.write_text("[columns]\n" + "".join(f'{k} = "{v}"\n' for k, v in names.items()))
    ours = run_partitioned(paths, read=functools.partial(read_one, mapping=mapping), n_partitions=3)
    theirs = run_pipeline(read_any(paths, mapping=mapping))
    _assert_same(ours, theirs)


def test_a_manifest_of_three_formats_gives_the_in_memory_tables(tmp_path):
    """Each source file is a part read with its own options and defaults; wells and a response table mix."""
    from doseatlas.ingest.manifest import check_part_datasets, load_manifest, read_manifest, read_source_part
    from study import write_study

    manifest = load_manifest(write_study(tmp_path))
    check = functools.partial(check_part_datasets, manifest)
    theirs = run_pipeline(read_manifest(manifest))
    # one partition is tested on the split input above; four put the sources in several buckets
    ours = run_partitioned(manifest.parts, read=read_source_part, n_partitions=4, check_datasets=check)
    _assert_same(ours, theirs)
    assert set(theirs.responses[S.DATASET]) == {"lab_a", "GDSC1", "GDSCsmall"}
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(manifest.path), "--engine", "dask", "--out", str(out)])
    assert result.exit_code == 0, result.output
    meta = read_metadata(out / "metrics.parquet")
    assert meta["parameters"]["manifest"]["checksum"] == manifest.checksum
    assert len(meta["inputs"]) == 5


def test_a_manifest_with_two_sources_of_one_data_set_is_refused_before_anything_is_spilled(tmp_path):
    from doseatlas.ingest.manifest import check_part_datasets, load_manifest, read_source_part
    from study import canonical

    canonical(tmp_path / "a.csv")
    canonical(tmp_path / "b.csv")  # its rows say lab_a too
    (tmp_path / "m.toml").write_text('[[source]]\npath = "a.csv"\n[[source]]\npath = "b.csv"\n')
    manifest = load_manifest(tmp_path / "m.toml")
    check = functools.partial(check_part_datasets, manifest)
    with pytest.raises(InputFileError, match=r"source 2 \(path = 'b.csv'\): its rows have dataset 'lab_a'"):
        run_partitioned(manifest.parts, read=read_source_part, n_partitions=2, check_datasets=check)


def test_curve_groups_are_packed_into_buckets_largest_first():
    """(dataset, perturbagen) groups go to the least loaded bucket, largest first, so that a bucket holds about
    its share of the rows (a hash of few groups does not); a group not counted in planning is hashed."""
    from doseatlas.scale import _curve_buckets, group_buckets

    rows = pd.Series({"d\x1fa": 100, "d\x1fb": 60, "d\x1fc": 50, "d\x1fd": 40, "e\x1fa": 5})
    groups = group_buckets(pd.concat([rows.iloc[:3], rows.iloc[3:], rows.iloc[:1] * 0]), 2)
    assert groups == {"d\x1fa": 0, "d\x1fb": 1, "d\x1fc": 1, "d\x1fd": 0, "e\x1fa": 1}
    table = pd.DataFrame({S.DATASET: ["d", "d", " d", "x"], S.PERTURBAGEN: ["a", "c", "c ", "y"]})
    hashed = _curve_buckets(table, 2)
    assert _curve_buckets(table, 2, groups).tolist() == [0, 1, 1, hashed[3]]
