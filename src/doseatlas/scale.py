"""Scale-out: the same run, partitioned and executed by Dask (``doseatlas run --engine dask``).

Every step of :func:`doseatlas.pipeline.run_pipeline` is local to something smaller than the whole input:
validation and normalization to a plate, fitting and metrics to a curve, and the shrink policy's populations to
one perturbagen of one data set. The partitioned run uses exactly that, in two shuffles (pieces spilled to a
temporary directory):

1. each input part (file) is read on its own, every row is numbered by its position among all rows read
   (``row_id``), and the rows go to one of ``n_partitions`` buckets by plate: plates tied together through a
   cell line (whose time-zero reads may sit on another plate) form one component, and the components are
   packed into the buckets largest first (a first pass over the parts reads their keys);
2. each bucket gathers its rows from every part (so every plate is whole, rows in input order) and is
   validated and normalized: its responses, ledger and plate table; its responses are split by (dataset,
   perturbagen) into ``n_partitions`` buckets (the groups packed largest first by their input rows, counted in
   the first pass: :func:`group_buckets`);
3. each of those gathers its responses from every step-2 bucket (every curve and every shrink population is
   whole) and is fitted and turned into metrics.

The tables are then concatenated and sorted as every run's tables are (``pipeline.TABLE_ORDER``: each by its
key). Nothing depends on which bucket a row lands in, so
the result equals the in-memory run's, bit for bit (grouped statistics are summed in sorted order, see
:mod:`doseatlas._stats`; ``tests/test_scale.py`` checks it table by table). Dask runs the tasks in ``workers``
processes (``workers=1``: in this process, one bucket at a time, which bounds the memory of the intermediate
tables to about one bucket's; the output tables are then assembled in memory), or on a Dask distributed
cluster given by address (``scheduler``).

A streamed run (``stream=True``, as ``doseatlas run`` runs it) does not assemble the responses, the table as long
as the input: each step-3 bucket keeps them on disk in sorted pieces, the whole-run steps get only the rows they
read (:func:`rows_for_whole_run_steps`), the summary and the report get the buckets' counts, and the output file
is written from a merge of the pieces (:mod:`doseatlas.io.streamed`; ``tests/test_scale_stream.py`` checks that
every output file equals the in-memory run's). When the whole-run steps are local to a bucket (one data set, no
time course, no conversion: :func:`doseatlas.scale_steps.is_local`), the curves and metrics are streamed too:
each bucket's go through those steps alone and stay on disk (:mod:`doseatlas.scale_steps`).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from doseatlas import scale_steps
from doseatlas import schemas as S
from doseatlas._canon import stripped_text
from doseatlas.durations import distinct_times, nominal_map
from doseatlas.errors import ConfigError, InputFileError
from doseatlas.harmonize import HarmonizeOptions, apply_identities
from doseatlas.ingest import merged_attrs
from doseatlas.interference import compound_wells, interference_step
from doseatlas.io import read_piece, spill_directory, write_piece
from doseatlas.io.streamed import StreamedTable, keep_directory, write_pieces
from doseatlas.metrics import compute_metrics
from doseatlas.pipeline import (
    RunOptions,
    RunResult,
    _plates_table,
    _summary,
    _validate_and_normalize,
    fit_all_scales,
    record_accounting,
    result_tables,
    sort_table,
    whole_run_steps,
    with_reader_metadata,
)
from doseatlas.report_data import merge_response_counts, response_counts
from doseatlas.timecourse import dip_rates

#: columns whose values decide the bucket of a response row in the second shuffle
CURVE_GROUP_KEY: tuple[str, ...] = (S.DATASET, S.PERTURBAGEN)
#: most input rows of one bucket: larger inputs get more buckets than asked for (:func:`bucket_count`), so that a
#: bucket's tables, not the run's, bound the memory of the bucket tasks
BUCKET_ROWS = 250_000
#: columns that tie rows together for normalization: a plate's rows share its blanks and vehicle wells; a cell
#: line's plates share its time-zero reads when they are on other plates
_PLATE_KEY: tuple[str, ...] = (S.DATASET, S.PLATE)
_LINE_KEY: tuple[str, ...] = (S.DATASET, S.CELL_LINE)


@dataclass
class _Normalized:
    """Output of one step-2 bucket."""

    ledger: pd.DataFrame
    plates: pd.DataFrame
    n_read: int
    n_used: int
    datasets: list[str]
    dip: pd.DataFrame


def _text(table: pd.DataFrame, column: str) -> pd.Series:
    """A key column as validation compares it (:func:`doseatlas.validate.stripped_text`)."""
    if column not in table:
        return pd.Series("", index=table.index, dtype=object)
    return stripped_text(table[column])


def _plate_ids(table: pd.DataFrame) -> pd.Series:
    return _text(table, S.DATASET) + "\x1f" + _text(table, S.PLATE)


class _PartPlan(NamedTuple):
    """What the planning pass learns of one part."""

    keys: pd.DataFrame
    n_rows: int
    times: pd.DataFrame
    attrs: dict
    datasets: list[str]
    groups: pd.Series  # input rows per (dataset, perturbagen) text key (CURVE_GROUP_KEY, joined)


def _part_keys(part: Any, read: Callable[[Any], pd.DataFrame]) -> _PartPlan:
    """Distinct (plate id, cell-line id) pairs of one part with their row counts, its number of rows, its
    distinct (dataset, read time) pairs (for the nominal durations of the whole input), the metadata its reader
    found (``attrs``, e.g. doubling times) and its data set names."""
    table = read(part)
    line, dataset, drug = _text(table, S.CELL_LINE), _text(table, S.DATASET), _text(table, S.PERTURBAGEN)
    keys = pd.DataFrame(
        {"plate": _plate_ids(table), "line": dataset + "\x1f" + line, "has_line": line.ne("")}
    )
    counts = keys.groupby(["plate", "line", "has_line"], sort=False).size().rename("rows").reset_index()
    return _PartPlan(
        counts,
        len(table),
        distinct_times(table),
        dict(table.attrs),
        sorted(d for d in pd.unique(dataset) if d),
        (dataset + "\x1f" + drug)[drug.ne("")].value_counts(sort=False),
    )


def plate_buckets(keys: pd.DataFrame, n_partitions: int) -> dict[str, int]:
    """Bucket of every plate id: plates linked through a cell line (its time-zero reads may sit on another
    plate) form one component, and components are packed into buckets largest first (balanced rows)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    plates, plate_idx = np.unique(keys["plate"].to_numpy(dtype=object), return_inverse=True)
    lines, line_idx = np.unique(keys["line"].to_numpy(dtype=object), return_inverse=True)
    linked = keys["has_line"].to_numpy(dtype=bool)
    n = len(plates) + len(lines)
    graph = coo_matrix(
        (np.ones(linked.sum()), (plate_idx[linked], len(plates) + line_idx[linked])), shape=(n, n)
    )
    _, component = connected_components(graph, directed=False)
    rows = np.bincount(component[plate_idx], weights=keys["rows"].to_numpy(dtype=float), minlength=n)
    load = np.zeros(n_partitions)
    bucket_of_component = np.zeros(n, dtype=np.int64)
    for c in np.argsort(-rows, kind="stable"):
        if rows[c] > 0:
            bucket_of_component[c] = int(np.argmin(load))
            load[bucket_of_component[c]] += rows[c]
    return dict(zip(plates.tolist(), bucket_of_component[component[: len(plates)]].tolist(), strict=True))


def bucket_count(n_partitions: int, n_rows: int, *, bucket_rows: int | None = None) -> int:
    """Buckets of each shuffle: ``n_partitions``, or more when the input has more than ``bucket_rows`` rows
    (default :data:`BUCKET_ROWS`) per bucket (the results do not depend on the number of buckets)."""
    return max(n_partitions, -(-n_rows // (bucket_rows or BUCKET_ROWS)))


def _split_by(table: pd.DataFrame, buckets: np.ndarray, n_partitions: int) -> list[pd.DataFrame]:
    return [table[buckets == b] for b in range(n_partitions)]


def _piece(spill: Path, stage: str, bucket: int, source: int) -> Path:
    return spill / f"{stage}-{bucket:05d}-{source:06d}.pkl"


def _read_and_split(
    index: int,
    part: Any,
    read: Callable[[Any], pd.DataFrame],
    buckets: dict[str, int],
    n: int,
    spill: Path,
    first_row: int,
) -> int:
    """Step 1: read one part and spill its rows to the step-2 buckets of their plates; returns its rows.
    Each row carries its position among all rows read (``row_id``, as in an in-memory run)."""
    table = read(part)
    table[S.ROW_ID] = np.arange(first_row, first_row + len(table), dtype=np.int64)
    for bucket, piece in enumerate(
        _split_by(table, _plate_ids(table).map(buckets).to_numpy(dtype=np.int64), n)
    ):
        write_piece(piece, _piece(spill, "raw", bucket, index))
    return len(table)


def group_buckets(rows: pd.Series, n_partitions: int) -> dict[str, int]:
    """Bucket of every (dataset, perturbagen) key (``rows``: its input rows): packed into the buckets largest
    first (balanced rows; ties in key order), so that a bucket holds about its share of the run's rows."""
    rows = rows.groupby(level=0, sort=True).sum()
    load = np.zeros(n_partitions)
    out = {}
    for key, n in zip(
        rows.index[np.argsort(-rows.to_numpy(), kind="stable")],
        np.sort(-rows.to_numpy(), kind="stable"),
        strict=True,
    ):
        out[key] = int(np.argmin(load))
        load[out[key]] -= n
    return out


def _curve_buckets(
    responses: pd.DataFrame, n_partitions: int, groups: dict[str, int] | None = None
) -> np.ndarray:
    """Bucket per response row: that of its (dataset, perturbagen) in ``groups`` (:func:`group_buckets`),
    else a stable hash of (dataset, perturbagen)."""
    if not len(responses):
        return np.zeros(0, dtype=np.int64)
    text = pd.DataFrame({c: _text(responses, c) for c in CURVE_GROUP_KEY})
    hashed = (pd.util.hash_pandas_object(text, index=False).to_numpy() % np.uint64(n_partitions)).astype(
        np.int64
    )
    if not groups:
        return hashed
    known = (text[S.DATASET] + "\x1f" + text[S.PERTURBAGEN]).map(groups)
    return np.where(known.notna(), known.fillna(-1).to_numpy(np.int64), hashed)


def _normalize_bucket(
    bucket: int,
    n_parts: int,
    options: RunOptions,
    n: int,
    spill: Path,
    nominal: pd.DataFrame,
    groups: dict[str, int],
    *_after,
) -> _Normalized:
    """Step 2: validate and normalize the whole plates of one bucket (rows in input order); spill the
    responses to the step-3 buckets of their (dataset, perturbagen)."""
    pieces = [read_piece(_piece(spill, "raw", bucket, i)) for i in range(n_parts)]
    # well tables and response tables (a manifest's sources) are validated and normalized each as its kind
    checked, responses = _validate_and_normalize(
        pieces, options=options, tick=lambda _step: None, nominal=nominal
    )
    del pieces
    plates = _plates_table(checked.plate_rows, responses) if S.ROLE in checked.clean else pd.DataFrame()
    for target, piece in enumerate(_split_by(responses, _curve_buckets(responses, n, groups), n)):
        write_piece(piece, _piece(spill, "responses", target, bucket))
    compound = compound_wells(checked.clean)  # with the responses of their (dataset, perturbagen)
    for target, piece in enumerate(_split_by(compound, _curve_buckets(compound, n, groups), n)):
        write_piece(piece, _piece(spill, "compound", target, bucket))
    return _Normalized(
        ledger=checked.ledger,
        plates=plates,
        n_read=checked.n_read,
        n_used=len(checked.clean),
        datasets=sorted(checked.clean[S.DATASET].unique().tolist()),
        dip=dip_rates(checked.clean),  # a well's reads are on its plate: whole in this bucket
    )


def _fit_bucket(bucket: int, n: int, options: RunOptions, spill: Path, keep: Path | None, *_after):
    """Step 3: the interference step, then fit and compute the metrics of every curve of one bucket; returns
    (responses, curves, metrics, interference). With ``keep`` (a streamed run) the responses stay there in sorted
    pieces: only the rows the whole-run steps read are returned, with what the summary and the report count
    (``_BucketRows``, a fifth item)."""
    responses = pd.concat(
        [read_piece(_piece(spill, "responses", bucket, j)) for j in range(n)], ignore_index=True
    )
    compound = _concat([read_piece(_piece(spill, "compound", bucket, j)) for j in range(n)])
    responses, interference = interference_step(
        responses, compound, options=options.interference, normalization=options.normalization
    )
    curves = fit_all_scales(responses, options=options.fit)
    metrics = compute_metrics(responses, curves, options=options.metrics)
    if keep is None:
        return responses, curves, metrics, interference
    responses = sort_table(responses, "responses")
    kept = _BucketRows(
        paths=write_pieces(responses, keep, bucket, n_buckets=n),
        n_rows=len(responses),
        files=responses[S.SOURCE_FILE].dropna().astype(str).unique().tolist() if len(responses) else [],
        counts=response_counts(responses),
        first={scale: _first_reasons(responses, scale) for scale in S.RESPONSE_SCALES},
    )
    rows = responses[rows_for_whole_run_steps(responses, options=options)]
    del responses
    return _spill_curve_tables(bucket, keep, rows, sort_table(curves, "curves"), sort_table(metrics, "metrics"),
                               interference, kept)  # fmt: skip


def _spill_curve_tables(
    bucket: int, keep: Path, rows: pd.DataFrame, curves: pd.DataFrame, metrics: pd.DataFrame,
    interference: pd.DataFrame, kept: _BucketRows,
) -> scale_steps.Spilled:  # fmt: skip
    """A streamed bucket's per-curve tables kept on disk (in output order), with what the run needs of them."""
    return scale_steps.spill(keep, bucket, {"rows": rows, "curves": curves, "metrics": metrics},
                             interference=interference, kept=kept, growth=rows[growth_rows(rows)])  # fmt: skip


@dataclass
class _BucketRows:
    """The responses of one step-3 bucket kept on disk, and what is counted of them."""

    paths: list[Path]
    n_rows: int
    files: list[str]
    counts: pd.DataFrame  # report_data.response_counts of the bucket
    first: dict[str, pd.DataFrame]


def _first_reasons(responses: pd.DataFrame, scale: str) -> pd.DataFrame:
    """Each refusal reason of one scale with its rows and its first row's place in the output order."""
    why = S.reason_column(scale)
    present = responses[responses[why].notna()]
    first = present.drop_duplicates(why)[[why, S.SOURCE_FILE, S.SOURCE_LINE, S.ROW_ID]]
    return first.assign(n=first[why].map(present[why].value_counts()).to_numpy()).rename(
        columns={why: "reason"}
    )


def _refusals(firsts: list[pd.DataFrame]) -> dict[str, int]:
    """``value_counts().to_dict()`` of one reason column over every bucket: most rows first, ties in the order
    the reasons first appear."""
    frames = [f for f in firsts if len(f)]
    if not frames:
        return {}
    table = pd.concat(frames, ignore_index=True).sort_values(
        [S.SOURCE_FILE, S.SOURCE_LINE, S.ROW_ID], kind="stable", na_position="last"
    )
    counts = table.groupby("reason", sort=False)["n"].sum().sort_values(ascending=False, kind="stable")
    return {k: int(v) for k, v in counts.items()}


def rows_for_whole_run_steps(responses: pd.DataFrame, *, options: RunOptions) -> np.ndarray:
    """The response rows the whole-run steps read (:func:`doseatlas.pipeline.whole_run_steps`), of a table
    holding whole curves in output order: their results on these rows equal their results on the whole table.

    Kept: the first row of each plate and read time with a time-zero and a vehicle summary and of each (cell
    line, readout, density, time) with a doubling time (the growth table reads the first), the first row of
    each source name and id (the identities), the first row of each curve and plate (plate flags) and the
    rows at the highest concentration of each curve (the signal-increase flag). Every row when metrics are
    converted to target durations (the conversion averages over a curve's wells)."""
    n = len(responses)
    if options.conversion.targets or not n:
        return np.ones(n, dtype=bool)
    keep = np.zeros(n, dtype=bool)
    curve = [S.TIME_H if c == S.DURATION_H else c for c in S.CURVE_KEY]

    def first_of(rows: np.ndarray, key: list[str]) -> None:
        columns = [c for c in key if c in responses]
        if rows.any() and columns:
            chosen = np.flatnonzero(rows)
            keep[chosen[~responses.iloc[chosen][columns].duplicated().to_numpy()]] = True

    everything = np.ones(n, dtype=bool)
    keep |= growth_rows(responses)
    first_of(everything, [S.DATASET, S.PERTURBATION_TYPE, S.CELL_LINE, S.CELL_LINE_ID])
    first_of(everything, [S.DATASET, S.PERTURBATION_TYPE, S.PERTURBAGEN, S.PERTURBAGEN_ID])
    first_of(everything, [*curve, S.PLATE])
    if S.RELATIVE_VIABILITY in responses:
        usable = responses[S.RELATIVE_VIABILITY].notna().to_numpy()
        rows = responses[usable]
        by = [c for c in curve if c in rows]
        top = rows.groupby(by, dropna=False, sort=False)[S.CONCENTRATION].transform("max").to_numpy(float)
        keep[np.flatnonzero(usable)[rows[S.CONCENTRATION].to_numpy(float) == top]] = True
    return keep


def _first_rows(responses: pd.DataFrame, rows: np.ndarray, key: list[str]) -> np.ndarray:
    """Of the rows where ``rows`` is true, the first of each distinct ``key`` (the columns present)."""
    out = np.zeros(len(responses), dtype=bool)
    columns = [c for c in key if c in responses]
    if rows.any() and columns:
        chosen = np.flatnonzero(rows)
        out[chosen[~responses.iloc[chosen][columns].duplicated().to_numpy()]] = True
    return out


def growth_rows(responses: pd.DataFrame) -> np.ndarray:
    """The response rows :func:`doseatlas.growth.growth_table` reads, of a table in output order: the first
    row of each plate and read time with a time-zero and a vehicle summary and of each (cell line, readout,
    density, time) with a doubling time. Of the buckets of a run, their union (in output order) gives the
    run's growth table."""
    n = len(responses)
    keep = np.zeros(n, dtype=bool)
    later = responses[S.TIME_H].to_numpy(float) > 0 if S.TIME_H in responses else np.zeros(n, bool)
    if S.TIME_ZERO_SIGNAL in responses and S.VEHICLE_SIGNAL in responses:
        timed = (responses[S.TIME_ZERO_SIGNAL].notna() & responses[S.VEHICLE_SIGNAL].notna()).to_numpy()
        keep |= _first_rows(responses, timed & later, [S.DATASET, S.PLATE, S.CELL_LINE, S.READOUT, S.TIME_H])
    if S.DOUBLING_TIME_H in responses:
        given = responses[S.DOUBLING_TIME_H].notna().to_numpy() & later
        keep |= _first_rows(
            responses, given, [S.DATASET, S.CELL_LINE, S.READOUT, S.SEEDING_DENSITY, S.TIME_H]
        )
    return keep


def _graph(
    parts: Sequence[Any],
    read,
    options: RunOptions,
    n: int,
    plan: tuple[dict, list[int], pd.DataFrame, dict[str, int]],
    spill: Path,
    keep: Path | None = None,
):
    """The delayed tasks: step-2 bucket results and step-3 (responses, curves, metrics) per bucket."""
    from dask import delayed

    buckets, first_rows, nominal, groups = plan
    split = [
        delayed(_read_and_split)(i, p, read, buckets, n, spill, first_rows[i]) for i, p in enumerate(parts)
    ]
    normalized = [
        delayed(_normalize_bucket)(j, len(parts), options, n, spill, nominal, groups, *split)
        for j in range(n)
    ]
    fitted = [delayed(_fit_bucket)(k, n, options, spill, keep, *normalized) for k in range(n)]
    return normalized, fitted


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The pieces as one table (put in the order of every output table by ``result_tables``)."""
    frames = [f for f in frames if len(f)] or frames[:1]
    out = pd.concat(frames, ignore_index=True)
    frames.clear()
    return out


def run_partitioned(
    parts: Sequence[Any],
    *,
    read: Callable[[Any], pd.DataFrame],
    options: RunOptions | None = None,
    n_partitions: int = 8,
    workers: int = 1,
    callbacks: Sequence[Any] = (),
    spill_dir: str | Path | None = None,
    check_datasets: Callable[[list[list[str]]], None] | None = None,
    scheduler: str | None = None,
    stream: bool = False,
    stream_curves: bool = True,
) -> RunResult:
    """Run the pipeline on partitioned input with Dask.

    Parameters
    ----------
    parts
        The input parts (e.g. :func:`doseatlas.ingest.partitioned.list_parts`); each is read by ``read``.
    read
        A module-level function reading one part into a canonical table (picklable for worker processes).
    options
        :class:`doseatlas.pipeline.RunOptions`.
    n_partitions
        Buckets of each shuffle (more buckets: smaller tasks, less memory each); at least one per
        :data:`BUCKET_ROWS` input rows (:func:`bucket_count`).
    workers
        Dask worker processes; 1 runs the tasks in this process, one at a time.
    callbacks
        Dask callbacks (e.g. a progress display).
    spill_dir
        Where the shuffles spill their pieces (a temporary directory inside it, removed afterwards; default:
        the system's temporary directory).
    check_datasets
        Called with the data set names of each part after the first pass, before anything is spilled (a
        manifest refuses two sources with the same data set: :func:`doseatlas.ingest.manifest.check_part_datasets`).
    scheduler
        Address of a Dask distributed scheduler (``tcp://host:8786``): the tasks run on its workers (``workers``
        is then theirs to decide), which must read the parts and ``spill_dir`` at the same paths as this
        process (a shared file system). :class:`~doseatlas.errors.ConfigError` when it cannot be reached.
    stream
        Keep the responses (the table as long as the treated wells) on disk, in a temporary directory inside
        ``spill_dir`` removed with the result: ``result.responses`` is then a
        :class:`doseatlas.io.streamed.StreamedTable` that :func:`doseatlas.io.write_run` writes row group by row
        group, and the whole-run steps read only the rows they need (:func:`rows_for_whole_run_steps`).
    stream_curves
        With ``stream``: keep the curves and metrics on disk too where the whole-run steps are local to a bucket
        (:func:`doseatlas.scale_steps.is_local`); False where the caller needs them in memory (review decisions
        applied to the metrics).
    """
    import dask

    options = options or RunOptions()
    if n_partitions < 1 or workers < 1:
        raise ConfigError(f"n_partitions and workers must be >= 1, got {n_partitions} and {workers}")
    if not parts:
        raise InputFileError("<none>", "no input file given")
    from dask import delayed

    with (
        dask.config.set(callbacks=set(callbacks)) if callbacks else contextlib.nullcontext(),
        dask_scheduler(workers=workers, address=scheduler) as compute_with,
    ):
        planned = dask.compute([delayed(_part_keys)(p, read) for p in parts], **compute_with)[0]
        if check_datasets is not None:
            check_datasets([plan.datasets for plan in planned])
        n_partitions = bucket_count(n_partitions, sum(plan.n_rows for plan in planned))
        buckets = plate_buckets(pd.concat([plan.keys for plan in planned], ignore_index=True), n_partitions)
        first_rows = np.cumsum([0, *(plan.n_rows for plan in planned)])[:-1].tolist()
        nominal = nominal_map(
            pd.concat([plan.times for plan in planned], ignore_index=True), options=options.durations
        )
        groups = group_buckets(pd.concat([plan.groups for plan in planned]), n_partitions)
        attrs = merged_attrs(plan.attrs for plan in planned)
        options = with_reader_metadata(options, attrs)
        with spill_directory(spill_dir) as spill:
            # the buckets do not need the identity evidence (possibly a whole Cellosaurus): not shipped to them
            bucket_options = replace(options, harmonize=HarmonizeOptions())
            keep = keep_directory(spill_dir) if stream else None
            graph = _graph(parts, read, bucket_options, n_partitions, (buckets, first_rows, nominal, groups), spill,
                           Path(keep.name) if keep is not None else None)  # fmt: skip
            normalized, fitted = dask.compute(*graph, **compute_with)
        # the buckets' whole-run steps (a streamed run) run on the same workers
        compute = functools.partial(dask.compute, **compute_with)
        result = _assemble(
            normalized, fitted, options=options, keep=keep, local=stream_curves, compute=compute
        )
    result = replace(result, options=options)
    result.summary.update(record_accounting(attrs, result.summary["rows_read"]))
    return result


#: seconds to wait for a Dask scheduler given by address before giving up (ConfigError)
CONNECT_TIMEOUT_S = 10


@contextlib.contextmanager
def dask_scheduler(*, workers: int, address: str | None) -> Iterator[dict[str, Any]]:
    """The ``dask.compute`` keywords of a run: this process (``workers=1``), a pool of worker processes, or the
    distributed scheduler at ``address`` (connected for the run, then disconnected; the cluster stays up)."""
    if address is None and workers == 1:
        yield {"scheduler": "synchronous"}
        return
    if address is None:
        with _process_pool(workers) as pool:
            # one task at a time to each worker (dask's default hands out ready tasks 6 at a time: 8 buckets
            # would go 6 to one worker, 2 to the other)
            yield {"scheduler": "processes", "pool": pool, "chunksize": 1}
        return
    try:
        from distributed import Client
    except ImportError:
        raise ConfigError(
            "a Dask scheduler address needs dask.distributed: pip install -e '.[scale]'"
        ) from None
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        raise ConfigError(
            f"cannot reach the Dask scheduler at {address!r} within {CONNECT_TIMEOUT_S} s: {exc}"
        ) from None
    with client:
        yield {"scheduler": client}


@contextlib.contextmanager
def _process_pool(workers: int) -> Iterator[Any]:
    """``workers`` processes for every ``dask.compute`` of a run (as dask's process scheduler starts them, but
    once per run, not once per compute: each start imports the package anew)."""
    import os
    from concurrent.futures import ProcessPoolExecutor

    from dask.multiprocessing import get_context, initialize_worker_process

    # as dask's own pools set it: the same string hashing in every worker
    if os.environ.get("PYTHONHASHSEED") in (None, "0"):
        os.environ["PYTHONHASHSEED"] = "6640"
    with ProcessPoolExecutor(
        workers, mp_context=get_context(), initializer=initialize_worker_process
    ) as pool:
        yield pool


def _drain(pieces: list[pd.DataFrame]) -> list[pd.DataFrame]:
    """The pieces, emptying the list that held them (so that only the result keeps them alive)."""
    out = list(pieces)
    pieces.clear()
    return out


def _assemble(
    normalized: list[_Normalized], fitted: list, *, options: RunOptions, keep: Any = None, local: bool = True,
    compute: Callable[..., tuple] | None = None,
) -> RunResult:  # fmt: skip
    """One run result from the buckets, in a deterministic row order; the ``harmonize`` step runs once on the
    assembled tables (canonical names never depend on the partitioning). With ``keep`` (a streamed run) the
    responses stay on disk: the whole-run steps get the rows they read, the summary the buckets' counts; the
    curves and metrics too when the whole-run steps are local to a bucket (:mod:`doseatlas.scale_steps`)."""
    if keep is None:
        parts = [list(t) for t in zip(*fitted, strict=True)] if fitted else [[], [], [], []]
        fitted.clear()  # each table's pieces are released once it is concatenated
        return _assembled(normalized, parts, options=options)
    spilled: list[scale_steps.Spilled] = list(fitted)
    fitted.clear()
    local = local and scale_steps.is_local(datasets=[d for n in normalized for d in n.datasets],
                                           dip=[n.dip for n in normalized], options=options)  # fmt: skip
    if local:
        return _streamed_result(normalized, spilled, options=options, keep=keep, compute=compute)
    loaded = [s.load() for s in spilled]
    parts = [[t[i] for t in loaded] for i in range(3)] + [[s.interference for s in spilled]]
    del loaded
    return _assembled(normalized, parts, options=options, kept=[s.kept for s in spilled], keep=keep)


def _assembled(
    normalized: list[_Normalized], parts: list[list[pd.DataFrame]], *, options: RunOptions,
    kept: list[_BucketRows] | None = None, keep: Any = None,
) -> RunResult:  # fmt: skip
    """The run result from the buckets' (responses or the rows the steps read, curves, metrics, interference)
    assembled in memory, the whole-run steps run on the whole tables."""
    # in the order of the output tables before the steps that work on the whole run (as the in-memory run)
    responses = sort_table(_concat(_drain(parts[0])), "responses")
    curves = sort_table(_concat(_drain(parts[1])), "curves")
    metrics = sort_table(_concat(_drain(parts[2])), "metrics")
    ledger, plates, summary = _run_basics(normalized, responses)
    dip = sort_table(_concat([n.dip for n in normalized]), "dip")
    interference = sort_table(_concat(_drain(parts[3])), "interference")
    tables = {"responses": responses, "curves": curves, "metrics": metrics, "plates": plates, "dip": dip,
              "interference": interference}  # fmt: skip
    tables, added, notes = whole_run_steps(tables, options=options)
    summary.update(added)
    if notes:
        summary.setdefault("notes", []).extend(notes)
    if kept is None:
        return RunResult(**result_tables(ledger=ledger, **tables), summary=summary)
    tables["responses"] = _streamed(kept, tables["identities"], keep)
    _streamed_counts(summary, kept, tables["responses"])
    streamed = tables.pop("responses")
    return RunResult(responses=streamed, **result_tables(ledger=ledger, **tables), summary=summary)


def _run_basics(normalized: list[_Normalized], responses: pd.DataFrame) -> tuple:
    """(ledger, plates, summary) of the run from the step-2 buckets."""
    ledger = _concat([n.ledger for n in normalized])
    plates = sort_table(_concat([n.plates for n in normalized]), "plates")
    datasets = sorted({d for n in normalized for d in n.datasets})
    summary = _summary(sum(n.n_read for n in normalized), sum(n.n_used for n in normalized), datasets, ledger,
                       responses)  # fmt: skip
    return ledger, plates, summary


def _streamed_counts(summary: dict, kept: list[_BucketRows], responses: StreamedTable) -> None:
    summary["treated_wells"] = len(responses)
    summary["refusals"] = {scale: _refusals([k.first[scale] for k in kept]) for scale in S.RESPONSE_SCALES}


def _streamed_result(
    normalized: list[_Normalized], spilled: list[scale_steps.Spilled], *, options: RunOptions, keep: Any,
    compute: Callable[..., tuple] | None = None,
) -> RunResult:  # fmt: skip
    """The run result of a streamed run whose whole-run steps are local to a bucket: curves and metrics go
    through them bucket by bucket (dask tasks run by ``compute``, on the run's workers; default: one after
    another in this process) and stay on disk (:mod:`doseatlas.scale_steps`)."""
    kept = [s.kept for s in spilled]
    growth = _concat([s.growth for s in spilled])
    ledger, plates, summary = _run_basics(normalized, growth.iloc[:0])
    identities = scale_steps.run_identities(spilled, options)
    plates = apply_identities(plates, identities) if len(plates) and S.CELL_LINE in plates else plates
    interference = sort_table(_concat([s.interference for s in spilled]), "interference")
    interference = apply_identities(interference, identities) if len(interference) else interference
    dip = sort_table(_concat([n.dip for n in normalized]), "dip")
    dip = apply_identities(dip, identities) if len(dip) else dip
    steps = {"identities": identities, "plates": plates, "interference": interference, "options": options}
    finished = _finished(spilled, steps=steps, ledger=ledger, directory=Path(keep.name), compute=compute)
    growth = apply_identities(sort_table(growth, "responses"), identities)
    timed, added, notes = scale_steps.whole_run_aggregates(
        finished, growth=growth, identities=identities, interference=interference, options=options
    )
    summary.update(added)
    if notes:
        summary.setdefault("notes", []).extend(notes)
    responses = _streamed(kept, identities, keep)
    _streamed_counts(summary, kept, responses)
    curves, metrics = (scale_steps.streamed_table(finished, name, keep) for name in ("curves", "metrics"))
    metrics.report_parts = [f.report for f in finished]
    small = result_tables(ledger=ledger, plates=plates, dip=dip, identities=identities,
                          consistency=finished[0].consistency, interference=interference, **timed)  # fmt: skip
    return RunResult(responses=responses, curves=curves, metrics=metrics, **small, summary=summary)


def _finished(
    spilled: list[scale_steps.Spilled], *, steps: dict[str, Any], ledger: pd.DataFrame, directory: Path,
    compute: Callable[..., tuple] | None,
) -> list[scale_steps.Finished]:  # fmt: skip
    """:func:`doseatlas.scale_steps.finish_bucket` of every bucket, as dask tasks (the ledger goes to the first
    only: the report counts it once)."""
    from dask import delayed

    tasks = [
        delayed(scale_steps.finish_bucket)(bucket, i, keep=directory, n_buckets=len(spilled), first=i == 0,
                                           context={"steps": steps, "ledger": ledger if i == 0 else ledger.iloc[:0]})
        for i, bucket in enumerate(spilled)
    ]  # fmt: skip
    return list((compute or _synchronous)(*tasks))


def _synchronous(*tasks: Any) -> tuple:
    import dask

    return dask.compute(*tasks, scheduler="synchronous")


def _streamed(kept: list[_BucketRows], identities: pd.DataFrame, keep: Any) -> StreamedTable:
    """The run's responses on disk: the buckets' pieces, with the run's identities applied as they are read."""
    return StreamedTable(
        buckets=[k.paths for k in kept],
        n_rows=sum(k.n_rows for k in kept),
        prepare=functools.partial(apply_identities, identities=identities),
        files=sorted({f for k in kept for f in k.files}),
        distinct_on=(
            S.DATASET,
            S.PERTURBATION_TYPE,
            S.CELL_LINE,
            S.CELL_LINE_ID,
            S.PERTURBAGEN,
            S.PERTURBAGEN_ID,
        ),
        counts=merge_response_counts([k.counts for k in kept]),
        _keep=keep,
    )
