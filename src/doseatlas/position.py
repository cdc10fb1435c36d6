"""The position correction of a run (``--position-correction none|bscore|drop-edge``): validated wells in,
corrected wells (and the ledger rows of the wells dropped) out, before normalization.

Pure functions, vectorized over plates (grouped numpy / pandas, no loop per plate). The plate-position model
itself (residuals, edge effect, median polish) is :mod:`doseatlas.spatial`; the edge estimate and the
``edge_effect`` flag are computed from the wells as read, whatever the correction.

- ``none`` (default): nothing changes.
- ``bscore``: each well with cells (vehicle, untreated, treated, positive control) is divided by its plate's
  position effect ``exp(row effect + column effect)`` above the plate's blank: ``blank + (signal - blank) /
  exp(row + col)``. The effects are Tukey's median polish (Brideau et al. 2003) of the grid of **position
  residuals**, each well's log signal less its condition's mean and its plate's gain
  (:func:`doseatlas.spatial.well_positions`): a dose layout structured by rows or columns is the conditions'
  part, not the position's, so the drug effect is not removed. Where a condition sits at the same position on
  every plate (one fixed layout for every replicate), its residuals carry no position information and the
  effects there come out near 0: such plates are left nearly as read. Blanks and time-zero reads are not
  corrected (no cells, or no incubation).
- ``drop-edge``: the wells with cells read after treatment (vehicle, untreated, treated, positive control) in
  the outer rows and columns of their plate's format go to the ledger with the reason ``edge_well``; blanks
  and time-zero reads are kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from doseatlas import schemas as S
from doseatlas._spelling import spell
from doseatlas.errors import ConfigError
from doseatlas.qc import PLATE_KEY, _edge_flags, parse_wells
from doseatlas.spatial import SHRUNK_COL, SHRUNK_ROW, _blanks, well_positions

POSITION_EFFECT = "_position_effect"

POSITION_CORRECTIONS: tuple[str, ...] = ("none", "bscore", "drop-edge")
#: roles of the wells a correction touches: cells incubated with (or without) a treatment
CORRECTED_ROLES = (S.Role.VEHICLE, S.Role.UNTREATED, S.Role.TREATED, S.Role.POSITIVE_CONTROL)


@dataclass(frozen=True)
class Positioned:
    """The wells after the position correction and the ledger rows of the wells it removed."""

    clean: pd.DataFrame
    ledger: pd.DataFrame


def check_position_correction(method: str) -> str:
    """``method`` when it is one of :data:`POSITION_CORRECTIONS`, else a ConfigError naming them."""
    if method not in POSITION_CORRECTIONS:
        raise ConfigError(
            f"{spell('position_correction')} must be one of {', '.join(POSITION_CORRECTIONS)}, not {method!r}"
        )
    return method


def correct_positions(clean: pd.DataFrame, *, method: str = "none") -> Positioned:
    """The validated well table ``clean`` after the position correction ``method`` (see the module)."""
    check_position_correction(method)
    empty = pd.DataFrame(columns=list(S.LEDGER_COLUMNS))
    if method == "none" or not len(clean) or S.WELL not in clean or S.ROLE not in clean:
        return Positioned(clean, empty)
    if method == "drop-edge":
        return drop_edge_wells(clean)
    return Positioned(bscore_corrected(clean), empty)


def _cell_wells(clean: pd.DataFrame) -> np.ndarray:
    return clean[S.ROLE].isin(list(CORRECTED_ROLES)).to_numpy()


def edge_wells(clean: pd.DataFrame) -> np.ndarray:
    """True for the wells with cells read after treatment that sit on the outer ring of their plate's format
    (the format from every well of the plate, as :func:`doseatlas.qc.plate_qc`)."""
    plate = pd.Series(clean.groupby(PLATE_KEY, dropna=False).ngroup().to_numpy(), index=clean.index)
    edge = _edge_flags(parse_wells(clean[S.WELL]), plate).to_numpy(float) == 1.0
    return edge & _cell_wells(clean)


def drop_edge_wells(clean: pd.DataFrame) -> Positioned:
    """``drop-edge``: the edge wells with cells go to the ledger (reason ``edge_well``), the others stay."""
    drop = edge_wells(clean)
    gone = clean[drop]
    ledger = pd.DataFrame(
        {
            S.SOURCE_FILE: gone[S.SOURCE_FILE].astype(str).to_numpy(),
            S.SOURCE_LINE: gone[S.SOURCE_LINE].astype("int64").to_numpy(),
            S.LEDGER_COLUMN: S.WELL,
            S.LEDGER_REASON: S.RowReason.EDGE_WELL.value,
            S.LEDGER_MESSAGE: (
                "well " + gone[S.WELL].astype(str) + " is on the edge of plate " + gone[S.PLATE].astype(str)
                + " (--position-correction drop-edge)"
            ).to_numpy(dtype=object),
        }
    )  # fmt: skip
    return Positioned(clean[~drop].reset_index(drop=True), ledger)


def position_factors(clean: pd.DataFrame) -> np.ndarray:
    """Per row of ``clean``: ``exp(row effect + column effect)`` of its well on its plate (median polish of the
    position residuals, :func:`doseatlas.spatial.well_positions`); 1 where no effect is known and for wells
    without cells."""
    positions = well_positions(clean)
    if not len(positions):
        return np.ones(len(clean))
    positions = positions.assign(_r=positions[SHRUNK_ROW], _c=positions[SHRUNK_COL])
    at = parse_wells(clean[S.WELL])
    grid = _effect_grid(positions)
    key = clean[PLATE_KEY].assign(row=at["row"].to_numpy(), col=at["col"].to_numpy())
    total = key.merge(grid, on=[*PLATE_KEY, "row", "col"], how="left")[POSITION_EFFECT].fillna(0.0)
    return np.where(_cell_wells(clean), np.exp(total.to_numpy(float)), 1.0)


def _effect_grid(positions: pd.DataFrame) -> pd.DataFrame:
    """Every (plate, row, column) of the plates in ``positions`` with its shrunk row + column effect (a well
    without cells, or unused by the model, still sits in a row and a column whose effects are known)."""
    keys = [*PLATE_KEY]
    rows = positions.groupby([*keys, "row"], dropna=False)["_r"].first().reset_index()
    cols = positions.groupby([*keys, "col"], dropna=False)["_c"].first().reset_index()
    grid = rows.merge(cols, on=keys, how="inner")
    return grid.assign(**{POSITION_EFFECT: grid["_r"] + grid["_c"]})[[*keys, "row", "col", POSITION_EFFECT]]


def bscore_corrected(clean: pd.DataFrame) -> pd.DataFrame:
    """``bscore``: the signal of each well with cells divided by its position factor above the plate's blank."""
    factor = position_factors(clean)
    blank = _blanks(clean, clean)
    signal = clean[S.SIGNAL].to_numpy(float)
    return clean.assign(**{S.SIGNAL: np.where(factor != 1.0, blank + (signal - blank) / factor, signal)})
