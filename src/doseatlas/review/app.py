"""The review web app: server-rendered pages (Jinja2, autoescaped) and a JSON API on Starlette.

Routes (no route takes a file path; the run directory and database are fixed when the app is made):

* ``GET /`` curve list (query parameters filter: dataset, cell_line, perturbagen, perturbation_type, scale,
  status, reason, flag, review, q = free text); ``GET /curve/{curve_id}`` curve page;
  ``GET /curve/{curve_id}/plot.png`` its figure; ``POST /curve/{curve_id}/review`` the page's form.
* ``GET /api/curves``, ``GET /api/curves/{curve_id}``, ``POST /api/curves/{curve_id}/review`` (JSON).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from doseatlas import schemas as S
from doseatlas.errors import ReviewError
from doseatlas.io import OUTPUT_MARKER, read_metadata
from doseatlas.review.apply import REVIEW_ID, curve_key, review_ids
from doseatlas.review.store import DECISIONS, Decision, ReviewStore

FLAGS = "flags"
#: filters of the curve list: query parameter -> column of the curve index
FILTERS = (S.DATASET, S.CELL_LINE, S.PERTURBAGEN, S.PERTURBATION_TYPE, S.SCALE, S.STATUS, S.REASON, "flag")
PAGE_SIZE = 200
_SCALES = (S.RELATIVE_VIABILITY, S.PERCENT_GROWTH, S.GR)


@dataclass(frozen=True)
class Run:
    """The tables of a run directory the app shows, with the review identity on every row."""

    directory: Path
    metrics: pd.DataFrame
    curves: pd.DataFrame
    responses: pd.DataFrame
    plates: pd.DataFrame
    index: pd.DataFrame  # one row per curve (review identity)
    inputs: tuple[dict[str, str], ...]


def load_run(directory: str | Path) -> Run:
    """Read the run directory written by ``doseatlas run`` (ReviewError when missing or not a doseatlas run)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ReviewError(f"{directory}: no such run directory")
    if not (directory / OUTPUT_MARKER).is_file() or not (directory / "metrics.parquet").is_file():
        raise ReviewError(
            f"{directory}: not a doseatlas run directory (no {OUTPUT_MARKER} or metrics.parquet)"
        )
    tables = {}
    for name in ("metrics", "curves", "responses", "plates"):
        path = directory / f"{name}.parquet"
        tables[name] = S.with_series(pd.read_parquet(path)) if path.is_file() else pd.DataFrame()
        if set(S.CURVE_KEY) <= set(tables[name].columns):
            tables[name][REVIEW_ID] = review_ids(tables[name])
    if S.TIME_H in tables["responses"]:
        responses = tables["responses"].rename(columns={S.TIME_H: S.DURATION_H})
        tables["responses"] = responses.assign(**{REVIEW_ID: review_ids(responses)})
    inputs = tuple(read_metadata(directory / "metrics.parquet").get("inputs", []))
    return Run(directory=directory, index=_curve_index(tables["metrics"]), inputs=inputs, **tables)


def _joined(values: pd.Series) -> str:
    """The distinct values, '|'-joined (a ';'-joined flags value contributes each of its codes)."""
    return "|".join(sorted({p for v in values.dropna() for p in str(v).split(";") if p != ""}))


def _curve_index(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per curve: its key, and the scales, statuses, reasons (and flags) of its metrics, '|'-joined."""
    key = [*S.CURVE_KEY, REVIEW_ID]
    listed = [c for c in (S.SCALE, S.STATUS, S.REASON, FLAGS) if c in metrics]
    grouped = metrics.groupby(REVIEW_ID, sort=False)
    index = grouped[list(S.CURVE_KEY)].first()
    for column in listed:
        index[column] = grouped[column].agg(_joined)
    index["n_metrics"] = grouped.size()
    index = index.reset_index()[[*key, *listed, "n_metrics"]]
    return index.sort_values(list(S.CURVE_KEY), kind="stable", ignore_index=True)


def filter_curves(index: pd.DataFrame, params: dict[str, str], decisions: dict[str, dict]) -> pd.DataFrame:
    """The rows of the curve index matching the filters (exact values; ``q`` searches the names)."""
    keep = pd.Series(True, index=index.index)
    for name in FILTERS:
        value = params.get(name)
        column = FLAGS if name == "flag" else name
        if not value or column not in index:
            continue
        if column in (S.SCALE, S.STATUS, S.REASON, FLAGS):
            keep &= index[column].str.split("|").apply(lambda found, v=value: v in found)
        else:
            keep &= index[column].astype(str).eq(value)
    if params.get("q"):
        text = index[[S.DATASET, S.CELL_LINE, S.PERTURBAGEN, S.READOUT]].astype(str).agg(" ".join, axis=1)
        keep &= text.str.contains(params["q"], case=False, regex=False)
    review = params.get("review")
    if review:
        state = index[REVIEW_ID].map(lambda k: decisions.get(k, {}).get("decision", "none"))
        keep &= state.eq(review)
    return index[keep]


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-safe records (NaN and infinities as null)."""
    out = json.loads(table.to_json(orient="records", double_precision=15))
    return out if isinstance(out, list) else []


def curve_detail(run: Run, curve_id: str) -> dict[str, Any] | None:
    """Everything the curve page and ``GET /api/curves/{curve_id}`` show of one curve."""
    row = run.index[run.index[REVIEW_ID] == curve_id]
    if row.empty:
        return None
    metrics = run.metrics[run.metrics[REVIEW_ID] == curve_id]
    curves = run.curves[run.curves[REVIEW_ID] == curve_id] if REVIEW_ID in run.curves else run.curves.iloc[:0]
    points = run.responses[run.responses[REVIEW_ID] == curve_id] if len(run.responses) else run.responses
    point_cols = [c for c in (S.PLATE, S.WELL, S.REPLICATE, S.CONCENTRATION, *_SCALES) if c in points]
    plates = run.plates
    if len(plates) and len(points):
        plates = plates[plates[S.DATASET].eq(row[S.DATASET].iloc[0]) & plates[S.PLATE].isin(points[S.PLATE])]
    else:
        plates = plates.iloc[:0]
    return {
        "curve_id": curve_id,
        "key": curve_key(row.iloc[0].to_dict()),
        "metrics": _records(metrics.drop(columns=[REVIEW_ID])),
        "fits": _records(curves.drop(columns=[REVIEW_ID], errors="ignore").filter(regex="^(?!cov_)")),
        "points": _records(points[point_cols]),
        "plates": _records(plates),
    }


def _env() -> Environment:
    return Environment(
        loader=PackageLoader("doseatlas.review", "templates"), autoescape=select_autoescape(default=True)
    )


def plot_png(run: Run, curve_id: str) -> bytes:
    """The curve's figure: replicate points, the fitted curve and metric marks, one panel per response scale."""
    from doseatlas.plotting import curve_grid, png_bytes

    metrics = run.metrics[run.metrics[REVIEW_ID] == curve_id]
    picks = []
    for scale in _SCALES:
        fitted = (
            metrics[metrics[S.SCALE].eq(scale) & metrics[S.CURVE_ID].notna()] if S.CURVE_ID in metrics else []
        )
        if len(fitted) and scale in run.responses:
            pick = fitted.iloc[0].copy()
            pick["title"] = scale
            picks.append(pick)
    responses = run.responses.rename(columns={S.DURATION_H: S.TIME_H})
    fig = curve_grid(pd.DataFrame(picks), responses, run.curves, metrics, ncols=max(len(picks), 1))
    for ax, pick in zip(fig.axes, picks, strict=False):
        _draw_intervals(ax, metrics[metrics[S.SCALE].eq(pick[S.SCALE])])
    return png_bytes(fig)


def _draw_intervals(ax, metrics: pd.DataFrame) -> None:
    """Each concentration metric's 95% interval (a bar) or censoring bound (a bar to the tested edge), drawn
    below the curve: one row per metric, labelled."""
    molar = metrics[metrics[S.UNIT].eq("M") & metrics[S.STATUS].ne(S.MetricStatus.REFUSED.value)]
    lo, hi = ax.get_xlim()
    for i, (_, m) in enumerate(molar.iterrows()):
        y = -0.05 - 0.06 * i
        status = m[S.STATUS]
        with np.errstate(divide="ignore", invalid="ignore"):
            if status == S.MetricStatus.RIGHT_CENSORED.value:
                left, right = np.log10(m[S.LOWER]), hi
            elif status == S.MetricStatus.LEFT_CENSORED.value:
                left, right = lo, np.log10(m[S.UPPER])
            else:
                left, right = np.log10(m[S.LOWER]), np.log10(m[S.UPPER])
        if not (np.isfinite(left) and np.isfinite(right)):
            continue
        ax.plot([left, right], [y, y], lw=2.5, color="#2b6cb0" if status == "estimated" else "#b7791f")
        ax.text(right, y, f" {m[S.METRIC]}", fontsize=6, va="center", parse_math=False, clip_on=True)
    if len(molar):
        ax.set_ylim(min(ax.get_ylim()[0], -0.1 - 0.06 * len(molar)), ax.get_ylim()[1])


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def make_app(run_dir: str | Path, *, db: str | Path) -> Starlette:
    """The review app of the run in ``run_dir`` with decisions in the SQLite database ``db``."""
    run, store, env = load_run(run_dir), ReviewStore(db), _env()
    env.globals.update(finite=_finite, filters=FILTERS, decisions=DECISIONS)

    def page(name: str, **context: Any) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render(**context))

    def listing(request: Request) -> tuple[pd.DataFrame, dict[str, str], dict]:
        params = {k: v for k, v in request.query_params.items() if v}
        decisions = store.decisions()
        return filter_curves(run.index, params, decisions), params, decisions

    async def index(request: Request) -> Response:
        shown, params, decisions = listing(request)
        options = {f: sorted({p for v in run.index.get(FLAGS if f == "flag" else f, pd.Series(dtype=str))
                              .astype(str) for p in v.split("|") if p}) for f in FILTERS}  # fmt: skip
        return page("list.html", rows=_records(shown.head(PAGE_SIZE)), total=len(shown), params=params,
                    options=options, decisions=decisions, run_dir=str(run.directory))  # fmt: skip

    async def curve(request: Request) -> Response:
        curve_id = request.path_params["curve_id"]
        detail = curve_detail(run, curve_id)
        if detail is None:
            return page("missing.html", curve_id=curve_id)
        ids = run.index[REVIEW_ID].tolist()
        at = ids.index(curve_id)
        return page("curve.html", d=detail, decision=store.decisions().get(curve_id), audit=store.audit(curve_id),
                    previous=ids[at - 1] if at else None, next=ids[at + 1] if at + 1 < len(ids) else None)  # fmt: skip

    async def plot(request: Request) -> Response:
        curve_id = request.path_params["curve_id"]
        if curve_detail(run, curve_id) is None:
            return Response("no such curve", status_code=404)
        return Response(plot_png(run, curve_id), media_type="image/png")

    def decide(curve_id: str, body: dict[str, Any]) -> dict[str, Any]:
        detail = curve_detail(run, curve_id)
        if detail is None:
            raise KeyError(curve_id)
        decision = Decision(curve_id=curve_id, curve_key=detail["key"], decision=str(body.get("decision", "")),
                            reviewer=str(body.get("reviewer") or "anonymous"), reason=body.get("reason") or None,
                            note=body.get("note") or None, run_inputs=run.inputs)  # fmt: skip
        change = store.record(decision)
        return {"curve_id": curve_id, "change": change, "decision": store.decisions()[curve_id]}

    async def form_review(request: Request) -> Response:
        form = {k: v[-1] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
        curve_id = request.path_params["curve_id"]
        try:
            decide(curve_id, form)
        except KeyError:
            return Response("no such curve", status_code=404)
        except ReviewError as exc:
            return page("missing.html", curve_id=curve_id, error=str(exc))
        return RedirectResponse(f"/curve/{curve_id}", status_code=303)

    async def api_curves(request: Request) -> Response:
        shown, _params, decisions = listing(request)
        rows = _records(shown)
        for r in rows:
            r["review"] = decisions.get(r[REVIEW_ID])
            r["curve_id"] = r.pop(REVIEW_ID)
        return JSONResponse({"total": len(rows), "curves": rows})

    async def api_curve(request: Request) -> Response:
        curve_id = request.path_params["curve_id"]
        detail = curve_detail(run, curve_id)
        if detail is None:
            return JSONResponse({"error": "no such curve"}, status_code=404)
        return JSONResponse(
            {**detail, "review": store.decisions().get(curve_id), "audit": store.audit(curve_id)}
        )

    async def api_review(request: Request) -> Response:
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError
        except ValueError:
            return JSONResponse({"error": "the body must be a JSON object"}, status_code=400)
        try:
            return JSONResponse(decide(request.path_params["curve_id"], body))
        except KeyError:
            return JSONResponse({"error": "no such curve"}, status_code=404)
        except ReviewError as exc:
            return JSONResponse({"error": str(exc)}, status_code=422)

    routes = [
        Route("/", index),
        Route("/curve/{curve_id}", curve),
        Route("/curve/{curve_id}/plot.png", plot),
        Route("/curve/{curve_id}/review", form_review, methods=["POST"]),
        Route("/api/curves", api_curves),
        Route("/api/curves/{curve_id}", api_curve),
        Route("/api/curves/{curve_id}/review", api_review, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.run, app.state.store = run, store
    return app


__all__ = ["Run", "curve_detail", "filter_curves", "load_run", "make_app", "plot_png"]
