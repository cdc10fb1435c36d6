"""A streamed partitioned run (``doseatlas run --engine dask``: responses kept on disk and written row group by
row group) writes the in-memory run's output files: same tables, rows, order, schema and summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from doseatlas import schemas as S
from doseatlas.cli import app, example_path
from doseatlas.io import METADATA_KEY, RUN_TABLES, streamed

pytest.importorskip("dask")


def _input(root: Path) -> Path:
    wells = pd.read_parquet(example_path())
    bad = wells.sample(n=6, random_state=1).copy()
    bad[S.ROLE] = "treatd"  # the ledger
    wells = pd.concat([wells, bad], ignore_index=True).sample(frac=1.0, random_state=2)
    root.mkdir()
    for i, rows in enumerate(np.array_split(np.arange(len(wells)), 3)):  # plates span files
        wells.iloc[rows].to_parquet(root / f"part{i}.parquet")
    return root


def _run(inputs: Path, out: Path, *args: str) -> None:
    files = [str(p) for p in sorted(inputs.glob("*.parquet"))]
    result = CliRunner().invoke(app, ["run", *files, "--quiet", "--out", str(out), *args])
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream")
    inputs = _input(root / "in")
    _run(inputs, root / "memory")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(streamed, "PIECE_ROWS", 97)  # many pieces per bucket: the merge is exercised
        patch.setattr(streamed, "CHUNK_ROWS", 500)  # and several row groups written
        _run(inputs, root / "dask", "--engine", "dask", "--partitions", "3")
    return root / "memory", root / "dask"


@pytest.mark.parametrize("name", RUN_TABLES)
def test_every_table_file_equals_the_in_memory_runs(outputs, name):
    memory, dask = (pq.read_table(d / f"{name}.parquet") for d in outputs)
    assert dask.schema.remove_metadata() == memory.schema.remove_metadata()
    for a, b in zip(dask.schema, memory.schema, strict=True):
        assert a.metadata == b.metadata, a.name  # units
    plain = {k: v for k, v in (memory.schema.metadata or {}).items() if k != METADATA_KEY}
    assert {k: v for k, v in dask.schema.metadata.items() if k != METADATA_KEY} == plain  # pandas' own
    meta = json.loads(dask.schema.metadata[METADATA_KEY])
    assert meta["n_rows"] == memory.num_rows and meta["table"] == name
    pd.testing.assert_frame_equal(dask.to_pandas(), memory.to_pandas(), check_exact=True, obj=name)


def test_responses_are_written_in_row_groups_and_the_summary_is_the_same(outputs):
    dask = outputs[1]
    assert pq.ParquetFile(dask / "responses.parquet").metadata.num_row_groups > 1
    summaries = [json.loads((d / "summary.json").read_text()) for d in outputs]
    for summary in summaries:
        summary.pop("provenance")
    assert summaries[0] == summaries[1]
    assert list(summaries[0]["refusals"]["gr"]) == list(summaries[1]["refusals"]["gr"])  # same order
    assert "Responses computed and refused" in (dask / "report.html").read_text()


def test_the_merge_gives_the_sorted_order_of_every_bucket(tmp_path, monkeypatch):
    monkeypatch.setattr(streamed, "PIECE_ROWS", 5)
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {
            S.SOURCE_FILE: rng.choice(["b.csv", "a.csv", "c.csv"], 200),
            S.SOURCE_LINE: rng.integers(1, 50, 200),
            S.ROW_ID: rng.permutation(200),
            "x": rng.normal(size=200),
        }
    )
    bucket = rng.integers(0, 4, 200)
    order = [S.SOURCE_FILE, S.SOURCE_LINE, S.ROW_ID]
    paths = [streamed.write_pieces(table[bucket == b].sort_values(order), tmp_path, b) for b in range(4)]
    table_on_disk = streamed.StreamedTable(
        buckets=paths, n_rows=200, prepare=lambda t: t, files=sorted(set(table[S.SOURCE_FILE]))
    )
    expected = table.sort_values(order, ignore_index=True)
    pd.testing.assert_frame_equal(table_on_disk.to_frame(), expected, check_exact=True)
    for rows in (1, 7, 500):  # chunks of any size: the same rows
        chunks = list(table_on_disk.frames(rows=rows))
        assert max(len(c) for c in chunks) <= rows
        pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), expected, check_exact=True)


def test_the_merge_on_ranked_text_and_missing_numbers_gives_the_sorted_order(tmp_path, monkeypatch):
    """Keys as the curves' and metrics' (text ranked among the run's values, numbers with missing last), buckets
    of several pieces interleaving: the chunks are the sorted table, whatever their size."""
    monkeypatch.setattr(streamed, "PIECE_ROWS", 7)
    rng = np.random.default_rng(2)
    n = 300
    table = pd.DataFrame(
        {
            "t": pd.Series(rng.choice(["b", "a", None, "c"], n), dtype=object),
            "x": np.where(rng.random(n) < 0.2, np.nan, rng.integers(0, 4, n).astype(float)),
            "id": rng.permutation(n),
            "v": rng.normal(size=n),
        }
    )
    order = ("t", "x", "id")
    bucket = rng.integers(0, 5, n)
    paths = [streamed.write_pieces(sort(table[bucket == b], order), tmp_path, b, name="t") for b in range(5)]
    on_disk = streamed.StreamedTable(
        buckets=paths,
        n_rows=n,
        prepare=lambda t: t,
        order=order,
        ranks={"t": streamed.value_ranks(list(table["t"]))},
    )
    expected = sort(table, order).reset_index(drop=True)
    for rows in (3, 64, 1000):
        got = pd.concat(list(on_disk.frames(rows=rows)), ignore_index=True)
        pd.testing.assert_frame_equal(got, expected, check_exact=True, check_dtype=False)


def sort(table: pd.DataFrame, order: tuple[str, ...]) -> pd.DataFrame:
    return table.sort_values(list(order), kind="stable", na_position="last")


def test_pieces_are_smaller_with_many_buckets_so_the_merge_holds_a_bounded_number_of_rows(
    tmp_path, monkeypatch
):
    assert streamed.piece_rows(1) == streamed.PIECE_ROWS
    assert streamed.piece_rows(40) * 40 <= streamed.MERGE_ROWS  # one piece per bucket held by the merge
    assert streamed.piece_rows(10**6) == streamed.MIN_PIECE_ROWS
    monkeypatch.setattr(streamed, "MERGE_ROWS", 100)
    monkeypatch.setattr(streamed, "MIN_PIECE_ROWS", 1)
    monkeypatch.setattr(streamed, "PIECE_ROWS", 50)
    table = pd.DataFrame({S.ROW_ID: np.arange(95)})
    assert len(streamed.write_pieces(table, tmp_path, 0, n_buckets=1)) == 2  # pieces of PIECE_ROWS (50)
    assert len(streamed.write_pieces(table, tmp_path, 1, n_buckets=10)) == 10  # of 100 // 10 rows


def test_the_rows_kept_for_the_whole_run_steps_give_their_results():
    """Flags (plate and signal-increase), the growth table and the source names from the kept rows equal
    those from every row."""
    import doseatlas
    from doseatlas.growth import growth_table
    from doseatlas.harmonize.identities import source_names
    from doseatlas.metrics.flags import FlagOptions, flag_metrics
    from doseatlas.pipeline import RunOptions
    from doseatlas.scale import rows_for_whole_run_steps

    run = doseatlas.run(pd.read_parquet(example_path()))
    responses = run.responses.copy()
    top = responses.groupby([S.DATASET, S.CELL_LINE, S.PERTURBAGEN])[S.CONCENTRATION].transform("max")
    rising = responses[S.PERTURBAGEN].eq(responses[S.PERTURBAGEN].iloc[0]) & responses[S.CONCENTRATION].eq(
        top
    )
    responses.loc[rising, S.RELATIVE_VIABILITY] = 1.5  # a signal increase at the top dose
    kept = responses[rows_for_whole_run_steps(responses, options=RunOptions())]
    assert len(kept) < len(responses) / 2
    args = {"plates": run.plates, "dependence": run.time_dependence, "options": FlagOptions()}
    full = flag_metrics(run.metrics, responses=responses, **args)
    assert full[S.FLAGS].str.contains("signal_increase").any()
    edge = full[S.FLAGS].str.contains("edge_effect")
    assert edge.any() and not edge.all()  # some plates flagged
    pd.testing.assert_frame_equal(flag_metrics(run.metrics, responses=kept, **args), full)
    pd.testing.assert_frame_equal(growth_table(kept), growth_table(responses))
    pd.testing.assert_frame_equal(source_names(kept), source_names(responses))
    everything = rows_for_whole_run_steps(responses, options=RunOptions(conversion=run_conversion()))
    assert everything.all()  # converting to a target duration averages over every well


def run_conversion():
    from doseatlas.metrics.convert import ConversionOptions

    return ConversionOptions(targets=(72.0,))


@pytest.fixture(scope="module")
def one_dataset(tmp_path_factory):
    """One data set (the whole-run steps run bucket by bucket, curves and metrics streamed), 6 buckets; the
    largest number of metric rows one bucket's steps held at once."""
    from doseatlas import scale_steps

    root = tmp_path_factory.mktemp("stream1")
    wells = pd.read_parquet(example_path())
    inputs = root / "in"
    inputs.mkdir()
    one = wells[wells[S.DATASET].eq("lab_a")].sample(frac=1.0, random_state=3)
    for i, rows in enumerate(np.array_split(np.arange(len(one)), 2)):
        one.iloc[rows].to_parquet(inputs / f"part{i}.parquet")
    _run(inputs, root / "memory")
    held = []
    steps = scale_steps.bucket_steps

    def counted(rows, curves, metrics, **kwargs):
        held.append(len(metrics))
        return steps(rows, curves, metrics, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(streamed, "PIECE_ROWS", 53)
        patch.setattr(streamed, "CHUNK_ROWS", 300)
        patch.setattr(scale_steps, "bucket_steps", counted)
        _run(inputs, root / "dask", "--engine", "dask", "--partitions", "6")
    return root / "memory", root / "dask", held


@pytest.mark.parametrize("name", RUN_TABLES)
def test_streamed_curves_and_metrics_files_equal_the_in_memory_runs(one_dataset, name):
    memory, dask = (pq.read_table(d / f"{name}.parquet") for d in one_dataset[:2])
    assert dask.schema.remove_metadata() == memory.schema.remove_metadata()
    for a, b in zip(dask.schema, memory.schema, strict=True):
        assert a.metadata == b.metadata, a.name  # units
    pd.testing.assert_frame_equal(dask.to_pandas(), memory.to_pandas(), check_exact=True, obj=name)


def test_a_streamed_run_holds_one_buckets_metrics_at_a_time(one_dataset):
    """The whole-run steps ran on each bucket's metrics, never on the run's: the most metric rows held at
    once is one bucket's (here at most half the run's), and the summaries are the same."""
    memory, dask, held = one_dataset
    total = pq.read_metadata(memory / "metrics.parquet").num_rows
    assert len(held) == 6 and sum(held) == total
    assert 0 < max(held) <= total / 2
    assert pq.ParquetFile(dask / "metrics.parquet").metadata.num_row_groups > 1  # written from the pieces
    summaries = [json.loads((d / "summary.json").read_text()) for d in (memory, dask)]
    for summary in summaries:
        summary.pop("provenance")
    assert summaries[0] == summaries[1]
    assert list(summaries[0]["metric_status"]) == list(summaries[1]["metric_status"])
    report = (dask / "report.html").read_text()
    assert "Metrics computed and refused" in report and "this run streamed its responses" in report


@pytest.mark.parametrize("workers", [1, 2])
def test_a_streamed_screen_with_time_zero_and_two_durations_writes_the_in_memory_files(tmp_path, workers):
    """Growth (time-zero plates), time dependence (two read times) and flags from the buckets' aggregates;
    with two worker processes, the buckets' whole-run steps run in them."""
    from doseatlas import io
    from doseatlas.ingest.partitioned import list_parts, read_part
    from doseatlas.pipeline import run_pipeline
    from doseatlas.scale import run_partitioned
    from doseatlas.simulate import DatasetConfig, SimulationConfig, simulate

    dataset = DatasetConfig(name="s", plate_format=384, read_times_h=[72.0, 96.0], time_zero=True)
    wells = simulate(SimulationConfig(n_cell_lines=3, n_drugs=8, datasets=[dataset]), seed=4).wells
    folder = tmp_path / "in" / "dataset=s"
    folder.mkdir(parents=True)
    for i, rows in enumerate(np.array_split(np.arange(len(wells)), 2)):
        wells.sample(frac=1.0, random_state=5).iloc[rows].drop(columns=[S.DATASET]).to_parquet(
            folder / f"p{i}.parquet"
        )
    parts = list_parts([str(tmp_path / "in")])
    memory = run_pipeline(pd.concat([read_part(p) for p in parts], ignore_index=True))
    dask = run_partitioned(parts, read=read_part, n_partitions=4, stream=True, workers=workers)
    assert isinstance(dask.metrics, streamed.StreamedTable)
    for name, result in (("m", memory), ("d", dask)):
        (tmp_path / name).mkdir()
        io.write_run(result, tmp_path / name, meta={})
    for name in RUN_TABLES:
        a, b = (pd.read_parquet(tmp_path / d / f"{name}.parquet") for d in "md")
        pd.testing.assert_frame_equal(b, a, check_exact=True, obj=name)
    assert len(memory.growth) and len(memory.time_dependence)
    summaries = [json.loads((tmp_path / d / "summary.json").read_text()) for d in "md"]
    assert summaries[0] == summaries[1]


def test_the_type_scan_does_not_keep_the_pieces_alive():
    """The pass over a streamed table's pieces keeps each piece's empty head for the column types: an empty
    slice would hold the piece's arrays (every piece of the table, to the end of the pass: the write's memory
    grew with the run, 1.9 GB at 10M wells); an empty copy holds nothing of them."""
    import gc
    import weakref

    piece = pd.DataFrame({"x": np.arange(100_000, dtype=float), "y": np.arange(100_000, dtype=float)})
    column = piece["x"].to_numpy()
    watched = weakref.ref(column.base if column.base is not None else column)  # the piece's own array
    scan = streamed._TypeScan(lambda table: table, ())
    scan.add(piece, 0, 0)
    del piece, column
    gc.collect()
    assert watched() is None
    assert list(scan.types()[0].index) == ["x", "y"]
