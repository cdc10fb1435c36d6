"""Dose-response figures: small multiples with the metrics drawn on each curve.

Every text is drawn as plain text (``parse_math=False``): a name like ``$\\frac{1}{$statinib`` is shown as
written, never read as mathtext.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator

from doseatlas import schemas as S
from doseatlas._text import plain
from doseatlas.metrics.compute import sigmoid
from doseatlas.metrics.registry import REGISTRY

#: metrics drawn on a panel of each scale (concentration metrics as vertical lines)
PANEL_METRICS: dict[str, tuple[str, ...]] = {
    S.RELATIVE_VIABILITY: ("ic50", "ec50", "einf", "auc"),
    S.PERCENT_GROWTH: ("gi50", "tgi", "lc50"),
    S.GR: ("gr50", "gec50", "grinf", "gr_aoc"),
}
Y_SCALE = {S.RELATIVE_VIABILITY: 1.0, S.PERCENT_GROWTH: 1.0, S.GR: 1.0}  # responses -> y axis
Y_LABEL = {
    S.RELATIVE_VIABILITY: "relative viability",
    S.PERCENT_GROWTH: "percent growth (%)",
    S.GR: "GR value",
}
COLORS = {
    "estimated": "#2b6cb0",
    "right_censored": "#b7791f",
    "left_censored": "#b7791f",
    "refused": "#c53030",
}


def _fmt_metric(row: pd.Series) -> str:
    """One line per metric: value with unit, or the censoring bound, or the refusal reason."""
    name, status = row[S.METRIC], row[S.STATUS]
    molar = REGISTRY[name].unit == "M"
    if status == "estimated":
        return f"{name} = {row[S.VALUE] * 1e6:.3g} µM" if molar else f"{name} = {row[S.VALUE]:.3g}"
    if status == "right_censored":
        return (
            f"{name} > {row[S.LOWER] * 1e6:.3g} µM (not reached)" if molar else f"{name} > {row[S.LOWER]:.3g}"
        )
    if status == "left_censored":
        return (
            f"{name} < {row[S.UPPER] * 1e6:.3g} µM (already past)"
            if molar
            else f"{name} < {row[S.UPPER]:.3g}"
        )
    return f"{name}: refused ({plain(row[S.REASON], limit=60)})"


def gr_to_pg(gr: np.ndarray, r0: float) -> np.ndarray:
    """Percent growth / 100 from GR values, given ``r0 = Tz / C`` (the inverse of the metric layer's mapping)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        rv = 2.0 ** ((np.log2(gr + 1.0) - 1.0) * np.log2(1.0 / r0))
    return np.where(rv >= r0, (rv - r0) / (1.0 - r0), (rv - r0) / r0)


#: the response unit of a panel's y axis relative to the fraction the metric thresholds are declared in
#: (percent growth is drawn in percent, as responses.parquet and curves.parquet hold it)
Y_UNIT = {S.RELATIVE_VIABILITY: 1.0, S.PERCENT_GROWTH: 100.0, S.GR: 1.0}
#: room left of the lowest and right of the highest tested dose (log10 units): censoring arrows are drawn in it
X_MARGIN = 0.6
ARROW = 0.45


def _draw_curve(ax, curve: pd.Series, grid: np.ndarray, *, r0: float | None, unit: float) -> None:
    """The fitted curve (GR curves drawn on the percent-growth scale when ``r0`` is given)."""
    flat = curve["selected"] == "flat"
    values = (
        np.full_like(grid, curve["flat_value"])
        if flat
        else sigmoid(grid, curve["top"], curve["bottom"], curve["log10_ec50"], curve["hill"])
    )
    if r0 is not None:
        values = gr_to_pg(values, r0) * unit
    ax.plot(
        grid, values, lw=1.5 if flat else 1.8, ls="--" if flat else "-", color="#718096" if flat else None
    )


def _draw_metric(ax, row: pd.Series, *, unit: float) -> float | None:
    """The line of an estimated concentration metric, or the arrow of a censored one (pointing from the bound
    to where the value lies, inside the axes); returns the arrow's height (None when none is drawn)."""
    m = REGISTRY[row[S.METRIC]]
    if row[S.STATUS] == "estimated":
        ls = "--" if m.kind == "midpoint" else "-"
        ax.axvline(np.log10(row[S.VALUE]), color=COLORS["estimated"], lw=1, ls=ls)
        return None
    if row[S.STATUS] not in ("right_censored", "left_censored"):
        return None
    right = row[S.STATUS] == "right_censored"
    bound = np.log10(row[S.LOWER] if right else row[S.UPPER])
    y = (m.threshold if m.threshold is not None else 0.5) * unit
    ax.annotate(
        "",
        xy=(bound + (ARROW if right else -ARROW), y),
        xytext=(bound, y),
        arrowprops={"arrowstyle": "-|>", "color": COLORS[row[S.STATUS]], "lw": 1.4, "mutation_scale": 9},
        annotation_clip=False,
    )
    return y


def _draw_plateau_bound(ax, row: pd.Series, *, x: float, unit: float) -> list[float]:
    """The arrow of a censored plateau (einf beyond the tested range): vertical, right of the highest dose, from
    the bound towards where the plateau lies; returns the heights it spans."""
    right = row[S.STATUS] == "right_censored"
    bound = (row[S.LOWER] if right else row[S.UPPER]) * unit
    tip = bound + (0.25 if right else -0.25) * unit
    ax.annotate(
        "",
        xy=(x, tip),
        xytext=(x, bound),
        arrowprops={"arrowstyle": "-|>", "color": COLORS[row[S.STATUS]], "lw": 1.4, "mutation_scale": 9},
        annotation_clip=False,
    )
    return [bound, tip]


def _draw_panel(ax, points: pd.DataFrame, curve: pd.Series | None, metrics: pd.DataFrame, scale: str) -> None:
    unit = Y_UNIT[scale]
    x = np.log10(points[S.CONCENTRATION].to_numpy(float))
    y = points[scale].to_numpy(float) * Y_SCALE[scale]
    ax.scatter(x, y, s=12, color="#4a5568", alpha=0.8, zorder=3)
    lo, hi = (np.nanmin(x), np.nanmax(x)) if len(x) else (-9.0, -4.0)
    if (
        curve is not None
        and str(curve.get("status")) not in ("nan", "None")
        and np.isfinite(curve["flat_value"])
    ):
        r0 = None
        if scale == S.PERCENT_GROWTH and curve[S.SCALE] == S.GR:
            r0 = float((points[S.TIME_ZERO_SIGNAL] / points[S.VEHICLE_SIGNAL]).mean())
        _draw_curve(ax, curve, np.linspace(lo, hi, 200), r0=r0, unit=unit)
    heights = []
    for name in PANEL_METRICS[scale]:
        m = REGISTRY[name]
        row = metrics[metrics[S.METRIC] == name]
        if m.threshold is not None:
            ax.axhline(m.threshold * unit, color="#a0aec0", lw=0.8, ls=":")
        if not row.empty and m.unit == "M":
            heights.append(_draw_metric(ax, row.iloc[0], unit=unit))
        elif not row.empty and m.kind == "parameter" and row.iloc[0][S.STATUS].endswith("censored"):
            heights += _draw_plateau_bound(ax, row.iloc[0], x=hi + X_MARGIN / 2, unit=unit)
    heights = [h for h in heights if h is not None]
    _metric_text(ax, metrics[metrics[S.METRIC].isin(PANEL_METRICS[scale])])
    ax.set_xlim(lo - X_MARGIN, hi + X_MARGIN)
    span = [*(y[np.isfinite(y)] if len(y) else []), *heights, -0.1 * unit, 1.3 * unit]
    ax.set_ylim(min(span) - 0.1 * unit, max(span) + 0.1 * unit)
    ax.set_xlabel("log10 concentration (M)", fontsize=7, parse_math=False)
    ax.set_ylabel(Y_LABEL[scale], fontsize=7, parse_math=False)
    ax.tick_params(labelsize=6)
    _ticks_in_view(ax)


def _ticks_in_view(ax) -> None:
    """Fix each axis' ticks to the positions its locator gives inside the axes' limits (the ones drawn): for
    every position, also those just outside that are never drawn, matplotlib makes a tick (three lines, two
    labels), the largest part of drawing a panel."""
    for axis in (ax.xaxis, ax.yaxis):
        lo, hi = sorted(axis.get_view_interval())
        locs = np.asarray(axis.get_major_locator()(), dtype=float)
        slack = 1e-9 * (hi - lo)
        axis.set_major_locator(FixedLocator(locs[(locs >= lo - slack) & (locs <= hi + slack)]))


def _metric_text(ax, rows: pd.DataFrame) -> None:
    """The panel's metrics as text below the axes (never over the points)."""
    text = "\n".join(_fmt_metric(r) for _, r in rows.iterrows())
    ax.text(
        0.0,
        METRIC_TEXT_Y,
        text,
        parse_math=False,
        transform=ax.transAxes,
        fontsize=6.5,
        va="top",
        family="monospace",
        bbox={"boxstyle": "round", "fc": "white", "ec": "#cbd5e0", "alpha": 0.85},
    )


def curve_grid(
    picks: pd.DataFrame,
    responses: pd.DataFrame,
    curves: pd.DataFrame,
    metrics: pd.DataFrame,
    *,
    ncols: int = 4,
):
    """A figure with one panel per row of ``picks`` (curve key columns + ``scale`` + ``title``)."""
    n = max(len(picks), 1)
    nrows = int(np.ceil(n / ncols))
    fig = Figure(figsize=(PANEL_W * ncols, PANEL_H * nrows))  # room for the metric text below each panel
    axes = fig.subplots(nrows, ncols, squeeze=False)
    resp = _candidates(responses.rename(columns={S.TIME_H: S.DURATION_H}), picks, RESPONSE_COLUMNS)
    metrics = _candidates(metrics, picks, METRIC_COLUMNS)
    curves = curves[[c for c in CURVE_COLUMNS if c in curves]] if len(curves) else curves
    resp_key, metrics_key, pick_key = _key_codes(resp, metrics, picks)
    for i, (ax, (_, pick)) in enumerate(zip(axes.flat, picks.iterrows(), strict=False)):
        scale = pick[S.SCALE]
        points = resp[(resp_key == pick_key[i]) & resp[scale].notna().to_numpy()]
        mm = metrics[metrics_key == pick_key[i]]
        curve = _curve_used(curves, mm, pick)
        _draw_panel(ax, points, curve, mm, scale)
        title = "\n".join(plain(line, limit=150) for line in str(pick["title"]).split("\n"))
        # y given: drawn where matplotlib would put it (no tick labels above), without measuring every label
        ax.set_title(title, fontsize=7.5, parse_math=False, y=1.0)
    for ax in list(axes.flat)[len(picks) :]:
        ax.axis("off")
    _fixed_layout(fig, nrows=nrows, ncols=ncols)
    return fig


#: room around each panel of :func:`curve_grid` in inches (title above; tick labels, axis label and the
#: metric text, placed at ``METRIC_TEXT_Y`` axes heights below the axes, under it; tick labels left)
PANEL_W, PANEL_H = 3.1, 3.6
ROOM_TOP, ROOM_BOTTOM, ROOM_LEFT, ROOM_RIGHT = 0.38, 0.55, 0.6, 0.15
METRIC_TEXT_Y = -0.30


def _fixed_layout(fig, *, nrows: int, ncols: int) -> None:
    """Place the panels with fixed margins (no ``tight_layout``: it draws the whole figure once more just to
    measure it, which took as long as drawing the PNG)."""
    height = (PANEL_H - ROOM_TOP - ROOM_BOTTOM) / (1.0 - METRIC_TEXT_Y)  # axes height in inches
    width = PANEL_W - ROOM_LEFT - ROOM_RIGHT
    below = ROOM_BOTTOM - METRIC_TEXT_Y * height  # under the axes: metric text and its offset
    fig_w, fig_h = PANEL_W * ncols, PANEL_H * nrows
    fig.subplots_adjust(
        left=ROOM_LEFT / fig_w,
        right=1.0 - ROOM_RIGHT / fig_w,
        top=1.0 - ROOM_TOP / fig_h,
        bottom=below / fig_h,
        wspace=(ROOM_LEFT + ROOM_RIGHT) / width,
        hspace=(ROOM_TOP + below) / height,
    )


#: the columns of the responses, metrics and curves that a panel draws (the rest are left behind before the
#: rows of each panel are selected: a wide table makes every selection slow)
RESPONSE_COLUMNS = (*S.CURVE_KEY, S.CONCENTRATION, *S.RESPONSE_SCALES, S.TIME_ZERO_SIGNAL, S.VEHICLE_SIGNAL)
METRIC_COLUMNS = (*S.CURVE_KEY, S.METRIC, S.STATUS, S.VALUE, S.LOWER, S.UPPER, S.REASON, S.CURVE_ID)
CURVE_COLUMNS = (
    S.CURVE_ID,
    S.SCALE,
    "status",
    "selected",
    "flat_value",
    "top",
    "bottom",
    "log10_ec50",
    "hill",
)


def _candidates(table: pd.DataFrame, picks: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """The rows of ``table`` whose cell line and perturbagen are those of some pick (one scan of the whole
    table, so that the key codes of each panel, :func:`_key_codes`, are made of these few rows only), and of
    its ``columns`` only."""
    keep = table[S.CELL_LINE].isin(picks[S.CELL_LINE]) & table[S.PERTURBAGEN].isin(picks[S.PERTURBAGEN])
    return table[[c for c in columns if c in table]][keep.to_numpy(dtype=bool)]


def _key_codes(*tables: pd.DataFrame) -> list[np.ndarray]:
    """The curve key of every row of ``tables`` as one integer code shared by all of them (an unknown value
    matches an unknown one): one grouping of the few candidate rows instead of a key comparison per panel."""
    key = list(S.CURVE_KEY)
    both = pd.concat([t[key].astype(object) for t in tables], ignore_index=True)
    codes = both.groupby(key, dropna=False, sort=False).ngroup().to_numpy()
    return np.split(codes, np.cumsum([len(t) for t in tables])[:-1])


def _curve_used(curves: pd.DataFrame, metrics: pd.DataFrame, pick: pd.Series) -> pd.Series | None:
    """The curve the picked metric was read on (its ``curve_id``)."""
    row = metrics[metrics[S.METRIC] == pick[S.METRIC]]
    if row.empty or not len(curves):
        return None
    found = curves[curves[S.CURVE_ID] == row[S.CURVE_ID].iloc[0]]
    return found.iloc[0] if len(found) else None


@contextlib.contextmanager
def _no_glyph_warnings() -> Iterator[None]:
    """A character of a name that the font lacks is drawn as a box, without a warning per character on the
    terminal (the report's tables show the name as text)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from font", category=UserWarning)
        yield


def png_bytes(fig) -> bytes:
    """Render a figure as PNG."""
    buffer = io.BytesIO()
    with _no_glyph_warnings():
        fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def consistency_scatter(paired: pd.DataFrame, *, dataset_a: str, dataset_b: str, metrics: list[str]):
    """One panel per metric: the value in ``dataset_a`` against ``dataset_b`` for the pairs both estimated.

    ``paired`` is :func:`doseatlas.harmonize.consistency.paired_values` output (concentrations already log10).
    Names are drawn as plain text (no mathtext: a ``$`` in a data set name stays a ``$``).
    """
    from doseatlas.harmonize.consistency import transform_for

    fig = Figure(figsize=(3.0 * max(len(metrics), 1), 3.0))
    axes = fig.subplots(1, max(len(metrics), 1), squeeze=False)[0]
    for ax, name in zip(axes, metrics, strict=False):
        part = paired[paired[S.METRIC] == name]
        a, b = part[S.VALUE + "_a"].to_numpy(float), part[S.VALUE + "_b"].to_numpy(float)
        ok = np.isfinite(a) & np.isfinite(b)
        ax.scatter(a[ok], b[ok], s=12, color="#2b6cb0", alpha=0.7)
        if ok.any():
            lo, hi = np.nanmin([a[ok].min(), b[ok].min()]), np.nanmax([a[ok].max(), b[ok].max()])
            ax.plot([lo, hi], [lo, hi], color="#a0aec0", lw=1, ls=":")
        unit = "log10 M" if transform_for(name) == "log10" else "value"
        title = f"{name} ({unit})\n{int(ok.sum())} of {len(part)} shared pairs estimated in both"
        ax.set_title(title, fontsize=7, parse_math=False)
        ax.set_xlabel(plain(dataset_a, limit=60), fontsize=7, parse_math=False)
        ax.set_ylabel(plain(dataset_b, limit=60), fontsize=7, parse_math=False)
        ax.tick_params(labelsize=6)
    fig.tight_layout()
    return fig
