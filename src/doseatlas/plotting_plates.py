"""Plate maps for the report: one small heatmap per plate (rows x columns), flagged plates first.

Drawn as inline HTML tables coloured by value (no figure to render: a few thousand cells cost milliseconds).
The value of a well is its **position residual** on the responses table: log2 of its signal over the median
signal of its condition (same curve key and concentration, any plate), less its plate's median; blue reads low,
red high, white as its replicates. Only treated wells are in the responses; other wells are grey.
"""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd

from doseatlas import schemas as S
from doseatlas._codes import key_codes
from doseatlas._text import plain
from doseatlas.qc import combined_codes, key_table, parse_wells, run_codes
from doseatlas.spatial import group_medians

#: plates drawn in the report (flagged ones first); the others are counted
MAX_PLATE_MAPS = 12
LIMIT = 0.5  # |log2 residual| at which the colour saturates (a 1.41-fold deviation)
_KEY = [S.DATASET, S.PLATE, S.CELL_LINE, S.TIME_H, S.READOUT]
_CONDITION = [S.TIME_H if c == S.DURATION_H else c for c in (*S.CURVE_KEY, S.CONCENTRATION)]
_COLUMNS = list(dict.fromkeys([*_KEY, *_CONDITION, S.WELL, S.SIGNAL]))  # the columns the residuals read


def well_residuals(responses: pd.DataFrame) -> pd.DataFrame:
    """Per treated well with a position: plate key, ``row``, ``col`` and ``residual`` (log2, see the module)."""
    need = {*_KEY, *_CONDITION, S.WELL, S.SIGNAL}
    if not len(responses) or not need <= set(responses.columns):
        return pd.DataFrame(columns=[*_KEY, "row", "col", "residual"])
    signal = responses[S.SIGNAL].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        log = np.where(signal > 0, np.log2(signal), np.nan)
    plate, firsts = run_codes(responses, _KEY)  # the groups' numbers do not matter, only their members
    condition = combined_codes(responses, _CONDITION, plate=plate, keys=key_table(firsts))
    raw = log - group_medians(log, condition)
    centred = raw - group_medians(raw, plate)
    at = parse_wells(responses[S.WELL])
    placed = np.flatnonzero(at["row"].notna().to_numpy() & at["col"].notna().to_numpy())
    out = responses[_KEY].take(placed).reset_index(drop=True)
    return out.assign(
        row=at["row"].to_numpy()[placed], col=at["col"].to_numpy()[placed], residual=centred[placed]
    )


def _colour(value: float) -> str:
    if not np.isfinite(value):
        return "#e2e8f0"
    t = float(np.clip(value / LIMIT, -1.0, 1.0))
    if t < 0:  # white to blue
        r, g, b = 255 + t * (255 - 49), 255 + t * (255 - 130), 255 + t * (255 - 189)
    else:  # white to red
        r, g, b = 255 - t * (255 - 197), 255 - t * (255 - 48), 255 - t * (255 - 48)
    return f"#{int(r):02x}{int(g):02x}{int(b):02x}"


#: the ends of the colour scale (:func:`_colour`): low (blue) and high (red), white in the middle
_LOW, _HIGH = np.array([49.0, 130.0, 189.0]), np.array([197.0, 48.0, 48.0])


def _colours(values: np.ndarray) -> np.ndarray:
    """:func:`_colour` of every value of ``values`` (the same numbers, computed on the whole array)."""
    t = np.clip(values / LIMIT, -1.0, 1.0)[..., None]
    with np.errstate(invalid="ignore"):
        rgb = np.where(t < 0, 255 + t * (255 - _LOW), 255 - t * (255 - _HIGH))
    rgb = np.trunc(np.nan_to_num(rgb)).astype(np.int64)
    text = np.array([f"#{r:02x}{g:02x}{b:02x}" for r, g, b in rgb.reshape(-1, 3).tolist()], dtype=object)
    return np.where(np.isfinite(values).ravel(), text, "#e2e8f0").reshape(values.shape)


def _plate_table(cells: pd.DataFrame, n_rows: int, n_cols: int) -> str:
    grid = np.full((n_rows, n_cols), np.nan)
    grid[cells["row"].to_numpy(int) - 1, cells["col"].to_numpy(int) - 1] = cells["residual"].to_numpy(float)
    colours = _colours(grid)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td style="background:{colours[r, c]}" title="{_well(r, c)}: {v:+.2f}"></td>'
            if math.isfinite(v)
            else f'<td style="background:{colours[r, c]}"></td>'
            for c, v in enumerate(row.tolist())
        )
        + "</tr>"
        for r, row in enumerate(grid)
    )
    return f'<table class="platemap">{body}</table>'


def _well(r: int, c: int) -> str:
    letters = ""
    n = r + 1
    while n:
        n, rem = divmod(n - 1, 26)
        letters = chr(ord("A") + rem) + letters
    return f"{letters}{c + 1:02d}"


def _order(plates: pd.DataFrame, flagged: pd.DataFrame) -> pd.DataFrame:
    """The plates to draw, flagged ones first, then by edge effect (lowest first), at most MAX_PLATE_MAPS."""
    table, marks = plates, flagged[_KEY].assign(_flag=True)
    table = table.merge(marks.drop_duplicates(_KEY), on=_KEY, how="left")
    table["_flag"] = table["_flag"].eq(True)
    edge = table["edge_effect"] if "edge_effect" in table else pd.Series(np.nan, index=table.index)
    table = table.assign(_edge=edge.astype(float).fillna(np.inf))
    return table.sort_values(["_flag", "_edge"], ascending=[False, True], kind="stable")


def _drawn_cells(ordered: pd.DataFrame, residuals: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The first :data:`MAX_PLATE_MAPS` plates of ``ordered`` that have wells in ``residuals``, and those wells
    (in table order) with ``_n``, the plate's place among them. The wells' plate keys are grouped once (integer
    codes) instead of merging every well with the drawn plates."""
    codes, keys = key_codes(residuals, _KEY)
    drawn = ordered.merge(keys.assign(_code=np.arange(len(keys))), on=_KEY, how="inner").head(MAX_PLATE_MAPS)
    place = np.full(len(keys), -1)
    place[drawn["_code"].to_numpy(int)] = np.arange(len(drawn))
    n = place[codes]
    return drawn.drop(columns="_code"), residuals[n >= 0].assign(_n=n[n >= 0]).reset_index(drop=True)


def _among(column: pd.Series, values: pd.Series) -> np.ndarray:
    """True where ``column`` holds one of ``values`` (a missing value matches a missing one)."""
    hit = column.isin(values.dropna().unique()).to_numpy(dtype=bool)
    return hit | column.isna().to_numpy(dtype=bool) if values.isna().any() else hit


def _map_rows(responses: pd.DataFrame, ordered: pd.DataFrame) -> np.ndarray | None:
    """Positions of the rows the residuals of the drawn plates depend on: every row of their cell lines and
    perturbagens (a well's condition and plate medians are taken over rows that share both), so the residuals are
    computed on those rows only, not on a whole screen. The drawn plates are found among the first plates of
    ``ordered``, a few at a time (4 times more each round). None when the columns are missing or no plate
    of ``ordered`` has a placed well (the whole table is used then)."""
    if not {*_KEY, *_CONDITION, S.WELL, S.SIGNAL} <= set(responses.columns) or not len(responses):
        return None
    n = MAX_PLATE_MAPS
    while True:
        head = ordered.head(n)[_KEY].drop_duplicates()
        near = responses[[*_KEY, S.PERTURBAGEN, S.WELL]].take(
            np.flatnonzero(_among(responses[S.PLATE], head[S.PLATE]))
        )
        at = parse_wells(near[S.WELL])
        placed = (at["row"].notna() & at["col"].notna()).to_numpy(dtype=bool)
        drawn = head.merge(key_codes(near[placed], _KEY)[1], on=_KEY, how="inner").head(MAX_PLATE_MAPS)
        if len(drawn) == MAX_PLATE_MAPS or n >= len(ordered):
            break
        n *= 4
    if not len(drawn):
        return None
    codes, keys = key_codes(near, _KEY)
    on = keys.merge(drawn.assign(_drawn=True), on=_KEY, how="left")["_drawn"].eq(True).to_numpy(dtype=bool)
    members = near[on[codes]]
    return np.flatnonzero(
        _among(responses[S.CELL_LINE], members[S.CELL_LINE])
        & _among(responses[S.PERTURBAGEN], members[S.PERTURBAGEN])
    )


PLATE_MAP_CSS = (
    ".platemaps{display:flex;flex-wrap:wrap;gap:10px}.platemaps figure{margin:0}"
    ".platemap{border-collapse:collapse}.platemap td{width:7px;height:7px;padding:0;border:1px solid #fff}"
    ".platemaps figcaption{font-size:11px;max-width:220px}"
)


def plate_maps_section(result) -> str:
    """The report's plate maps: at most :data:`MAX_PLATE_MAPS` plates, flagged (``edge_effect`` or
    ``low_z_factor``) first, then by edge effect; says how many are not shown."""
    from doseatlas.metrics.flags import FlagOptions, plate_flags

    plates, responses = result.plates, result.responses
    if plates is None or plates.empty or S.WELL not in responses:
        return '<p class="sub">No plate with well positions.</p>'
    options = result.options.flags if getattr(result, "options", None) is not None else FlagOptions()
    ordered = _order(plates, plate_flags(plates, options=options))
    rows = _map_rows(responses, ordered)
    residuals = well_residuals(responses if rows is None else responses[_COLUMNS].take(rows))
    if not len(residuals):
        return '<p class="sub">No treated well with a position.</p>'
    drawn, cells = _drawn_cells(ordered, residuals)
    figures = []
    for n, block in cells.groupby("_n", sort=True):  # at most MAX_PLATE_MAPS plates: a short loop
        plate = drawn.iloc[int(n)]
        n_rows, n_cols = (8, 12) if block["row"].max() <= 8 and block["col"].max() <= 12 else (16, 24)
        n_rows, n_cols = max(n_rows, int(block["row"].max())), max(n_cols, int(block["col"].max()))
        edge = pd.to_numeric(pd.Series([plate.get("edge_effect")]), errors="coerce").astype(float).iloc[0]
        where = " / ".join(plain(plate[k], limit=60) for k in (S.DATASET, S.PLATE, S.CELL_LINE))
        caption = f"{'flagged · ' if plate['_flag'] else ''}{where}" + (
            f" · edge_effect {edge:.2f}" if np.isfinite(edge) else ""
        )
        figures.append(
            f"<figure>{_plate_table(block, n_rows, n_cols)}<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    n_plates, n_flagged = len(ordered), int(ordered["_flag"].sum())
    note = (
        f'<p class="sub">{len(figures):,} of {n_plates:,} plates drawn ({n_flagged:,} flagged, drawn first)'
        + (f"; {n_plates - len(figures):,} not shown" if n_plates > len(figures) else "")
        + f". Each cell: log2 of a treated well's signal over its replicates' median, less the plate's median "
        f"(blue low, red high, saturating at ±{LIMIT}; grey: no treated well). Edge loss shows as a blue ring.</p>"
    )
    return f"<style>{PLATE_MAP_CSS}</style>" + note + '<div class="platemaps">' + "".join(figures) + "</div>"
