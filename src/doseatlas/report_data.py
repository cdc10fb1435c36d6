"""What the HTML report shows, as small aggregate tables and a bounded sample of curves.

The report (:mod:`doseatlas.report`) is drawn from a :class:`ReportData`, never from the whole tables: its cost
does not grow with the data set once the aggregates are made. :func:`report_data` makes them from a run's tables
with grouped, vectorized counts (one pass over each table); :func:`merge_report_data` adds up those of several
parts of a run (the buckets of the partitioned engine), so a report can be made without holding every table in
memory::

    parts = [report_data(bucket_result) for bucket_result in buckets]   # one per bucket, each small
    data = merge_report_data(parts, summary=summary, identities=identities, consistency=consistency)
    report.write_report(data, "report.html", meta=meta)

Merging assumes that every curve (curve key, :data:`doseatlas.schemas.CURVE_KEY`) lies in one part, and every
(cell line, perturbagen) pair too for the consistency plots: a bucket of the partitioned engine holds whole
pairs. The merged data equals the data of the whole run (counts added, samples and lists re-cut with the same
deterministic rules), except that the order of the first rejected rows follows the parts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from doseatlas import schemas as S
from doseatlas._codes import factorize, first_code_rows, joint_codes, ordered_codes

#: the count column of every count table
ROWS = "rows"
#: the column of :attr:`ReportData.response_counts` naming the response scale, and the outcome
SCALE_COL, OUTCOME = "scale", "outcome"
#: first rejected rows kept (the report shows them; all are in ledger.parquet)
LEDGER_HEAD = 20
#: largest number of points drawn in one consistency scatter panel (a deterministic sample beyond)
MAX_SCATTER_POINTS = 20_000
#: the mark column of :attr:`ReportData.marked`
MARK = "mark"


@dataclass
class CurveSample:
    """The curves drawn in the report and what their panels need: ``candidates`` (rows of
    :func:`doseatlas.report.pick_curves` before its per-data-set cut, with their ``_rank``), and the responses,
    curves and metric rows of those curves (``points`` has the columns of responses.parquet)."""

    candidates: pd.DataFrame
    points: pd.DataFrame
    curves: pd.DataFrame
    metrics: pd.DataFrame


@dataclass
class ReportData:
    """Everything the report shows, each part small (its size bounded by the number of data sets, readouts,
    durations, metrics, reasons, plates or by a cap, never by the number of wells or curves).

    Attributes
    ----------
    summary
        The run summary (``summary.json``): cards, warnings and notes. The report adds its own problems to
        ``summary["warnings"]``.
    datasets
        Every data set with metric rows, sorted (figures are drawn for the first
        :data:`doseatlas.report.MAX_FIGURES`).
    identities, consistency, plates
        identities.parquet, consistency.parquet and plates.parquet (one row per source name, per pair of data
        sets and metric, per plate).
    response_counts
        Treated-well response rows per (``dataset``, ``scale``, ``outcome``: ``computed`` or the reason), ``rows``.
    metric_counts
        Metric rows per (``dataset``, ``readout``, ``duration_h``, ``metric``, ``status``, ``reason``), ``rows``.
    policy_counts
        Curves per ``fit_policy`` (empty without that column), ``rows``.
    flag_counts
        Metric rows per (``dataset``, ``flags`` string), ``rows``; None when metrics have no ``flags`` column.
    marked, n_marked
        The flagged or reviewed curves: curve key and ``mark`` (their distinct flags / review texts, sorted,
        space-joined), the first :data:`doseatlas.report.MAX_FLAGGED` in curve-key order, and how many there are
        in all. ``marked`` is None when metrics have neither a ``flags`` nor a ``reviewed`` column.
    ledger_counts, ledger_head, n_ledger
        Rejected rows per (``reason``, ``column``), the first :data:`LEDGER_HEAD` of them, and how many in all.
    density
        :func:`doseatlas.metrics.density.density_shifts` (one row per pair measured at several densities).
    paired
        Per drawn pair of data sets (``dataset_a``, ``dataset_b``) and metric: the values of the pairs both
        measured (:func:`doseatlas.harmonize.consistency.paired_values`: the pair's key, ``value_a``,
        ``value_b``); the pairs
        of data sets drawn are chosen from ``consistency``, so a part made for merging needs the whole run's
        consistency table on its result.
    sample
        The curves drawn (:class:`CurveSample`).
    plate_maps
        The plate maps' HTML (:func:`doseatlas.plotting_plates.plate_maps_section`: at most 12 plates, flagged
        first); empty for merged parts, whose wells are not at hand.
    interference, n_interference
        Per compound with compound-only wells (data set, readout, read time, perturbation type, perturbagen): the
        largest ``|interference|`` over its concentrations, the concentration where it is, and whether it is
        ``interfering``; interfering compounds first, then by that size, the first :data:`MAX_INTERFERENCE`; and
        how many compounds there are in all.
    """

    summary: dict[str, Any]
    datasets: list[str]
    identities: pd.DataFrame
    consistency: pd.DataFrame
    plates: pd.DataFrame
    response_counts: pd.DataFrame
    metric_counts: pd.DataFrame
    policy_counts: pd.DataFrame
    flag_counts: pd.DataFrame | None
    marked: pd.DataFrame | None
    n_marked: int
    ledger_counts: pd.DataFrame
    ledger_head: pd.DataFrame
    n_ledger: int
    density: pd.DataFrame
    paired: pd.DataFrame
    sample: CurveSample
    plate_maps: str = ""
    interference: pd.DataFrame = field(default_factory=pd.DataFrame)
    n_interference: int = 0


#: compounds listed in the report's interference table
MAX_INTERFERENCE = 50
INTERFERENCE_COMPOUND = (S.DATASET, S.READOUT, S.TIME_H, S.PERTURBATION_TYPE, S.PERTURBAGEN)


def _by_interference(table: pd.DataFrame) -> pd.DataFrame:
    """Compound rows ranked for the report: interfering first, then by ``|interference|``, then by key."""
    key = list(INTERFERENCE_COMPOUND)
    ranked = table.assign(_size=table[S.INTERFERENCE].abs().to_numpy(float))
    ranked = ranked.sort_values(
        [S.INTERFERING, "_size", *key], ascending=[False, False, *[True] * len(key)], kind="stable"
    )
    return ranked.drop(columns="_size").reset_index(drop=True)


def interference_summary(table: pd.DataFrame, *, most: int = MAX_INTERFERENCE) -> tuple[pd.DataFrame, int]:
    """(the largest interference of each compound, interfering ones first, at most ``most``; how many compounds)
    of ``interference.parquet`` (:mod:`doseatlas.interference`)."""
    key = list(INTERFERENCE_COMPOUND)
    columns = [*key, S.CONCENTRATION, S.INTERFERENCE, S.INTERFERING]
    if not len(table) or not set(columns) <= set(table.columns):
        return pd.DataFrame(columns=columns), 0
    rows = table[columns].assign(_size=table[S.INTERFERENCE].abs().to_numpy(float))
    rows = rows.sort_values([*key, "_size"], ascending=[True] * len(key) + [False], kind="stable")
    per = rows.drop_duplicates(key).drop(columns="_size")
    per[S.INTERFERING] = per[S.INTERFERING].astype(bool)
    return _by_interference(per).head(most), len(per)


def _merged_interference(parts: Sequence[ReportData]) -> tuple[pd.DataFrame, int]:
    frames = [p.interference for p in parts if len(p.interference)]
    if not frames:
        return pd.DataFrame(), 0
    merged = _by_interference(pd.concat(frames, ignore_index=True)).head(MAX_INTERFERENCE)
    return merged, sum(p.n_interference for p in parts)


def _table(result: Any, name: str) -> pd.DataFrame:
    table = getattr(result, name, None)
    return table if isinstance(table, pd.DataFrame) else pd.DataFrame()


def response_counts(responses: pd.DataFrame) -> pd.DataFrame:
    """Response rows per data set, scale and outcome (``computed`` or the reason it was not)."""
    columns = [S.DATASET, SCALE_COL, OUTCOME, ROWS]
    reasons = [S.reason_column(scale) for scale in S.RESPONSE_SCALES]
    if responses.empty or not set(reasons) <= set(responses.columns):
        return pd.DataFrame(columns=columns)
    keys = [S.DATASET, *reasons]
    counts = _key_counts(responses, keys)
    parts = [
        pd.DataFrame(
            {
                S.DATASET: counts[S.DATASET],
                SCALE_COL: scale,
                OUTCOME: counts[S.reason_column(scale)].astype(object).fillna("computed").astype(str),
                ROWS: counts[ROWS],
            }
        )
        for scale in S.RESPONSE_SCALES
    ]
    long = pd.concat(parts, ignore_index=True)
    return long.groupby(columns[:3], sort=True, dropna=False).sum().reset_index()[columns]


def _key_counts(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One row per distinct ``keys`` of ``table`` (missing values a key of their own; the values and dtypes of
    the table's first row of that key) and its number of ``rows``, in the order of first appearance: as a
    ``groupby(keys, dropna=False, sort=False)`` counts them, on the key columns' codes (each column factorized
    on its runs of equal values) with one ``bincount``."""
    (codes,), n_keys = joint_codes([table], [keys])
    first = first_code_rows(codes)
    counts = np.bincount(codes, minlength=n_keys).astype(np.int64)
    return table[keys].iloc[first].reset_index(drop=True).assign(**{ROWS: counts[codes[first]]})


def merge_response_counts(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """:func:`response_counts` of parts (report parts, buckets of a streamed run) summed into the whole run's."""
    merged = _summed(list(frames), [S.DATASET, SCALE_COL, OUTCOME])
    return merged if merged is not None else pd.DataFrame(columns=[S.DATASET, SCALE_COL, OUTCOME, ROWS])


METRIC_COUNT_KEY = (S.DATASET, S.READOUT, S.DURATION_H, S.METRIC, S.STATUS, S.REASON)


def metric_counts(metrics: pd.DataFrame) -> pd.DataFrame:
    """Metric rows per data set, readout, duration, metric, status and reason."""
    key = list(METRIC_COUNT_KEY)
    if metrics.empty:
        return pd.DataFrame(columns=[*key, ROWS])
    return metrics.groupby(key, dropna=False, sort=True, observed=True).size().rename(ROWS).reset_index()


def policy_counts(curves: pd.DataFrame) -> pd.DataFrame:
    """Curves per fit policy (empty without a ``fit_policy`` column)."""
    if curves.empty or S.FIT_POLICY not in curves:
        return pd.DataFrame(columns=[S.FIT_POLICY, ROWS])
    counts = curves[S.FIT_POLICY].value_counts()
    return counts.rename(ROWS).rename_axis(S.FIT_POLICY).reset_index()


def flag_counts(metrics: pd.DataFrame) -> pd.DataFrame | None:
    """Metric rows per data set and ``flags`` string (None without a ``flags`` column)."""
    if S.FLAGS not in metrics:
        return None
    key = [S.DATASET, S.FLAGS]
    return metrics.groupby(key, dropna=False, sort=True, observed=True).size().rename(ROWS).reset_index()


def _mark_text(metrics: pd.DataFrame, columns: list[str]) -> pd.Series:
    """The flags / review text of every row: the columns' texts space-joined, stripped."""
    texts = [metrics[c].astype("string").fillna("") for c in columns]
    text = texts[0]
    for more in texts[1:]:
        text = text + " " + more
    return text.str.strip()


def _joined(sorted_rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One row per curve of ``sorted_rows`` (sorted by curve and mark, distinct marks), its marks space-joined
    (one pyarrow ``binary_join`` over list offsets: no loop per curve)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    starts = np.flatnonzero(~sorted_rows.duplicated(keys).to_numpy())
    offsets = pa.array(np.append(starts, len(sorted_rows)), type=pa.int64())
    values = pa.array(sorted_rows[MARK].astype(str).to_numpy(dtype=object), type=pa.large_string())
    lists = pa.LargeListArray.from_arrays(offsets, values)
    joined = pc.binary_join(lists, pa.scalar(" ", type=pa.large_string())).to_pandas()
    out = sorted_rows.iloc[starts][keys].reset_index(drop=True)
    out[MARK] = joined.to_numpy(dtype=object)
    return out


def _mark_codes(metrics: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(per row: the code of its mark text, :func:`_mark_text`; the distinct texts, sorted): the text made once
    per distinct combination of the ``columns`` (one row of each), not once per row."""
    (combo,), _ = joint_codes([metrics], [columns])
    _, first = np.unique(combo, return_index=True)  # combo numbers are dense: one first row per number
    text_of_combo = _mark_text(metrics[columns].iloc[first], columns).to_numpy(dtype=object)
    text_code, texts = pd.factorize(text_of_combo, sort=True)
    return text_code[combo], np.asarray(texts, dtype=object)


def _sorted_codes(rows: pd.DataFrame, keys: list[str]) -> np.ndarray:
    """Dense number of every row's ``keys``, in the order ``sort_values(keys)`` puts them (missing last); each
    column factorized on its runs of equal values (:func:`doseatlas._codes.factorize`: a table in curve order
    is factorized on one row per curve)."""
    coded = []
    for key in keys:
        codes, uniques = factorize(rows[key], sort=True)
        coded.append((codes, len(uniques)))
    return ordered_codes(coded, len(rows))


def marked_curves(metrics: pd.DataFrame, *, most: int) -> tuple[pd.DataFrame | None, int]:
    """The first ``most`` flagged or reviewed curves in curve-key order (curve key and ``mark``), and how many
    there are; (None, 0) when metrics have neither a ``flags`` nor a ``reviewed`` column. The marked rows are
    ordered and made distinct on integer codes (each key column factorized once, sorted); only the rows of the
    curves kept are taken whole."""
    columns = [c for c in (S.FLAGS, S.REVIEWED) if c in metrics]
    keys = list(S.CURVE_KEY)
    if not len(metrics) or not columns:
        return None, 0
    mark, texts = _mark_codes(metrics, columns)
    marked = np.flatnonzero(texts[mark] != "")
    table = S.with_series(metrics[[c for c in keys if c in metrics]])[keys]  # the key columns only
    # the curves of all rows numbered in key order (a table in curve order: one factorized row per curve),
    # then those of the marked rows; only the rows of the curves kept are taken
    pair = _sorted_codes(table, keys)[marked] * len(texts) + mark[marked]
    pairs, first = np.unique(pair, return_index=True)  # sorted by curve, then mark; one row of each pair
    curve = pairs // len(texts)
    new = np.r_[True, curve[1:] != curve[:-1]]
    kept = np.cumsum(new) <= most
    chosen = table.iloc[marked[first[kept]]].reset_index(drop=True)
    chosen[MARK] = texts[pairs[kept] % len(texts)]
    return _joined(chosen, keys), int(new.sum())


def ledger_parts(ledger: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Rejected rows per (reason, column), the first :data:`LEDGER_HEAD` rejected rows, how many in all."""
    if ledger.empty:
        return pd.DataFrame(columns=[S.LEDGER_REASON, S.LEDGER_COLUMN, ROWS]), ledger.head(0), 0
    counts = ledger.groupby([S.LEDGER_REASON, S.LEDGER_COLUMN]).size().rename(ROWS).reset_index()
    return counts, ledger.head(LEDGER_HEAD), len(ledger)


def density_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """:func:`doseatlas.metrics.density.density_shifts` of ``metrics``; when no (cell line, perturbagen) has
    estimated rows at two densities (no pair can have a shift), the empty table without sorting the metrics."""
    from doseatlas.metrics.density import COLUMNS, density_shifts

    if S.SEEDING_DENSITY not in metrics or metrics[S.SEEDING_DENSITY].nunique() < 2:
        return pd.DataFrame(columns=COLUMNS)
    estimated = metrics[S.STATUS].eq(S.MetricStatus.ESTIMATED.value).to_numpy(dtype=bool)
    est = metrics[[S.CELL_LINE, S.PERTURBAGEN, S.SEEDING_DENSITY]][estimated]  # the columns counted only
    pairs = est.groupby([S.CELL_LINE, S.PERTURBAGEN], sort=False, observed=True)[S.SEEDING_DENSITY].nunique()
    if not pairs.gt(1).any():
        return pd.DataFrame(columns=COLUMNS)
    return density_shifts(metrics)


def _key_rows(table: pd.DataFrame, picks: pd.DataFrame, *, duration: str = S.DURATION_H) -> pd.DataFrame:
    """The rows of ``table`` whose curve key is that of a row of ``picks`` (unknown values match unknown)."""
    if table.empty or picks.empty:
        return table.head(0)
    table = S.with_series(table)
    keys = [k if k != S.DURATION_H else duration for k in S.CURVE_KEY]
    near = np.flatnonzero(
        table[S.CELL_LINE].isin(picks[S.CELL_LINE]).to_numpy(dtype=bool)
        & table[S.PERTURBAGEN].isin(picks[S.PERTURBAGEN]).to_numpy(dtype=bool)
    )
    wanted = S.with_series(picks)[list(S.CURVE_KEY)].drop_duplicates().set_axis(keys, axis=1)
    rows = table[keys].iloc[near]  # the key columns only: the rows kept are taken whole at the end
    codes = pd.MultiIndex.from_frame(rows.astype(object).where(rows.notna(), None))
    want = pd.MultiIndex.from_frame(wanted.astype(object).where(wanted.notna(), None))
    found = codes.isin(want)
    index = table.index.take(near).take(np.flatnonzero(found))  # as two selections in a row make it
    return table.iloc[near[found]].set_axis(index)


def curve_sample(
    metrics: pd.DataFrame, responses: pd.DataFrame, curves: pd.DataFrame, *, streamed: Any = None
) -> CurveSample:
    """The candidate curves of the first :data:`doseatlas.report.MAX_FIGURES` data sets and the rows their
    panels need (of a streamed run, ``streamed``: read from disk, only those of the candidates)."""
    from doseatlas import report

    datasets = sorted(metrics[S.DATASET].dropna().unique().tolist()) if len(metrics) else []
    if not datasets:
        shown = metrics.head(0)
    elif len(datasets) <= report.MAX_FIGURES and not metrics[S.DATASET].isna().any():
        shown = metrics  # every row is of a data set drawn: no copy of the whole table
    else:
        shown = metrics[metrics[S.DATASET].isin(datasets[: report.MAX_FIGURES])]
    candidates = report.pick_candidates(shown)
    if streamed is not None:
        responses = streamed_points(streamed, candidates)
    return _sample_of(candidates, metrics=metrics, responses=responses, curves=curves)


def _sample_of(
    candidates: pd.DataFrame, *, metrics: pd.DataFrame, responses: pd.DataFrame, curves: pd.DataFrame
) -> CurveSample:
    rows = _key_rows(metrics, candidates)
    used = curves[curves[S.CURVE_ID].isin(rows[S.CURVE_ID])] if len(curves) and len(rows) else curves.head(0)
    points = (
        _key_rows(responses, candidates, duration=S.TIME_H) if S.TIME_H in responses else responses.head(0)
    )
    return CurveSample(candidates=candidates, points=points, curves=used, metrics=rows)


def paired_points(metrics: pd.DataFrame, consistency: pd.DataFrame) -> pd.DataFrame:
    """The paired values drawn in the consistency scatter plots (the first
    :data:`doseatlas.report.MAX_SCATTER_PAIRS` pairs of data sets sharing pairs, the metrics of
    :data:`doseatlas.report.SCATTER_METRICS`)."""
    from doseatlas import report
    from doseatlas.harmonize.consistency import paired_values, per_source

    columns = [S.DATASET_A, S.DATASET_B, S.METRIC, *S.CONSISTENCY_KEY, S.VALUE + "_a", S.VALUE + "_b"]
    if consistency is None or consistency.empty or metrics.empty:
        return pd.DataFrame(columns=columns)
    pairs = consistency.drop_duplicates([S.DATASET_A, S.DATASET_B])
    pairs = pairs[pairs[S.N_SHARED_PAIRS].gt(0)].head(report.MAX_SCATTER_PAIRS)
    names = set(pairs[S.DATASET_A].astype(str)) | set(pairs[S.DATASET_B].astype(str))
    dataset = metrics[S.DATASET].astype(str)
    keep = (dataset.isin(names) & metrics[S.METRIC].isin(report.SCATTER_METRICS)).to_numpy(dtype=bool)
    agg = per_source(metrics[keep].assign(**{S.DATASET: dataset[keep]}))
    parts = [  # sorted by pair (per_source's order), as merge_report_data sorts them
        paired_values(agg, str(a), str(b)).assign(**{S.DATASET_A: str(a), S.DATASET_B: str(b)})[columns]
        for a, b in zip(pairs[S.DATASET_A], pairs[S.DATASET_B], strict=True)
    ]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def report_data(result: Any, *, problems: list[str] | None = None) -> ReportData:
    """The aggregates of the report of ``result`` (a :class:`doseatlas.Result` or the pipeline's result: any
    object with the run's tables as attributes and ``summary``): one grouped pass over each table. An aggregate
    that cannot be made is left empty and the problem added to ``problems`` (the report says so)."""
    from doseatlas import report
    from doseatlas.plotting_plates import plate_maps_section

    parts = getattr(getattr(result, "metrics", None), "report_parts", None)
    if parts:  # a streamed run's metrics stay on disk: the report data of its buckets, merged
        merged = merge_report_data(parts, summary=getattr(result, "summary", {}),
                                   **{n: _table(result, n) for n in ("identities", "consistency", "plates")})  # fmt: skip
        return replace(merged, plate_maps=STREAMED_PLATE_MAPS)
    metrics, responses, curves = (_table(result, n) for n in ("metrics", "responses", "curves"))
    streamed = _streamed_responses(result)
    consistency = _table(result, "consistency")

    def safe(what: str, make, empty):
        try:
            return make()
        except Exception as exc:  # a part of the report that cannot be made must not cost the run
            if problems is not None:
                problems.append(f"report: {what} could not be summarized ({type(exc).__name__}: {exc})"[:500])
            return empty

    none = pd.DataFrame()
    marked, n_marked = safe(
        "flagged curves", lambda: marked_curves(metrics, most=report.MAX_FLAGGED), (None, 0)
    )
    ledger_counts, ledger_head, n_ledger = ledger_parts(_table(result, "ledger"))
    return ReportData(
        summary=getattr(result, "summary", {}),
        datasets=sorted(metrics[S.DATASET].dropna().unique().tolist()) if len(metrics) else [],
        identities=_table(result, "identities"),
        consistency=consistency,
        plates=_table(result, "plates"),
        response_counts=safe(
            "responses",
            lambda: response_counts(responses) if streamed is None else streamed.counts,
            none,
        ),
        metric_counts=safe("metrics", lambda: metric_counts(metrics), none),
        policy_counts=safe("fit policies", lambda: policy_counts(curves), none),
        flag_counts=safe("flags", lambda: flag_counts(metrics), None),
        marked=marked,
        n_marked=n_marked,
        ledger_counts=ledger_counts,
        ledger_head=ledger_head,
        n_ledger=n_ledger,
        density=safe("seeding density", lambda: density_table(metrics), none),
        paired=safe("consistency", lambda: paired_points(metrics, consistency), none),
        sample=safe(
            "curves",
            lambda: curve_sample(metrics, responses, curves, streamed=streamed),
            _empty_sample(),
        ),
        plate_maps=STREAMED_PLATE_MAPS
        if streamed is not None
        else safe("plate maps", lambda: plate_maps_section(result), ""),
        **dict(
            zip(
                ("interference", "n_interference"),
                safe("interference", lambda: interference_summary(_table(result, "interference")), (none, 0)),
                strict=True,
            )
        ),
    )


#: the plate-maps section of a streamed run (its wells stay on disk; the maps are drawn in memory runs)
STREAMED_PLATE_MAPS = (
    '<p class="sub">No plate maps: this run streamed its responses (<code>--engine dask</code>); '
    "plates.parquet holds every plate's edge effect and Z'-factor, an in-memory run draws the maps.</p>"
)


def _streamed_responses(result: Any) -> Any:
    """The run's responses when they stay on disk (:class:`doseatlas.io.streamed.StreamedTable`), else None."""
    from doseatlas.io.streamed import StreamedTable

    responses = getattr(result, "responses", None)
    return responses if isinstance(responses, StreamedTable) else None


def streamed_points(responses: Any, candidates: pd.DataFrame) -> pd.DataFrame:
    """The rows of a streamed run's responses the curve panels may draw: those of the candidate curves' data
    sets, cell lines and perturbagens, read from disk piece by piece."""
    if not len(candidates):
        return pd.DataFrame()
    return responses.rows_where(
        lambda t: (
            t[S.DATASET].isin(candidates[S.DATASET])
            & t[S.CELL_LINE].isin(candidates[S.CELL_LINE])
            & t[S.PERTURBAGEN].isin(candidates[S.PERTURBAGEN])
        )
    )


def _empty_sample() -> CurveSample:
    return CurveSample(*(pd.DataFrame({"_rank": []}) if i == 0 else pd.DataFrame() for i in range(4)))


def _concat(frames: list[pd.DataFrame | None]) -> pd.DataFrame | None:
    frames = [f for f in frames if f is not None]
    if not frames:
        return None
    full = [f for f in frames if len(f)]
    return pd.concat(full, ignore_index=True) if full else frames[0]


def _summed(frames: list[pd.DataFrame | None], key: list[str]) -> pd.DataFrame | None:
    table = _concat(frames)
    if table is None or table.empty:
        return table
    return table.groupby(key, dropna=False, sort=True, observed=True)[ROWS].sum().reset_index()


def _merged_marks(parts: Sequence[ReportData]) -> pd.DataFrame | None:
    from doseatlas import report

    table = _concat([p.marked for p in parts])
    if table is None or table.empty:
        return table
    table = table.sort_values([*S.CURVE_KEY, MARK], kind="stable")
    return table[~table.duplicated(list(S.CURVE_KEY)).to_numpy()].head(report.MAX_FLAGGED)


def _merged_sample(parts: Sequence[ReportData]) -> CurveSample:
    from doseatlas import report

    samples = [p.sample for p in parts]
    candidates = report.recut_candidates(_concat([s.candidates for s in samples]))
    return _sample_of(
        candidates,
        metrics=_concat([s.metrics for s in samples]),
        responses=_concat([s.points for s in samples]),
        curves=_concat([s.curves for s in samples]),
    )


def merge_report_data(
    parts: Sequence[ReportData],
    *,
    summary: dict[str, Any],
    identities: pd.DataFrame | None = None,
    consistency: pd.DataFrame | None = None,
    plates: pd.DataFrame | None = None,
) -> ReportData:
    """The report data of a whole run from that of its parts (see the module docstring for what a part must
    hold). Tables of the whole run (``identities``, ``consistency``, ``plates``) replace the parts' own when
    given; otherwise the parts' are concatenated. ``summary`` is the whole run's."""
    if not parts:
        raise ValueError("merge_report_data needs at least one part")
    both = [S.DATASET_A, S.DATASET_B, S.METRIC, *S.CONSISTENCY_KEY]
    paired = _concat([p.paired for p in parts])
    return ReportData(
        summary=summary,
        datasets=sorted({d for p in parts for d in p.datasets}),
        identities=identities if identities is not None else _concat([p.identities for p in parts]),
        consistency=consistency if consistency is not None else _concat([p.consistency for p in parts]),
        plates=plates if plates is not None else _concat([p.plates for p in parts]),
        response_counts=merge_response_counts([p.response_counts for p in parts]),
        metric_counts=_summed([p.metric_counts for p in parts], list(METRIC_COUNT_KEY)),
        policy_counts=_summed([p.policy_counts for p in parts], [S.FIT_POLICY]),
        flag_counts=_summed([p.flag_counts for p in parts], [S.DATASET, S.FLAGS]),
        marked=_merged_marks(parts),
        n_marked=sum(p.n_marked for p in parts),
        ledger_counts=_summed([p.ledger_counts for p in parts], [S.LEDGER_REASON, S.LEDGER_COLUMN]),
        ledger_head=_concat([p.ledger_head for p in parts]).head(LEDGER_HEAD),
        n_ledger=sum(p.n_ledger for p in parts),
        density=_concat([p.density for p in parts]),
        paired=paired.sort_values(both, kind="stable") if len(paired) else paired,
        sample=_merged_sample(parts),
        **dict(zip(("interference", "n_interference"), _merged_interference(parts), strict=True)),
    )
