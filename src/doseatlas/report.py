"""The HTML report of a run: what was computed, what was refused and why."""

from __future__ import annotations

import contextlib
import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from doseatlas import report_data as D
from doseatlas import schemas as S
from doseatlas._text import names, plain
from doseatlas.report_data import ReportData, report_data

CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1.2em;color:#1d2733;line-height:1.45;background:#fbfcfd}
h1{font-size:1.7em;margin-bottom:.1em}h2{border-bottom:2px solid #d9e2ec;padding-bottom:.2em;margin-top:1.8em}
h3{margin-top:1.3em;color:#334e68}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.9em}
th,td{border:1px solid #d9e2ec;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f0f4f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
.sub{color:#627d98}.ok{color:#2f855a;font-weight:600}.warn{color:#b7791f;font-weight:600}
.cards{display:flex;gap:1em;flex-wrap:wrap}.card{background:#fff;border:1px solid #d9e2ec;border-radius:8px;
padding:.7em 1.1em;min-width:9em}.card b{display:block;font-size:1.5em}
code{background:#f0f4f8;padding:0 .25em;border-radius:3px}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #d9e2ec;border-radius:6px;background:#fff}
figcaption{color:#627d98;font-size:.9em}.scroll{overflow-x:auto;max-width:100%}
.cols{display:flex;gap:2em;flex-wrap:wrap;align-items:flex-start}
"""


#: data sets drawn as figures (the first in name order); every curve is in the tables
MAX_FIGURES = 6
#: rows shown of any table of the report; every row is in the Parquet tables
MAX_ROWS = 100
#: per-(data set, readout, duration) metric tables shown after the table over all data sets
MAX_GROUPS = 12


#: how a missing value is shown in a report table (never a raw ``nan`` / ``None`` / ``<NA>``)
MISSING = "–"


#: the plate-maps section of a report made from merged parts (the maps need a whole run's wells)
NO_PLATE_MAPS = '<p class="sub">No plate maps: they are drawn from the wells of a whole run.</p>'


def _cell(value: Any) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return f'<td class="sub">{MISSING}</td>'
    numeric = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    text = f"{value:.4g}" if isinstance(value, float | np.floating) else plain(value)
    return f'<td class="num">{html.escape(text)}</td>' if numeric else f"<td>{html.escape(text)}</td>"


def _table(frame: pd.DataFrame, *, caption: str | None = None, rest: str = "the output tables") -> str:
    """A small HTML table: at most :data:`MAX_ROWS` rows (saying how many are not shown and where they are),
    numbers right-aligned, every text clipped, made visible and escaped."""
    if frame.empty:
        return '<p class="sub">none</p>'
    head = "".join(f"<th>{html.escape(plain(c))}</th>" for c in frame.columns)
    rows = [
        "<tr>" + "".join(_cell(v) for v in r) + "</tr>" for r in frame.head(MAX_ROWS).itertuples(index=False)
    ]
    cap = f"<caption>{html.escape(plain(caption))}</caption>" if caption else ""
    more = (
        f'<p class="sub">first {MAX_ROWS:,} of {len(frame):,} rows shown; all are in {html.escape(rest)}.</p>'
        if len(frame) > MAX_ROWS
        else ""
    )
    return (
        f'<div class="scroll"><table>{cap}<thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>{more}"
    )


def _cards(summary: dict[str, Any]) -> str:
    items = [
        ("rows read", summary["rows_read"]),
        ("rows used", summary["rows_used"]),
        ("rows in the ledger", summary["rows_in_ledger"]),
        ("treated wells", summary["treated_wells"]),
        ("curves", summary.get("curves", 0)),
        ("metric rows", summary.get("metric_rows", 0)),
    ]
    cards = "".join(f'<div class="card"><b>{v:,}</b>{html.escape(k)}</div>' for k, v in items)
    balanced = summary["rows_used"] + summary["rows_in_ledger"] == summary["rows_read"]
    check = (
        '<p class="ok">rows read = rows used + rows in the ledger: every input row is accounted for.</p>'
        if balanced
        else '<p class="warn">row accounting does not balance.</p>'
    )
    return f'<div class="cards">{cards}</div>{check}'


def _agg(source: Any, name: str, make: Callable[[Any], Any]) -> Any:
    """The aggregate ``name`` of ``source``: read from a :class:`~doseatlas.report_data.ReportData`, made by
    ``make`` from a run's tables otherwise (so that each section also takes a run result)."""
    return getattr(source, name) if isinstance(source, ReportData) else make(source)


def _frame(source: Any, name: str) -> pd.DataFrame:
    table = getattr(source, name, None)
    return table if isinstance(table, pd.DataFrame) else pd.DataFrame()


def _responses_section(responses: pd.DataFrame | ReportData) -> str:
    """Per data set: how many treated wells got each response scale, and why not (from the response counts of
    a :class:`~doseatlas.report_data.ReportData`, or of a responses table)."""
    counts = responses.response_counts if isinstance(responses, ReportData) else D.response_counts(responses)
    if counts.empty:
        return '<p class="sub">No treated wells.</p>'
    parts = []
    for scale in S.RESPONSE_SCALES:
        block = counts[counts[D.SCALE_COL].eq(scale)]
        table = block.pivot_table(
            index=S.DATASET, columns=D.OUTCOME, values=D.ROWS, aggfunc="sum", fill_value=0, observed=True
        )
        parts.append(f"<h3><code>{scale}</code></h3>" + _table(_unnamed(table), rest="responses.parquet"))
    return "".join(parts)


def _unnamed(table: pd.DataFrame) -> pd.DataFrame:
    """A pivoted count table as a plain frame: index as the first column(s), integer counts."""
    return table.astype("int64").rename_axis(columns=None).reset_index()


def _ledger_section(ledger: pd.DataFrame | ReportData) -> str:
    if isinstance(ledger, ReportData):
        counts, sample, total = ledger.ledger_counts, ledger.ledger_head, ledger.n_ledger
    else:
        counts, sample, total = D.ledger_parts(ledger)
    if not total:
        return '<p class="ok">No input row was rejected.</p>'
    return (
        _table(counts, rest="ledger.parquet")
        + "<h3>First rejected rows</h3>"
        + _table(sample)
        + f'<p class="sub">{len(sample):,} of {total:,} rejected rows shown; all are in '
        "ledger.parquet (long values cut here, whole there).</p>"
    )


def _provenance(meta: dict[str, Any]) -> str:
    inputs = pd.DataFrame(meta.get("inputs", []))
    return (
        f'<p class="sub">doseatlas {html.escape(plain(meta.get("package_version")))}, schema '
        f"{html.escape(plain(meta.get('schema_version')))}, created {html.escape(plain(meta.get('created_utc')))}"
        f"<br>command: <code>{html.escape(plain(meta.get('command'), limit=2000))}</code></p>"
        + _table(inputs, rest="the provenance of every output table")
    )


def _guarded(title: str, make: Callable[[], str], problems: list[str]) -> str:
    """A section's HTML, or, if making it fails, a message in its place (recorded in ``problems``): the report
    never costs a run its results."""
    try:
        return make()
    except Exception as exc:  # any failure of a report part becomes a message, not a lost run
        problem = f"report: {title} could not be drawn ({type(exc).__name__}: {exc})"
        problems.append(plain(problem, limit=500))
        return f'<p class="warn">{html.escape(plain(problem, limit=500))}</p>'


def build_report(
    result: Any, *, meta: dict[str, Any], extra_sections: list[tuple[str, str]] = ()
) -> tuple[str, list[str]]:
    """The report as an HTML string, and the problems met making it (parts replaced by a message).

    ``result`` is a run's result (its tables are first reduced to a
    :class:`~doseatlas.report_data.ReportData` by :func:`~doseatlas.report_data.report_data`) or a
    ``ReportData`` itself (e.g. merged from the parts of a partitioned run by
    :func:`~doseatlas.report_data.merge_report_data`): every section is drawn from those small aggregates.
    """
    problems: list[str] = []
    _import_plotting_early()
    data = result if isinstance(result, ReportData) else report_data(result, problems=problems)
    makers = [
        ("Identities: conflicts and near misses", lambda: identities_section(data)),
        ("Summary", lambda: _cards(data.summary)),
        ("Responses computed and refused", lambda: _responses_section(data)),
        ("Metrics computed and refused", lambda: metrics_section(data)),
        ("Dose-response curves", lambda: figures_section(data, problems=problems)),
        ("Curves to review", lambda: review_section(data)),
        ("Consistency across data sets", lambda: consistency_section(data)),
        *((title, lambda content=content: content) for title, content in extra_sections),
        ("Glossary", glossary_section),
        ("Rejected input rows (ledger)", lambda: _ledger_section(data)),
        ("Plate quality", lambda: qc_section(data)),
        ("Seeding density: metric shifts", lambda: density_section(data)),
        ("Flags on metrics", lambda: flags_section(data)),
        ("Plates (flagged first)", lambda: plates_section(data.plates)),
        ("Plate maps", lambda: data.plate_maps or NO_PLATE_MAPS),
        ("Readout interference", lambda: interference_section(data)),
        ("Provenance", lambda: _provenance(meta)),
    ]
    body = "".join(
        f'<h2 id="{_anchor(title)}">{html.escape(title)}</h2>{_guarded(title.lower(), make, problems)}'
        for title, make in makers
    )
    warnings = [*data.summary.get("warnings", []), *problems]
    warned = "".join(f'<li class="warn">warning: {html.escape(plain(w, limit=500))}</li>' for w in warnings)
    notes = "".join(f"<li>{html.escape(plain(n, limit=500))}</li>" for n in data.summary.get("notes", []))
    datasets = data.summary["datasets"]
    page = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>doseatlas report</title>'
        f"<style>{CSS}</style></head><body><h1>doseatlas report</h1>"
        f'<p class="sub">data sets ({len(datasets):,}): {html.escape(names(datasets)) or "none"}</p>'
        f"{'<ul>' + warned + notes + '</ul>' if warned or notes else ''}{body}</body></html>"
    )
    return page, problems


def _import_plotting_early() -> None:
    """Start importing :mod:`doseatlas.plotting` (matplotlib: about half a second) in a background thread, so
    that it overlaps the report's aggregates (pandas and numpy work that often releases the GIL). Sound: Python
    imports are thread-safe (a module being imported by the thread is waited for by whoever imports it next,
    here :func:`_figure_png`); a failure in the thread is ignored here and raised again, as a figure problem, by
    the import of the figure code itself."""
    import sys
    import threading

    if "doseatlas.plotting" in sys.modules:
        return

    def load() -> None:
        with contextlib.suppress(Exception):  # the figure code imports it again and reports the problem
            import doseatlas.plotting  # noqa: F401

    threading.Thread(target=load, name="doseatlas-import-plotting", daemon=True).start()


def _anchor(title: str) -> str:
    """The id of a section heading (``Dose-response curves`` -> ``dose-response-curves``), for links."""
    return "-".join("".join(ch if ch.isalnum() else " " for ch in title.lower()).split())


def render_report(result: Any, *, meta: dict[str, Any], extra_sections: list[tuple[str, str]] = ()) -> str:
    """The report as an HTML string."""
    return build_report(result, meta=meta, extra_sections=extra_sections)[0]


def identities_section(result: Any) -> str:
    """Source names kept apart (ambiguous, several names in one data set) and near misses, first in the
    report: they are where sources may disagree about what was measured."""
    table = _frame(result, "identities")
    if not len(table) or S.IDENTITY_CONFLICT not in table:
        return "<p>No identities resolved.</p>"
    listed = table[table[S.IDENTITY_CONFLICT].notna()]
    merged = int((table[S.CANONICAL_NAME] != table[S.SOURCE_NAME]).sum())
    head = (f"<p>{len(table)} source names; {merged} renamed to a canonical name; {len(listed)} listed below "
            "(never merged on a guess; every rule in <code>identities.parquet</code>).</p>")  # fmt: skip
    if not len(listed):
        return head + '<p class="ok">No conflicts and no near misses.</p>'
    columns = [S.IDENTITY_CONFLICT, S.IDENTITY_KIND, S.DATASET, S.SOURCE_NAME, S.CANONICAL_NAME,
               S.IDENTITY_CONFLICT_DETAIL]  # fmt: skip
    shown = listed.sort_values(columns[:4], kind="stable")[columns].head(200)
    return head + _table(shown)


def write_report(result: Any, path: str | Path, *, meta: dict[str, Any]) -> list[str]:
    """Write ``report.html`` of a run's result or of a :class:`~doseatlas.report_data.ReportData` (see
    :func:`build_report`). A part of the report that cannot be made is replaced by a message; those
    problems are returned and added to ``result.summary["warnings"]`` (so ``summary.json``, written after
    the report, carries them)."""
    page, problems = build_report(result, meta=meta)
    Path(path).write_text(page, encoding="utf-8")
    result.summary.setdefault("warnings", []).extend(problems)
    return problems


#: where ``doseatlas review RUN_DIR`` serves by default (the report links each listed curve there)
REVIEW_URL = "http://127.0.0.1:8765"
#: the most flagged curves listed (each a short row with clipped names; the rest are in the review app)
MAX_FLAGGED = 5000


def review_section(result: Any) -> str:
    """Every flagged curve (metrics column ``flags``, where the run has one) and every curve a review decided,
    one row each with a link to it in the review app; names clipped, so each row is bounded. The rows are
    built column by column (each distinct text formatted once), at most :data:`MAX_FLAGGED` of them."""
    lead = (f'<p>Open any curve in the review app: <code>doseatlas review RUN_DIR</code>, then '
            f'<a href="{REVIEW_URL}/">{REVIEW_URL}/</a> (filters by data set, names, scale, status, reason, '
            "flags).</p>")  # fmt: skip
    if isinstance(result, ReportData):
        marked, total = result.marked, result.n_marked
    else:
        marked, total = D.marked_curves(_frame(result, "metrics"), most=MAX_FLAGGED)
    if marked is None:
        return lead + "<p>No flagged or reviewed curves (this run has no <code>flags</code> column).</p>"
    if not total:
        return lead + '<p class="ok">No flagged or reviewed curve.</p>'
    more = (f'<p class="sub">first {len(marked):,} of {total:,} curves listed; all are in the review '
            "app.</p>" if total > len(marked) else "")  # fmt: skip
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ("curve", *S.CURVE_KEY, "flags / review"))
    return (f"{lead}<p>{total:,} flagged or reviewed curves.</p>"
            f'<div class="scroll"><table><tr>{head}</tr>{_review_rows(marked)}</table></div>{more}')  # fmt: skip


def _escaped(values: pd.Series, *, limit: int) -> np.ndarray:
    """``html.escape(plain(str(v), limit))`` of every value, computed once per distinct value."""
    codes, uniques = pd.factorize(values.astype(object), use_na_sentinel=False)
    texts = np.array(
        [html.escape(plain("" if pd.isna(u) else str(u), limit=limit)) for u in uniques], dtype=object
    )
    return texts[codes] if len(codes) else np.array([], dtype=object)


def _review_rows(marked: pd.DataFrame) -> str:
    """The table rows of the marked curves, built with vectorized string concatenation."""
    from doseatlas.review.apply import review_ids

    ids = _escaped(review_ids(marked), limit=10_000)
    row = '<tr><td><a href="' + REVIEW_URL + "/curve/" + ids + '">' + ids + "</a></td>"
    for key in S.CURVE_KEY:
        row = row + "<td>" + _escaped(marked[key], limit=60) + "</td>"
    row = row + "<td>" + _escaped(marked[D.MARK], limit=120) + "</td></tr>"
    return "".join(row.tolist())


HEADLINE = (("ic50", S.RELATIVE_VIABILITY), ("gi50", S.PERCENT_GROWTH), ("gr50", S.GR))
WANTED = {"estimated": 2, "right_censored": 1, "left_censored": 1, "refused": 1}


def pick_curves(metrics: pd.DataFrame, *, per_dataset: int = 8, seed: int = 0) -> pd.DataFrame:
    """A sample of curves per data set covering estimated, censored and refused headline metrics; ``scale`` is
    the panel's scale (of the headline metric) and ``title`` a plain-text panel title. Empty when no curve
    qualifies. The sample depends on each row's curve key and ``seed`` only (not on the row order or on which
    other rows are present), so that the picks of the parts of a run can be merged
    (:func:`recut_candidates`)."""
    return final_picks(pick_candidates(metrics, seed=seed), per_dataset=per_dataset)


def pick_candidates(metrics: pd.DataFrame, *, seed: int = 0) -> pd.DataFrame:
    """The rows :func:`pick_curves` chooses from: headline metric rows with the panel's ``scale`` and a
    pseudo-random ``_rank`` (a hash of the curve key, metric and ``seed``), the first (lowest rank)
    :data:`WANTED` of each (data set, metric, status). The ranks are computed and cut on the key columns
    alone; only the few rows kept are taken whole (index: their place among the headline rows)."""
    refused_data = ["no_time_zero", "no_vehicle_control", "no_responses", S.RefusalReason.NOT_PROVIDED.value]
    headline = pd.DataFrame(HEADLINE, columns=[S.METRIC, S.SCALE])
    first = (metrics[S.METRIC].isin(headline[S.METRIC]) & ~metrics[S.REASON].isin(refused_data)).to_numpy(
        bool
    )
    wanted = np.flatnonzero(first & metrics[S.STATUS].isin(list(WANTED)).to_numpy(bool))
    keys = [*S.CURVE_KEY, S.METRIC]
    narrow = S.with_series(metrics[[c for c in (*keys, S.STATUS) if c in metrics]].iloc[wanted])
    rank = pd.util.hash_pandas_object(_hashable(narrow[keys]), index=False, hash_key=f"{seed:016d}"[-16:])
    kept = recut_candidates(narrow.assign(_rank=rank.to_numpy()).set_axis(wanted))
    rows = metrics.iloc[kept.index.to_numpy()].drop(columns=S.SCALE, errors="ignore")
    rows = S.with_series(rows).merge(headline, on=S.METRIC)
    rows = rows.assign(_rank=kept["_rank"].to_numpy())
    return rows.set_axis(np.cumsum(first)[kept.index.to_numpy()] - 1) if len(rows) else rows


def _hashable(keys: pd.DataFrame) -> pd.DataFrame:
    """``keys.astype(object)`` as :func:`pandas.util.hash_pandas_object` hashes it, made faster: a text column
    (pandas' ``str``) as a categorical, whose values are hashed once each, as the same strings as objects (each
    row's hash unchanged; numbers stay Python objects: they hash differently from a float column)."""
    return keys.astype(
        {c: "category" if isinstance(t, pd.StringDtype) else object for c, t in keys.dtypes.items()}
    )


def recut_candidates(candidates: pd.DataFrame) -> pd.DataFrame:
    """The first (lowest ``_rank``) :data:`WANTED` rows of each (data set, metric, status) of ``candidates``
    (e.g. the candidates of several parts of a run put together)."""
    rows = candidates.sort_values("_rank", kind="stable")
    codes, statuses = pd.factorize(rows[S.STATUS])  # each distinct status looked up once, not every row
    wanted = np.append([WANTED.get(s, np.nan) for s in statuses], np.nan)[codes]
    return rows[rows.groupby([S.DATASET, S.METRIC, S.STATUS]).cumcount().to_numpy() < wanted]


def final_picks(candidates: pd.DataFrame, *, per_dataset: int = 8) -> pd.DataFrame:
    """The first ``per_dataset`` candidates of each data set in headline and status order, titled."""
    if candidates.empty:
        return candidates.drop(columns="_rank").assign(title=pd.Series(dtype=str))
    order = {name: i for i, (name, _) in enumerate(HEADLINE)} | {s: i for i, s in enumerate(WANTED)}
    rows = candidates.sort_values("_rank", kind="stable")
    rows = rows.assign(_m=rows[S.METRIC].map(order), _s=rows[S.STATUS].map(order))
    rows = rows.sort_values([S.DATASET, "_m", "_s"], kind="stable")
    table = rows[rows.groupby(S.DATASET).cumcount() < per_dataset].drop(columns=["_rank", "_m", "_s"])
    table = table.reset_index(drop=True)
    table["title"] = [_title(r) for r in table.to_dict("records")]  # at most per_dataset per data set
    return table


def _title(pick: dict[str, Any]) -> str:
    """A panel title: names cut to 40 characters, control characters visible (drawn as plain text)."""
    duration = pick[S.DURATION_H]
    hours = f"{duration:g} h" if pd.notna(duration) else "duration unknown"
    who = " · ".join(plain(pick[c], limit=40) for c in (S.DATASET, S.CELL_LINE, S.PERTURBAGEN))
    return f"{who}\n{plain(pick[S.READOUT], limit=40)}, {hours} · {pick[S.METRIC]}: {pick[S.STATUS]}"


def _hours(durations: pd.Series) -> pd.Series:
    """Durations as text (``72 h``, ``unknown``), formatted once per distinct value."""
    labels = {h: f"{h:g} h" for h in durations.dropna().unique()}
    return durations.map(labels).fillna("unknown").astype(str)


def metrics_section(result: Any) -> str:
    """Metric status counts, refusals split by reason: over all data sets, then per data set, readout and
    duration for the first :data:`MAX_GROUPS` of them (from the metric counts, never the metric rows)."""
    m = _agg(result, "metric_counts", lambda r: D.metric_counts(_frame(r, "metrics")))
    if m.empty:
        return '<p class="sub">No metrics were computed.</p>'
    status = m[S.STATUS].astype(str)
    label = status.where(
        status != "refused", "refused: " + m[S.REASON].astype(object).fillna("?").astype(str)
    )
    m = m.assign(_outcome=label, _duration=_hours(m[S.DURATION_H]))
    policy = _agg(result, "policy_counts", lambda r: D.policy_counts(_frame(r, "curves")))
    parts = [_policy_note(policy)]
    groups = m.groupby([S.DATASET, S.READOUT, "_duration"], sort=True)
    if groups.ngroups > 1:
        parts.append(f"<h3>All {groups.ngroups:,} data sets, readouts and durations</h3>" + _counts(m))
    for i, ((dataset, readout, duration), block) in enumerate(groups):
        if i == MAX_GROUPS:
            parts.append(
                f'<p class="sub">{groups.ngroups - MAX_GROUPS:,} more (data set, readout, duration) groups not '
                "shown one by one; every metric is in metrics.parquet.</p>"
            )
            break
        title = f"{plain(dataset, limit=80)} · {plain(readout, limit=80)} · {duration}"
        parts.append(f"<h3>{html.escape(title)}</h3>" + _counts(block))
    return "".join(parts)


def _counts(block: pd.DataFrame) -> str:
    """Metric x outcome counts of ``block`` (estimated and censored first, then refusals by reason)."""
    counts = block.pivot_table(index=S.METRIC, columns="_outcome", values=D.ROWS, aggfunc="sum", fill_value=0)
    order = [c for c in ("estimated", "right_censored", "left_censored") if c in counts.columns]
    counts = counts[order + sorted(c for c in counts.columns if c not in order)]
    return _table(_unnamed(counts), rest="metrics.parquet")


POLICY_TEXT = {
    "refuse": "each curve fitted on its own; where the flat model is selected or the fit is poor, the fitted "
    "metrics are refused",
    "shrink": "a value for every curve: log10 EC50 and ln hill pooled across the cell lines of each drug "
    "(empirical Bayes), so a flat or noisy curve is pulled towards its drug's population",
}


def _policy_note(policy: pd.DataFrame) -> str:
    """Which fit policy made how many curves (a metric row says it in ``fit_policy``), from the curves per
    policy (:func:`doseatlas.report_data.policy_counts`)."""
    if policy.empty:
        return ""
    policy = policy.sort_values([D.ROWS, S.FIT_POLICY], ascending=[False, True], kind="stable")
    counts = policy.set_index(S.FIT_POLICY)[D.ROWS]
    text = dict(POLICY_TEXT)
    if "shrink" in counts:
        text["refuse"] = (
            "not pooled (nothing to fit, or too few fittable curves of the drug): " + text["refuse"]
        )
    items = "".join(
        f"<li><b>{html.escape(str(k))}</b> ({n} curves): {html.escape(text.get(str(k), ''))}</li>"
        for k, n in counts.items()
    )
    return f'<p class="sub">Fit policy (column <code>fit_policy</code>):</p><ul>{items}</ul>'


EDGE_FLAG = 0.85


def density_section(result: Any) -> str:
    """Where a pair was measured at several seeding densities: each metric's shift from the lowest to the
    highest density (:func:`doseatlas.metrics.density.density_shifts`)."""
    from doseatlas.metrics.density import SHIFT

    shifts = _agg(result, "density", lambda r: D.density_table(_frame(r, "metrics")))
    if shifts.empty:
        return '<p class="sub">No curve was measured at more than one seeding density.</p>'
    summary = (
        shifts.groupby([S.DATASET, S.METRIC, "shift_scale"], sort=True)[SHIFT]
        .agg(pairs="size", median_shift="median", max_abs_shift=lambda v: float(np.abs(v).max()))
        .reset_index()
    )
    note = (
        '<p class="sub">Seeding density is part of the curve key: each density is its own curve. shift = value at '
        "the highest density minus value at the lowest (log10 for concentrations: 0.3 is a two-fold change); "
        "estimated values on both sides only.</p>"
    )
    return _table(summary) + note


def flags_section(result: Any) -> str:
    """Metric rows carrying each flag code, per data set (docs/metrics.md defines the codes); from the rows per
    (data set, flags string), so each code is looked for once per distinct string."""
    from doseatlas.metrics.flags import FLAG_CODES, has_flag

    counts = _agg(result, "flag_counts", lambda r: D.flag_counts(_frame(r, "metrics")))
    if counts is None or counts.empty:
        return '<p class="sub">No flags.</p>'
    rows = counts[D.ROWS].to_numpy()
    hits = pd.DataFrame({code: has_flag(counts[S.FLAGS], code).to_numpy() * rows for code in FLAG_CODES})
    table = hits.groupby(counts[S.DATASET].to_numpy()).sum().rename_axis(S.DATASET).reset_index()
    return (
        _table(table)
        + '<p class="sub">Metric rows carrying each flag (codes defined in docs/metrics.md).</p>'
    )


def interference_section(data: ReportData) -> str:
    """Compounds read in cell-free medium (compound-only wells): each one's largest signal of its own relative to
    the vehicle, interfering ones first (interference.parquet holds every concentration)."""
    if not data.n_interference:
        return '<p class="sub">No compound-only wells: no interference measured.</p>'
    shown = len(data.interference)
    more = f"first {shown:,} of {data.n_interference:,} compounds; " if data.n_interference > shown else ""
    return _table(data.interference, rest="interference.parquet") + (
        f'<p class="sub">{more}the largest |interference| (compound alone over vehicle signal) of each compound '
        "and the concentration where it is; interfering compounds flag their metrics "
        "<code>readout_interference</code> (docs/plates.md).</p>"
    )


def qc_section(result: Any) -> str:
    """Per data set: vehicle CV, edge effect (edge over interior vehicle signal) and Z'-factor."""
    plates = _frame(result, "plates")
    if plates.empty or "edge_vehicle_ratio" not in plates:
        return '<p class="sub">No plate-level controls (pre-normalized input).</p>'
    table = plates.groupby(S.DATASET).agg(
        plates=(S.PLATE, "nunique"),
        median_vehicle_cv=("vehicle_cv", "median"),
        median_edge_vehicle_ratio=("edge_vehicle_ratio", "median"),
        plates_with_edge_loss=("edge_vehicle_ratio", lambda r: int((r < EDGE_FLAG).sum())),
        median_z_factor=("z_factor", "median"),
    )
    note = (
        f'<p class="sub">edge_vehicle_ratio: mean vehicle signal of edge wells over interior wells of the same plate; '
        f"plates below {EDGE_FLAG} are counted as showing edge loss. Responses are normalized per plate to all its "
        f"vehicle wells; position correction of this run: <code>{html.escape(_correction(result))}</code> "
        "(<code>--position-correction none|bscore|drop-edge</code>; without one an edge effect shows up as extra "
        "spread in the responses of such plates). The metrics of those plates carry the flag <code>edge_effect</code> "
        "(estimated from every well as read: plates.parquet <code>edge_effect</code>, docs/plates.md), which "
        "<code>doseatlas export --exclude-flag edge_effect</code> leaves out; the plate maps below show them.</p>"
    )
    return _table(table.reset_index()) + note


#: plates listed in the report (all are in plates.parquet)
MAX_PLATES = 60


def plates_section(plates: pd.DataFrame) -> str:
    """Per-plate QC: plates flagged for edge loss first (lowest edge_vehicle_ratio first), then the others in
    table order; at most :data:`MAX_PLATES`, saying how many are not shown."""
    if plates.empty:
        return '<p class="sub">none</p>'
    ratio = (
        plates["edge_vehicle_ratio"] if "edge_vehicle_ratio" in plates else pd.Series(np.nan, plates.index)
    )
    flagged = (ratio < EDGE_FLAG).to_numpy()
    order = np.lexsort((np.arange(len(plates)), np.where(flagged, ratio.to_numpy(float), np.inf), ~flagged))
    shown = plates.iloc[order[:MAX_PLATES]]
    n_flagged, rest = int(flagged.sum()), len(plates) - len(shown)
    note = (
        f'<p class="sub">{len(shown):,} of {len(plates):,} plates shown: the {n_flagged:,} flagged for edge loss '
        f"(edge_vehicle_ratio below {EDGE_FLAG}) first"
        + (f", {int(flagged[order[:MAX_PLATES]].sum()):,} of them shown" if n_flagged > len(shown) else "")
        + (f"; {rest:,} not shown" if rest else "")
        + "; all are in plates.parquet.</p>"
    )
    return note + _table(shown, rest="plates.parquet")


def _correction(result: Any) -> str:
    options = getattr(result, "options", None)
    return str(getattr(options, "position_correction", "none"))


def glossary_section() -> str:
    """The metric glossary, read from the registry."""
    from doseatlas.metrics import METRICS

    rows = pd.DataFrame(
        [
            {
                "metric": m.name,
                "label": m.label,
                "definition": m.definition,
                "scale": m.scale,
                "reference point": m.reference,
                "unit": m.unit,
            }
            for m in METRICS
        ]
    )
    return _table(rows)


def figures_section(result: Any, *, problems: list[str] | None = None) -> str:
    """Dose-response small multiples for a sample of curves of the first :data:`MAX_FIGURES` data sets,
    metrics drawn on each. A figure that cannot be drawn is replaced by a message (added to ``problems``)."""
    data = result if isinstance(result, ReportData) else report_data(result)
    datasets, sample = data.datasets, data.sample
    picks = final_picks(sample.candidates)
    if picks.empty:
        return '<p class="sub">No curves to draw.</p>'
    parts = []
    if len(datasets) > MAX_FIGURES:
        parts.append(
            f'<p class="sub">Figures of {MAX_FIGURES} of {len(datasets):,} data sets (the first by name); the '
            "curves and metrics of every data set are in curves.parquet and metrics.parquet.</p>"
        )
    for dataset, block in picks.groupby(S.DATASET, sort=True):
        name = html.escape(plain(dataset, limit=80))
        try:
            image = _figure_png(block, sample.points, sample.curves, sample.metrics)
        except Exception as exc:  # a figure that cannot be drawn must not cost the run
            problem = plain(f"report: figure of {plain(dataset, limit=80)} could not be drawn "
                            f"({type(exc).__name__}: {exc})", limit=500)  # fmt: skip
            if problems is not None:
                problems.append(problem)
            parts.append(f'<p class="warn">{html.escape(problem)}</p>')
            continue
        parts.append(
            f'<figure><img alt="dose-response curves of {name}" src="data:image/png;base64,{image}">'
            f"<figcaption>{name}: a sample of estimated, censored and refused curves. Solid vertical line: "
            "threshold concentration (IC50, GI50, GR50...); dashed: fitted midpoint (EC50, GEC50); arrows: "
            "censored at the tested range; dotted horizontal lines: thresholds.</figcaption></figure>"
        )
    return "".join(parts)


def _figure_png(
    picks: pd.DataFrame, responses: pd.DataFrame, curves: pd.DataFrame, metrics: pd.DataFrame
) -> str:
    """The small multiples of ``picks`` as base64 PNG."""
    import base64

    from doseatlas import plotting

    fig = plotting.curve_grid(picks, responses, curves, metrics)
    return base64.b64encode(plotting.png_bytes(fig)).decode()


#: metrics drawn in the consistency scatter plots (those both data sets have), and the bounds on their number
SCATTER_METRICS = ("ic50", "auc_common", "gr50", "gi50", "auc")
MAX_SCATTER_PAIRS, MAX_SCATTER_PANELS = 6, 4


def consistency_section(result: Any) -> str:
    """Per pair of data sets: shared pairs, agreement per metric, scatter plots; says when nothing overlaps."""
    import base64

    from doseatlas import plotting

    table = _frame(result, "consistency")
    if table.empty:
        return '<p class="sub">One data set in this run: nothing to compare across sources.</p>'
    paired = _agg(result, "paired", lambda r: D.paired_points(_frame(r, "metrics"), table))
    pairs = table.drop_duplicates([S.DATASET_A, S.DATASET_B])
    none = pairs[pairs[S.N_SHARED_PAIRS].eq(0)]
    notes = "".join(
        f"<li>{html.escape(plain(a, limit=80))} and {html.escape(plain(b, limit=80))} share no cell line x "
        "perturbagen: nothing to compare.</li>"
        for a, b in zip(none[S.DATASET_A], none[S.DATASET_B], strict=True)
    )
    parts = [f'<ul class="warn">{notes}</ul>' if notes else "", _table(table)]
    shown = pairs[pairs[S.N_SHARED_PAIRS].gt(0)].head(MAX_SCATTER_PAIRS)
    for a, b in zip(shown[S.DATASET_A].astype(str), shown[S.DATASET_B].astype(str), strict=True):
        rows = table[(table[S.DATASET_A] == a) & (table[S.DATASET_B] == b) & table[S.N_VALUES].gt(0)]
        names = [m for m in SCATTER_METRICS if m in set(rows[S.METRIC])][:MAX_SCATTER_PANELS]
        if not names:
            continue
        points = paired[paired[S.DATASET_A].eq(a).to_numpy() & paired[S.DATASET_B].eq(b).to_numpy()]
        fig = plotting.consistency_scatter(points, dataset_a=a, dataset_b=b, metrics=names)
        data = base64.b64encode(plotting.png_bytes(fig)).decode()
        label = html.escape(f"{plain(a, limit=80)} vs {plain(b, limit=80)}")
        parts.append(
            f'<figure><img alt="{label}" src="data:image/png;base64,{data}"><figcaption>{label}: pairs estimated '
            "in both (concentrations in log10 M; dotted: identity).</figcaption></figure>"
        )
    hidden = len(pairs[pairs[S.N_SHARED_PAIRS].gt(0)]) - len(shown)
    if hidden > 0:
        parts.append(f'<p class="sub">{hidden} more pairs of data sets: see consistency.parquet.</p>')
    return "".join(parts)
