"""The whole-run steps of a streamed partitioned run, bucket by bucket (``doseatlas run --engine dask``).

A step-3 bucket of :mod:`doseatlas.scale` holds whole (data set, perturbagen) groups. When the run has one data
set, no time course (DIP curves) and no conversion to target durations, every step of
:func:`doseatlas.pipeline.whole_run_steps` that reads the curves and metrics is local to such a group:

- row by row: ``refuse_unsupported``, the identities (:func:`doseatlas.harmonize.apply_identities`, once the
  run's identities are resolved from the buckets' distinct source names), ``with_bound_columns``,
  ``in_response_units``;
- per curve or per (data set, cell line, perturbagen) pair: ``auc_common`` (it compares data sets: none to
  compare with one), ``time_dependence``, ``flag_metrics`` (with the run's plates and interference tables,
  which are small, and the bucket's response rows that the flags read).

So each bucket's curves and metrics go through these steps on their own, are sorted in the output order and
kept on disk in pieces (:func:`doseatlas.io.streamed.write_pieces`): the output files are written from a merge
of the pieces (:class:`doseatlas.io.streamed.StreamedTable`, ranks of the run's key values), and only small
aggregates stay in memory: the growth table's rows, the time dependence, the counts of the summary (statuses
with each one's first row, flags) and each bucket's report data (:func:`doseatlas.report_data.report_data`,
merged by :func:`doseatlas.report_data.merge_report_data`). At most one bucket's curves and metrics are in
memory at a time. Runs the rule does not cover are assembled in memory as before (:func:`is_local`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from doseatlas import schemas as S
from doseatlas.growth import growth_table
from doseatlas.harmonize import apply_identities, resolve_identities
from doseatlas.harmonize.consistency import consistency_table, with_auc_common
from doseatlas.harmonize.identities import identity_notes, identity_summary, source_names
from doseatlas.io import read_piece, write_piece
from doseatlas.io.streamed import StreamedTable, value_ranks, write_pieces
from doseatlas.metrics.convert import convert_metrics
from doseatlas.metrics.flags import FLAG_CODES, flag_counts
from doseatlas.metrics.time_dependence import time_dependence
from doseatlas.pipeline import (
    TABLE_ORDER,
    RunOptions,
    _interfering_count,
    _refuse_unsupported,
    finish_per_curve,
    sort_table,
    time_summary,
)
from doseatlas.timecourse import N_READS

#: the columns that name cell lines and perturbagens (what the identities are resolved from)
NAME_COLUMNS = (S.DATASET, S.PERTURBATION_TYPE, S.CELL_LINE, S.CELL_LINE_ID, S.PERTURBAGEN, S.PERTURBAGEN_ID)


def is_local(*, datasets: Sequence[str], dip: Sequence[pd.DataFrame], options: RunOptions) -> bool:
    """True when the whole-run steps can run bucket by bucket: one data set (nothing to compare across
    buckets), no time course (the DIP curves come from the plate buckets) and no conversion to target
    durations (it averages over every well of a curve)."""
    timecourse = any(len(d) and N_READS in d and bool((d[N_READS] >= 3).any()) for d in dip)
    return len(set(datasets)) <= 1 and not timecourse and not options.conversion.targets


def name_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The distinct cell-line and perturbagen names (and ids) of ``table``: its source names are theirs."""
    return table[[c for c in NAME_COLUMNS if c in table]].drop_duplicates()


@dataclass
class Spilled:
    """A step-3 bucket of a streamed run: its per-curve tables on disk (each in output order) and what the
    whole run needs of them."""

    rows: Path  # the response rows the whole-run steps read (scale.rows_for_whole_run_steps)
    curves: Path
    metrics: Path
    interference: pd.DataFrame
    kept: Any  # scale._BucketRows: the bucket's responses on disk
    names: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]  # name_rows of (rows, curves, metrics)
    growth: pd.DataFrame  # the rows the growth table reads (scale.growth_rows)

    def load(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """(response rows, curves, metrics) of the bucket."""
        return tuple(read_piece(p) for p in (self.rows, self.curves, self.metrics))


def spill(keep: Path, bucket: int, tables: dict[str, pd.DataFrame], **more: Any) -> Spilled:
    """Write the bucket's response rows, curves and metrics (``tables``) to ``keep``."""
    paths = {}
    for name, table in tables.items():
        paths[name] = keep / f"{name}-{bucket:05d}.pkl"
        write_piece(table, paths[name])
    names = tuple(name_rows(tables[n]) for n in ("rows", "curves", "metrics"))
    return Spilled(**paths, names=names, **more)


def run_identities(spilled: Sequence[Spilled], options: RunOptions) -> pd.DataFrame:
    """The run's identities, resolved from every bucket's distinct source names (as ``harmonize`` resolves
    them from the whole tables: :func:`doseatlas.harmonize.identities.source_names` keeps distinct names)."""
    tables = [_concat([s.names[i] for s in spilled]) for i in range(3)]
    return resolve_identities(source_names(*tables), options=options.harmonize)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    full = [f for f in frames if len(f)]
    return pd.concat(full, ignore_index=True) if full else frames[0]


def bucket_steps(
    rows: pd.DataFrame,
    curves: pd.DataFrame,
    metrics: pd.DataFrame,
    *,
    identities: pd.DataFrame,
    plates: pd.DataFrame,
    interference: pd.DataFrame,
    options: RunOptions,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """:func:`doseatlas.pipeline.whole_run_steps` on one bucket's tables (those of its steps that read them,
    in the same order): (curves, metrics, time dependence)."""
    metrics = _refuse_unsupported(metrics)
    rows, curves, metrics = (apply_identities(t, identities) for t in (rows, curves, metrics))
    metrics = _refuse_unsupported(with_auc_common(metrics, curves))
    dependence = time_dependence(metrics)
    curves, metrics = finish_per_curve(curves, metrics, responses=rows, plates=plates, dependence=dependence,
                                       interference=interference, options=options)  # fmt: skip
    return curves, metrics, dependence


@dataclass
class Finished:
    """One bucket after the steps: its curves and metrics on disk, in output order, and their aggregates."""

    curves: list[Path]
    metrics: list[Path]
    n_curves: int
    n_metrics: int
    statuses: pd.DataFrame  # each status with its rows and its first row's key
    flags: dict[str, int]
    dependence: pd.DataFrame
    keys: dict[str, dict[str, list]]  # per table, the distinct values of each text key column
    report: Any  # report_data.ReportData of the bucket
    consistency: pd.DataFrame


def _text_keys(table: pd.DataFrame, name: str) -> dict[str, list]:
    """The distinct values of each text key column of ``table`` (``TABLE_ORDER[name]``)."""
    out = {}
    for column in TABLE_ORDER[name]:
        if column in table and not (
            isinstance(table[column].dtype, np.dtype) and table[column].dtype.kind in "biuf"
        ):
            out[column] = pd.unique(table[column].dropna()).tolist()
    return out


def _statuses(metrics: pd.DataFrame) -> pd.DataFrame:
    """Each status of ``metrics`` (in output order) with its rows and its first row's key."""
    present = metrics[metrics[S.STATUS].notna()]
    first = present.drop_duplicates(S.STATUS)[[S.STATUS, *(c for c in S.METRIC_KEY if c in present)]]
    return first.assign(n=first[S.STATUS].map(present[S.STATUS].value_counts()).to_numpy())


def finish_bucket(
    spilled: Spilled, bucket: int, *, keep: Path, n_buckets: int, context: dict[str, Any], first: bool
) -> Finished:
    """The steps on one bucket, its tables sorted and spilled in pieces, its aggregates."""
    from doseatlas.report_data import report_data

    rows, curves, metrics = spilled.load()
    curves, metrics, dependence = bucket_steps(rows, curves, metrics, **context["steps"])
    del rows
    curves, metrics = sort_table(curves, "curves"), sort_table(metrics, "metrics")
    part = _Part(
        metrics=metrics,
        curves=curves,
        responses=_bucket_responses(spilled.kept, context["steps"]["identities"], n_buckets),
        identities=context["steps"]["identities"],
        plates=context["steps"]["plates"],
        ledger=context["ledger"] if first else context["ledger"].iloc[:0],
        interference=context["steps"]["interference"] if first else pd.DataFrame(),
    )
    return Finished(
        curves=write_pieces(curves, keep, bucket, n_buckets=n_buckets, name="curves"),
        metrics=write_pieces(metrics, keep, bucket, n_buckets=n_buckets, name="metrics"),
        n_curves=len(curves),
        n_metrics=len(metrics),
        statuses=_statuses(metrics),
        flags=flag_counts(metrics),
        dependence=dependence,
        keys={"curves": _text_keys(curves, "curves"), "metrics": _text_keys(metrics, "metrics")},
        report=report_data(part),
        consistency=consistency_table(metrics) if first else pd.DataFrame(),
    )


@dataclass
class _Part:
    """The tables of one bucket as :func:`doseatlas.report_data.report_data` reads a run's."""

    metrics: pd.DataFrame
    curves: pd.DataFrame
    responses: Any
    identities: pd.DataFrame
    plates: pd.DataFrame
    ledger: pd.DataFrame
    interference: pd.DataFrame
    consistency: pd.DataFrame = field(default_factory=pd.DataFrame)
    summary: dict = field(default_factory=dict)


def _bucket_responses(kept: Any, identities: pd.DataFrame, n_buckets: int) -> StreamedTable:
    """One bucket's responses on disk, as the report of a streamed run reads them."""
    return StreamedTable(buckets=[kept.paths], n_rows=kept.n_rows,
                         prepare=functools.partial(apply_identities, identities=identities), files=kept.files,
                         distinct_on=NAME_COLUMNS, counts=kept.counts)  # fmt: skip


def status_counts(firsts: list[pd.DataFrame]) -> dict[str, int]:
    """``value_counts().to_dict()`` of the metrics' status over every bucket: most rows first, ties in the
    order the statuses first appear in the output order."""
    frames = [f for f in firsts if len(f)]
    if not frames:
        return {}
    table = sort_table(pd.concat(frames, ignore_index=True), "metrics")
    counts = table.groupby(S.STATUS, sort=False)["n"].sum().sort_values(ascending=False, kind="stable")
    return {k: int(v) for k, v in counts.items()}


def summed_flags(parts: list[dict[str, int]]) -> dict[str, int]:
    """:func:`doseatlas.metrics.flags.flag_counts` of the whole run from the buckets'."""
    total = {code: sum(p.get(code, 0) for p in parts) for code in FLAG_CODES}
    return {code: n for code, n in total.items() if n}


def streamed_table(finished: list[Finished], name: str, keep: Any) -> StreamedTable:
    """The buckets' pieces of ``name`` (curves or metrics) as one table in output order."""
    columns: dict[str, list] = {}
    for f in finished:
        for column, values in f.keys[name].items():
            columns.setdefault(column, []).extend(values)
    return StreamedTable(
        buckets=[getattr(f, name) for f in finished],
        n_rows=sum(getattr(f, "n_" + name) for f in finished),
        prepare=_unchanged,
        order=TABLE_ORDER[name],
        ranks={column: value_ranks(values) for column, values in columns.items()},
        _keep=keep,
    )


def _unchanged(table: pd.DataFrame) -> pd.DataFrame:
    return table


def whole_run_aggregates(
    finished: list[Finished], *, growth: pd.DataFrame, identities: pd.DataFrame, interference: pd.DataFrame,
    options: RunOptions,
) -> tuple[dict[str, pd.DataFrame], dict[str, Any], list[str]]:  # fmt: skip
    """The small tables and the summary of the whole-run steps, from the buckets' aggregates (as
    :func:`doseatlas.pipeline.whole_run_steps` makes them from the whole tables)."""
    dependence = sort_table(_concat([f.dependence for f in finished]), "time_dependence")
    converted = _refuse_unsupported(
        convert_metrics(growth, pd.DataFrame(), growth=growth_table(growth), options=options.conversion)
    )
    timed = {"growth": growth_table(growth), "converted": converted, "time_dependence": dependence}
    added = {
        "metric_status": status_counts([f.statuses for f in finished]),
        "curves": sum(f.n_curves for f in finished),
        "metric_rows": sum(f.n_metrics for f in finished),
        "identities": identity_summary(identities),
        "flags": summed_flags([f.flags for f in finished]),
        "interfering_compounds": _interfering_count(interference),
        **time_summary(timed),
    }
    return timed, added, identity_notes(identities)
