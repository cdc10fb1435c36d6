"""Plate position: each well's deviation from its replicates, row and column effects, and the edge effect.

Pure functions: the validated well table in, tables out. A dose-response plate has few vehicle wells, so an edge
estimate from them alone is noisy (or missing when no vehicle well sits on the edge). Here every well with cells
counts: its **position residual** is ``log(signal / reference)``, the reference being the median signal of its
condition (vehicle: the plate's vehicle wells; treated: the wells of the same data set, cell line, perturbagen,
concentration, read time, readout and seeding density on any plate), less the plate's median residual (plate
gain). Wells near background (reference below ``min_fraction`` of the plate's vehicle signal) are left out: their
log ratio is noise.

Per plate (``qc.PLATE_KEY``):

- ``edge_effect``: exp(median residual of edge wells - median residual of interior wells); 0.8 means edge wells
  read 20% low. ``edge_effect_se``: its standard error on the log scale (1.2533 x MAD-sigma / sqrt(n) per side);
- row and column effects by Tukey's median polish of the residual grid (:func:`median_polish`), as in the
  B-score of Brideau et al. (2003, J Biomol Screen 8:634): ``b_score`` = polished residual / MAD of the plate's
  polished residuals, per well (:func:`well_positions`).

Grouped numpy/pandas throughout; the polish works on an array of shape (plates, rows, columns).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from doseatlas import schemas as S
from doseatlas._groups import key_codes
from doseatlas.qc import PLATE_KEY, _edge_flags, parse_wells

EDGE_EFFECT = "edge_effect"
EDGE_EFFECT_SE = "edge_effect_se"
N_EDGE, N_INTERIOR = "n_edge_wells", "n_interior_wells"
RESIDUAL = "position_residual"
ROW_EFFECT, COL_EFFECT = "row_effect", "col_effect"
B_SCORE = "b_score"
MIN_FRACTION = 0.2
N_REFINE = 4  # passes of the reference refinement (the edge estimate converges in 3 on the simulator)
_CONDITION = [S.DATASET, S.CELL_LINE, S.PERTURBATION_TYPE, S.PERTURBAGEN, S.CONCENTRATION, S.TIME_H,
              S.READOUT, S.SEEDING_DENSITY]  # fmt: skip


def well_positions(clean: pd.DataFrame, *, min_fraction: float = MIN_FRACTION) -> pd.DataFrame:
    """One row per well with cells (vehicle, untreated, treated) whose position parses: plate key, ``row``,
    ``col``, ``edge``, ``position_residual`` (NaN near background), row / column effects and ``b_score``."""
    wells = clean[clean[S.ROLE].isin([S.Role.VEHICLE, S.Role.UNTREATED, S.Role.TREATED])]
    if S.WELL not in wells or not len(wells):
        return pd.DataFrame(columns=[*PLATE_KEY, S.WELL, "row", "col", "edge", RESIDUAL, B_SCORE])
    wells = S.with_series(wells).reset_index(drop=True)
    positions = parse_wells(wells[S.WELL])
    plate_codes, plates = key_codes(wells, PLATE_KEY)
    plate = pd.Series(plate_codes, index=wells.index)
    out = wells[[*PLATE_KEY, S.WELL]].assign(
        row=positions["row"], col=positions["col"], edge=_edge_flags(positions, plate), _plate=plate
    )
    edge = out["edge"].to_numpy(float) == 1.0
    adjust = np.ones(len(wells))
    condition = _condition_codes(wells, plate, plates=plates)  # grouped once, read by every pass
    for _ in range(
        N_REFINE
    ):  # the reference of a condition whose replicates sit on edges reads low: refine it
        out[RESIDUAL] = _residuals(
            wells, plate, edge, adjust=adjust, min_fraction=min_fraction, condition=condition
        )
        shift = _edge_shift(out[RESIDUAL].to_numpy(float), edge, out["_plate"].to_numpy(), len(out))
        adjust = np.where(edge, np.exp(shift), 1.0)
    out = out[out["row"].notna() & out["col"].notna()].reset_index(drop=True)
    return _with_polish(out)


def _edge_shift(resid: np.ndarray, edge: np.ndarray, plate: np.ndarray, n: int) -> np.ndarray:
    """Per well: its plate's median edge residual minus median interior residual (0 where either is missing)."""
    frame = pd.DataFrame({"r": resid, "e": edge, "p": plate})
    med = frame.dropna().groupby(["p", "e"])["r"].median().unstack("e")
    med = med.reindex(columns=[False, True])
    diff = (med[True] - med[False]).fillna(0.0)
    return pd.Series(plate).map(diff).fillna(0.0).to_numpy(float)


def _condition_codes(
    wells: pd.DataFrame, plate: pd.Series, *, plates: pd.DataFrame | None = None
) -> np.ndarray:
    """The reference group of each well: its condition (:data:`_CONDITION`; a control well: its plate too).

    ``plates``: the plate key table of the codes ``plate`` (:func:`doseatlas._groups.key_codes`); the columns of
    the condition that are part of the plate key are then read from the plate's code (the same groups)."""
    treated = (wells[S.ROLE] == S.Role.TREATED).to_numpy()
    columns = list(_CONDITION)
    key = wells[columns].assign(_p=np.where(treated, -1, plate.to_numpy()))
    if plates is not None:
        on_plate = [c for c in columns if c in PLATE_KEY]
        per_plate, _ = key_codes(plates, on_plate)
        key = key.drop(columns=on_plate).assign(_on_plate=per_plate[plate.to_numpy()])
    return key.groupby(list(key.columns), dropna=False, sort=False).ngroup().to_numpy()


def _residuals(
    wells: pd.DataFrame,
    plate: pd.Series,
    edge: np.ndarray,
    *,
    adjust: np.ndarray,
    min_fraction: float,
    condition: np.ndarray | None = None,
) -> np.ndarray:
    """``condition``: :func:`_condition_codes` of ``wells`` (computed when absent)."""
    signal = wells[S.SIGNAL].to_numpy(float)
    treated = (wells[S.ROLE] == S.Role.TREATED).to_numpy()
    condition = _condition_codes(wells, plate) if condition is None else condition
    reference = pd.Series(signal / adjust).groupby(condition).transform("median")
    # only conditions with wells on the edge and inside tell position from condition (replicate plates of one
    # layout put every replicate of a condition at the same position)
    side = pd.Series(edge.astype(float)).groupby(condition).transform("mean").to_numpy()
    informative = (side > 0) & (side < 1)
    control = (
        pd.Series(np.where(treated, np.nan, signal / adjust)).groupby(plate.to_numpy()).transform("median")
    )
    usable = informative & (signal > 0) & (reference.to_numpy() > min_fraction * control.to_numpy())
    with np.errstate(divide="ignore", invalid="ignore"):
        raw = np.where(usable, np.log(signal / reference.to_numpy()), np.nan)
    gain = pd.Series(raw).groupby(plate.to_numpy()).transform("median").to_numpy()
    return raw - gain


def _grid(table: pd.DataFrame) -> np.ndarray:
    """The residuals as an array (plates, rows, columns), NaN where a well is absent or unusable."""
    n_plates = int(table["_plate"].max()) + 1 if len(table) else 0
    rows, cols = int(table["row"].max()) if len(table) else 0, int(table["col"].max()) if len(table) else 0
    grid = np.full((n_plates, rows, cols), np.nan)
    grid[table["_plate"].to_numpy(int), table["row"].to_numpy(int) - 1, table["col"].to_numpy(int) - 1] = (
        table[RESIDUAL].to_numpy(float)
    )
    return grid


def median_polish(grid: np.ndarray, *, n_iter: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tukey's median polish of each plate of ``grid`` (plates, rows, columns; NaN ignored): (row effects
    (plates, rows), column effects (plates, columns), residuals). The overall effect is left in the residuals'
    median (the residual grid is centred per plate already)."""
    resid = grid.copy()
    row_eff = np.zeros(grid.shape[:2])
    col_eff = np.zeros((grid.shape[0], grid.shape[2]))
    with np.errstate(all="ignore"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows / columns: no effect
            for _ in range(n_iter):
                r = np.nan_to_num(nanmedian(resid, axis=2))
                resid -= r[:, :, None]
                row_eff += r
                c = np.nan_to_num(nanmedian(resid, axis=1))
                resid -= c[:, None, :]
                col_eff += c
    return row_eff, col_eff, resid


def nanmedian(values: np.ndarray, *, axis: int | tuple[int, ...]) -> np.ndarray:
    """``numpy.nanmedian`` along ``axis`` (the same numbers: the two middle values of the sorted non-NaN ones
    added and halved; NaN for an all-NaN slice, without a warning), by one sort instead of numpy's masked-array
    path for short slices."""
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    axes = tuple(a % values.ndim for a in axes)
    kept = [a for a in range(values.ndim) if a not in axes]
    flat = np.transpose(values, [*kept, *axes]).reshape([values.shape[a] for a in kept] + [-1])
    ordered = np.sort(flat, axis=-1)  # NaN last
    n = np.count_nonzero(~np.isnan(ordered), axis=-1)[..., None]
    high = np.minimum(n // 2, max(ordered.shape[-1] - 1, 0))
    low = np.where(n % 2 == 1, high, np.maximum(high - 1, 0))
    with np.errstate(invalid="ignore"):
        middle = (np.take_along_axis(ordered, low, -1) + np.take_along_axis(ordered, high, -1)) / 2.0
    return np.where(n == 0, np.nan, middle)[..., 0]


def _with_polish(table: pd.DataFrame) -> pd.DataFrame:
    if not len(table):
        return table.assign(**{ROW_EFFECT: np.nan, COL_EFFECT: np.nan, B_SCORE: np.nan}).drop(
            columns="_plate"
        )
    row_eff, col_eff, resid = median_polish(_grid(table))
    p, r, c = table["_plate"].to_numpy(int), table["row"].to_numpy(int) - 1, table["col"].to_numpy(int) - 1
    with np.errstate(all="ignore"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            centre = nanmedian(resid, axis=(1, 2))
            mad = 1.4826 * nanmedian(np.abs(resid - centre[:, None, None]), axis=(1, 2))
        table[ROW_EFFECT] = row_eff[p, r]
        table[COL_EFFECT] = col_eff[p, c]
        table[B_SCORE] = resid[p, r, c] / np.where(mad > 0, mad, np.nan)[p]
    return table.drop(columns="_plate")


def edge_effects(positions: pd.DataFrame) -> pd.DataFrame:
    """Per plate: ``edge_effect`` (edge over interior, a ratio), its log-scale SE and the wells on each side."""
    usable = positions[positions[RESIDUAL].notna() & positions["edge"].notna()]
    if not len(usable):
        return pd.DataFrame(columns=[*PLATE_KEY, EDGE_EFFECT, EDGE_EFFECT_SE, N_EDGE, N_INTERIOR])
    codes, plates = key_codes(usable, PLATE_KEY)  # the plates grouped once; each side of a plate a group
    interior = ~usable["edge"].astype(bool).to_numpy()
    group = codes * 2 + interior
    resid = usable[RESIDUAL].to_numpy(float)
    grouped = pd.Series(resid).groupby(group)
    deviation = np.abs(resid - grouped.transform("median").to_numpy())
    mad = 1.4826 * pd.Series(deviation).groupby(group).median()
    stats = pd.DataFrame({"med": grouped.median(), "n": grouped.size(), "mad": mad})
    every = np.arange(len(plates)) * 2
    side = {s: stats.reindex(every + i).set_axis(plates.index) for s, i in (("e", 0), ("i", 1))}
    se = np.sqrt(sum((1.2533 * side[s]["mad"]) ** 2 / side[s]["n"] for s in ("e", "i")))
    return plates.assign(
        **{
            EDGE_EFFECT: np.exp(side["e"]["med"] - side["i"]["med"]),
            EDGE_EFFECT_SE: se,
            N_EDGE: side["e"]["n"].fillna(0).astype("int64"),
            N_INTERIOR: side["i"]["n"].fillna(0).astype("int64"),
        }
    )
