"""The HTML report of a run: what was computed, what was refused and why."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pandas as pd

from doseatlas import schemas as S

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


def _table(frame: pd.DataFrame, *, caption: str | None = None) -> str:
    """A small HTML table (numbers right-aligned, everything escaped)."""
    if frame.empty:
        return '<p class="sub">none</p>'
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for record in frame.itertuples(index=False):
        cells = []
        for value in record:
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            text = f"{value:.4g}" if isinstance(value, float) else str(value)
            cells.append(
                f'<td class="num">{html.escape(text)}</td>' if numeric else f"<td>{html.escape(text)}</td>"
            )
        rows.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return (
        f'<div class="scroll"><table>{cap}<thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
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


def _responses_section(responses: pd.DataFrame) -> str:
    """Per data set: how many treated wells got each response scale, and why not."""
    parts = []
    for scale in S.RESPONSE_SCALES:
        why = S.reason_column(scale)
        counts = (
            responses.assign(_r=responses[why].fillna("computed"))
            .groupby([S.DATASET, "_r"])
            .size()
            .unstack(fill_value=0)
            .reset_index()
        )
        parts.append(f"<h3><code>{scale}</code></h3>" + _table(counts))
    return "".join(parts)


def _ledger_section(ledger: pd.DataFrame) -> str:
    if ledger.empty:
        return '<p class="ok">No input row was rejected.</p>'
    counts = ledger.groupby([S.LEDGER_REASON, S.LEDGER_COLUMN]).size().rename("rows").reset_index()
    sample = ledger.head(20)
    return _table(counts) + "<h3>First rejected rows</h3>" + _table(sample)


def _provenance(meta: dict[str, Any]) -> str:
    inputs = pd.DataFrame(meta.get("inputs", []))
    return (
        f'<p class="sub">doseatlas {html.escape(str(meta.get("package_version")))}, schema '
        f"{html.escape(str(meta.get('schema_version')))}, created {html.escape(str(meta.get('created_utc')))}"
        f"<br>command: <code>{html.escape(str(meta.get('command')))}</code></p>" + _table(inputs)
    )


def render_report(result: Any, *, meta: dict[str, Any], extra_sections: list[tuple[str, str]] = ()) -> str:
    """The report as an HTML string."""
    sections = [
        ("Identities: conflicts and near misses", identities_section(result)),
        ("Summary", _cards(result.summary)),
        ("Responses computed and refused", _responses_section(result.responses)),
        ("Metrics computed and refused", metrics_section(result)),
        ("Dose-response curves", figures_section(result)),
        ("Consistency across data sets", consistency_section(result)),
        *extra_sections,
        ("Glossary", glossary_section()),
        ("Rejected input rows (ledger)", _ledger_section(result.ledger)),
        ("Plate quality", qc_section(result)),
        ("Plates (first 60)", _table(result.plates.head(60))),
        ("Provenance", _provenance(meta)),
    ]
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in result.summary.get("notes", []))
    body = "".join(f"<h2>{html.escape(title)}</h2>{content}" for title, content in sections)
    datasets = ", ".join(result.summary["datasets"])
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>doseatlas report</title>'
        f"<style>{CSS}</style></head><body><h1>doseatlas report</h1>"
        f'<p class="sub">data sets: {html.escape(datasets)}</p>'
        f"{'<ul>' + notes + '</ul>' if notes else ''}{body}</body></html>"
    )


def identities_section(result: Any) -> str:
    """Source names kept apart (ambiguous, several names in one data set) and near misses, first in the
    report: they are where sources may disagree about what was measured."""
    table = getattr(result, "identities", None)
    if table is None or not len(table) or S.IDENTITY_CONFLICT not in table:
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


def write_report(result: Any, path: str | Path, *, meta: dict[str, Any]) -> None:
    """Write ``report.html``."""
    Path(path).write_text(render_report(result, meta=meta), encoding="utf-8")


HEADLINE = (("ic50", S.RELATIVE_VIABILITY), ("gi50", S.PERCENT_GROWTH), ("gr50", S.GR))
WANTED = {"estimated": 2, "right_censored": 1, "left_censored": 1, "refused": 1}


def pick_curves(metrics: pd.DataFrame, *, per_dataset: int = 8, seed: int = 0) -> pd.DataFrame:
    """A sample of curves per data set covering estimated, censored and refused headline metrics."""
    picks = []
    for _, block in metrics.groupby(S.DATASET, sort=True):
        chosen = []
        for name, scale in HEADLINE:
            rows = block[
                (block[S.METRIC] == name) & ~block[S.REASON].isin([S.RefusalReason.NOT_PROVIDED.value])
            ]
            refused_data = rows[S.REASON].isin(["no_time_zero", "no_vehicle_control", "no_responses"])
            rows = rows[~refused_data]
            for status, count in WANTED.items():
                part = rows[rows[S.STATUS] == status]
                chosen.append(
                    part.sample(n=min(count, len(part)), random_state=seed).assign(**{S.SCALE: scale})
                )
        block_picks = pd.concat(chosen) if chosen else pd.DataFrame()
        picks.append(block_picks.head(per_dataset))
    if not picks:
        return pd.DataFrame()
    table = pd.concat(picks, ignore_index=True)
    table["title"] = (
        table[S.DATASET]
        + " · "
        + table[S.CELL_LINE]
        + " · "
        + table[S.PERTURBAGEN]
        + "\n"
        + table[S.READOUT]
        + ", "
        + table[S.DURATION_H].map(lambda h: f"{h:g} h" if pd.notna(h) else "duration unknown")
        + " · "
        + table[S.METRIC]
        + ": "
        + table[S.STATUS]
    )
    return table


def metrics_section(result: Any) -> str:
    """Per data set, readout and duration: metric status counts, refusals split by reason."""
    m = result.metrics
    if m.empty:
        return '<p class="sub">No metrics were computed.</p>'
    label = m[S.STATUS].where(m[S.STATUS] != "refused", "refused: " + m[S.REASON].fillna("?").astype(str))
    m = m.assign(
        _outcome=label, _duration=m[S.DURATION_H].map(lambda h: f"{h:g} h" if pd.notna(h) else "unknown")
    )
    parts = [_policy_note(result.curves)]
    for (dataset, readout, duration), block in m.groupby([S.DATASET, S.READOUT, "_duration"], sort=True):
        counts = block.groupby([S.METRIC, "_outcome"]).size().unstack(fill_value=0)
        order = [c for c in ("estimated", "right_censored", "left_censored") if c in counts.columns]
        counts = counts[order + sorted(c for c in counts.columns if c not in order)].reset_index()
        title = f"{dataset} · {readout} · {duration}"
        parts.append(f"<h3>{html.escape(title)}</h3>" + _table(counts))
    return "".join(parts)


POLICY_TEXT = {
    "refuse": "each curve fitted on its own; where the flat model is selected or the fit is poor, the fitted "
    "metrics are refused",
    "shrink": "a value for every curve: log10 EC50 and ln hill pooled across the cell lines of each drug "
    "(empirical Bayes), so a flat or noisy curve is pulled towards its drug's population",
}


def _policy_note(curves: pd.DataFrame) -> str:
    """Which fit policy made how many curves (a metric row says it in ``fit_policy``)."""
    if curves.empty or S.FIT_POLICY not in curves:
        return ""
    counts = curves[S.FIT_POLICY].value_counts()
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


def qc_section(result: Any) -> str:
    """Per data set: vehicle CV, edge effect (edge over interior vehicle signal) and Z'-factor."""
    plates = result.plates
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
        "vehicle wells, so an edge effect shows up as extra spread: consider excluding edge wells for such data.</p>"
    )
    return _table(table.reset_index()) + note


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


def figures_section(result: Any) -> str:
    """Dose-response small multiples for a sample of curves, metrics drawn on each."""
    import base64

    from doseatlas import plotting

    picks = pick_curves(result.metrics)
    if picks.empty:
        return '<p class="sub">No curves to draw.</p>'
    parts = []
    for dataset, block in picks.groupby(S.DATASET, sort=True):
        fig = plotting.curve_grid(block, result.responses, result.curves, result.metrics)
        data = base64.b64encode(plotting.png_bytes(fig)).decode()
        parts.append(
            f'<figure><img alt="dose-response curves of {html.escape(str(dataset))}" '
            f'src="data:image/png;base64,{data}"><figcaption>{html.escape(str(dataset))}: a sample of '
            "estimated, censored and refused curves. Solid vertical line: threshold concentration (IC50, GI50, "
            "GR50...); dashed: fitted midpoint (EC50, GEC50); arrows: censored at the tested range; dotted "
            "horizontal lines: thresholds.</figcaption></figure>"
        )
    return "".join(parts)


#: metrics drawn in the consistency scatter plots (those both data sets have), and the bounds on their number
SCATTER_METRICS = ("ic50", "auc_common", "gr50", "gi50", "auc")
MAX_SCATTER_PAIRS, MAX_SCATTER_PANELS = 6, 4


def consistency_section(result: Any) -> str:
    """Per pair of data sets: shared pairs, agreement per metric, scatter plots; says when nothing overlaps."""
    import base64

    from doseatlas import plotting
    from doseatlas.harmonize.consistency import paired_values, per_source

    table = getattr(result, "consistency", None)
    if table is None or table.empty:
        return '<p class="sub">One data set in this run: nothing to compare across sources.</p>'
    pairs = table.drop_duplicates([S.DATASET_A, S.DATASET_B])
    none = pairs[pairs[S.N_SHARED_PAIRS].eq(0)]
    notes = "".join(
        f"<li>{html.escape(str(r[S.DATASET_A]))} and {html.escape(str(r[S.DATASET_B]))} share no cell line x "
        "perturbagen: nothing to compare.</li>"
        for _, r in none.iterrows()
    )
    parts = [f'<ul class="warn">{notes}</ul>' if notes else "", _table(table)]
    agg = per_source(result.metrics.assign(**{S.DATASET: result.metrics[S.DATASET].astype(str)}))
    shown = pairs[pairs[S.N_SHARED_PAIRS].gt(0)].head(MAX_SCATTER_PAIRS)
    for _, r in shown.iterrows():
        a, b = str(r[S.DATASET_A]), str(r[S.DATASET_B])
        rows = table[(table[S.DATASET_A] == a) & (table[S.DATASET_B] == b) & table[S.N_VALUES].gt(0)]
        names = [m for m in SCATTER_METRICS if m in set(rows[S.METRIC])][:MAX_SCATTER_PANELS]
        if not names:
            continue
        fig = plotting.consistency_scatter(paired_values(agg, a, b), dataset_a=a, dataset_b=b, metrics=names)
        data = base64.b64encode(plotting.png_bytes(fig)).decode()
        label = html.escape(f"{a} vs {b}")
        parts.append(
            f'<figure><img alt="{label}" src="data:image/png;base64,{data}"><figcaption>{label}: pairs estimated '
            "in both (concentrations in log10 M; dotted: identity).</figcaption></figure>"
        )
    hidden = len(pairs[pairs[S.N_SHARED_PAIRS].gt(0)]) - len(shown)
    if hidden > 0:
        parts.append(f'<p class="sub">{hidden} more pairs of data sets: see consistency.parquet.</p>')
    return "".join(parts)
