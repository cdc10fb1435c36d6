"""Plate quality control from well positions: edge effects and control quality.

Pure functions: the validated well table in, a per-plate table out. Well names like ``B07`` (rows
A..Z, AA..AF for 1536-well plates) are parsed; the plate format is the smallest standard format
(96, 384, 1536) that holds every well seen on the plate; edge wells are those in the outer rows and
columns of that format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from doseatlas import schemas as S
from doseatlas._codes import factorize, first_code_rows, ordered_codes, run_starts
from doseatlas._stats import group_summary, summary_by_code

FORMATS = ((96, 8, 12), (384, 16, 24), (1536, 32, 48))
_WELL = re.compile(r"^([A-Za-z]{1,2})0*(\d{1,2})$")
PLATE_KEY = [S.DATASET, S.PLATE, S.CELL_LINE, S.TIME_H, S.READOUT]
EDGE_RATIO = "edge_vehicle_ratio"
Z_FACTOR = "z_factor"
SSMD = "ssmd"  # strictly standardized mean difference |mean_v - mean_p| / sqrt(sd_v^2 + sd_p^2) (Zhang 2007)
N_POSITIVE = "n_positive_used"  # wells of the strongest positive control that Z' and SSMD use


def parse_wells(wells: pd.Series) -> pd.DataFrame:
    """Row and column numbers (1-based) of well names; NaN where a name does not parse.

    Each distinct name is parsed once (a plate has at most 1,536), then spread to the rows by its code.
    """
    codes, names = pd.factorize(wells.astype(str), use_na_sentinel=False)
    parts = pd.Series(names, dtype=object).str.strip().str.extract(_WELL)
    letters = parts[0].str.upper()
    row = letters.map(lambda s: np.nan if not isinstance(s, str) else _row_number(s)).astype(float)
    col = pd.to_numeric(parts[1], errors="coerce").astype(float)
    return pd.DataFrame({"row": row.to_numpy()[codes], "col": col.to_numpy()[codes]}, index=wells.index)


def run_codes(frame: pd.DataFrame, key: list[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """(code per row, first rows) of ``frame`` grouped by ``key``: the codes are those of
    ``frame.groupby(key, sort=True, dropna=False).ngroup()``, found by grouping only the first row of each run
    of equal keys (:func:`run_starts`; every key's rows are among them), returned as ``first rows`` (the key
    columns). A plate's wells come one after another, so a table of a million wells is grouped on a few
    thousand rows."""
    starts = run_starts(frame, key)
    firsts = frame[key].iloc[starts]
    codes = firsts.groupby(key, dropna=False, sort=True).ngroup().to_numpy(dtype=np.int64)
    return np.repeat(codes, np.diff(np.append(starts, len(frame)))), firsts


def key_table(firsts: pd.DataFrame) -> pd.DataFrame:
    """The sorted keys of the groups of :func:`run_codes` (row ``i``: code ``i``), as
    ``groupby(key, sort=True, dropna=False).size().index.to_frame(index=False)`` gives them."""
    return firsts.groupby(list(firsts.columns), dropna=False, sort=True).size().index.to_frame(index=False)


def combined_codes(
    frame: pd.DataFrame, columns: list[str], *, plate: np.ndarray, keys: pd.DataFrame
) -> np.ndarray:
    """Groups of ``columns`` of ``frame`` numbered as ``groupby(columns, sort=True, dropna=False).ngroup()``
    numbers them, from each column's sorted codes; a column of the plate key is coded on ``keys`` (the plates'
    keys, :func:`key_table`) and taken by ``plate`` (each row's plate)."""

    def coded(column: str) -> tuple[np.ndarray, int]:
        on_plates = column in PLATE_KEY
        codes, uniques = pd.factorize(keys[column] if on_plates else frame[column], sort=True)
        return (codes[plate] if on_plates else codes), len(uniques)

    return ordered_codes((coded(c) for c in columns), len(frame))


@dataclass(frozen=True)
class PlateCoding:
    """The rows of a well table coded once for the plate-level steps (:func:`plate_coding`)."""

    plate: np.ndarray  # per row: its plate (``PLATE_KEY``), numbered as a sorted groupby numbers them
    firsts: pd.DataFrame  # the plate key of the first row of each run of rows of one plate
    well: np.ndarray  # per row: the code of its well name (-1: missing), an index into ``names``
    names: np.ndarray  # the distinct well names
    row: np.ndarray  # per row: row number (1-based), NaN where the name does not parse
    col: np.ndarray  # per row: column number
    role: np.ndarray  # per row: its role's position in ``schemas.Role`` (-1: missing or another text)

    def role_is(self, *roles: S.Role) -> np.ndarray:
        """Per row: whether its role is one of ``roles`` (as comparing the role column's text to theirs)."""
        hit = np.zeros(len(S.Role) + 1, dtype=bool)  # the last: code -1
        hit[[list(S.Role).index(role) for role in roles]] = True
        return hit[self.role]

    @property
    def n_plates(self) -> int:
        return int(self.plate.max()) + 1 if len(self.plate) else 0

    def positions(self, rows: np.ndarray | None = None) -> pd.DataFrame:
        """``row`` and ``col`` (of the rows at positions ``rows``, or all), as :func:`parse_wells` gives them."""
        take = slice(None) if rows is None else rows
        return pd.DataFrame({"row": self.row[take], "col": self.col[take]})


def plate_coding(clean: pd.DataFrame) -> PlateCoding:
    """Plate codes (:func:`run_codes`) and parsed well names of every row of ``clean`` (which has a well
    column), for :func:`plate_qc` and :func:`doseatlas.spatial.well_positions` to share."""
    plate, firsts = run_codes(clean, PLATE_KEY)
    well, names = pd.factorize(clean[S.WELL])
    names = np.asarray(names, dtype=object)
    parsed = parse_wells(pd.Series(names, dtype=object))
    row = np.append(parsed["row"].to_numpy(float), np.nan)[well]  # code -1: the NaN appended
    col = np.append(parsed["col"].to_numpy(float), np.nan)[well]
    return PlateCoding(plate=plate, firsts=firsts, well=well, names=names, row=row, col=col,
                       role=_role_codes(clean))  # fmt: skip


def _role_codes(clean: pd.DataFrame) -> np.ndarray:
    """Per row of ``clean``: the position of its role in ``schemas.Role`` (-1: missing, another text or no role
    column); each distinct text named once (:func:`doseatlas._codes.factorize`, on the runs of the column)."""
    if S.ROLE not in clean:
        return np.full(len(clean), -1, dtype=np.int64)
    codes, uniques = factorize(clean[S.ROLE])
    roles = [r.value for r in S.Role]
    named = [roles.index(u) if isinstance(u, str) and u in roles else -1 for u in uniques]
    return np.array([*named, -1], dtype=np.int64)[codes]  # code -1 (missing): the -1 appended


def _row_number(letters: str) -> int:
    number = 0
    for char in letters:
        number = number * 26 + (ord(char) - ord("A") + 1)
    return number


def _edge_flags(positions: pd.DataFrame, plate: pd.Series) -> pd.Series:
    """True for wells on the outer rows/columns of their plate's format (NaN where unknown); ``plate``: each
    row's plate number (0, 1, ...)."""
    codes = plate.to_numpy().astype(np.int64)
    if not len(codes):  # no well at all (e.g. every row went to the ledger)
        return pd.Series(np.nan, index=plate.index)
    r, c = positions["row"].to_numpy(float), positions["col"].to_numpy(float)
    extent = {}
    for name, values in (("rows", r), ("cols", c)):
        largest = np.full(int(codes.max()) + 1, -np.inf)
        np.fmax.at(largest, codes, values)  # NaN ignored, as a grouped max
        extent[name] = np.where(np.isneginf(largest), np.nan, largest)
    dims = _formats_of(pd.DataFrame(extent))
    nr, nc = dims["nr"].to_numpy()[codes], dims["nc"].to_numpy()[codes]
    edge = (r == 1) | (c == 1) | (r == nr) | (c == nc)
    return pd.Series(np.where(np.isnan(r) | np.isnan(c) | np.isnan(nr), np.nan, edge), index=plate.index)


def _formats_of(extent: pd.DataFrame) -> pd.DataFrame:
    """Rows and columns (``nr``, ``nc``) of the smallest standard format holding each plate's extent."""
    fits = [(extent["rows"] <= rows) & (extent["cols"] <= cols) for _, rows, cols in FORMATS]
    nr = np.select(fits, [float(rows) for _, rows, _ in FORMATS], default=np.nan)
    nc = np.select(fits, [float(cols) for _, _, cols in FORMATS], default=np.nan)
    return pd.DataFrame({"nr": nr, "nc": nc}, index=extent.index)


def plate_qc(clean: pd.DataFrame, *, coding: PlateCoding | None = None) -> pd.DataFrame:
    """Per plate: vehicle signal on edge wells over interior wells, and the Z'-factor of the controls.

    ``edge_vehicle_ratio`` (null unless the plate has vehicle wells both on the edge and inside): a value
    well below 1 shows edge wells losing signal. ``z_factor`` = 1 - 3 (sd_vehicle + sd_positive) /
    |mean_vehicle - mean_positive| (Zhang et al. 1999) and ``ssmd`` = |mean_vehicle - mean_positive| /
    sqrt(sd_vehicle^2 + sd_positive^2) (Zhang 2007), both from the vehicle wells and the strongest positive
    control only (one perturbagen at one concentration: the lowest mean signal); null without positive controls.
    ``coding``: :func:`plate_coding` of ``clean`` when the caller has it. Plates in order of first appearance.
    """
    coding = coding or plate_coding(clean)
    plate_id = pd.Series(coding.plate, index=clean.index)
    edge = _edge_flags(coding.positions().set_axis(clean.index), plate_id).to_numpy(float)
    keys = clean[PLATE_KEY].iloc[first_code_rows(coding.plate)].reset_index(drop=True)
    vehicle = coding.role_is(S.Role.VEHICLE)
    if not vehicle.any():
        return keys.assign(**{EDGE_RATIO: np.nan, Z_FACTOR: np.nan, SSMD: np.nan, N_POSITIVE: np.nan})
    side = np.where(np.isnan(edge), 2, edge).astype(np.int64)[vehicle]  # interior, edge, unknown
    n = coding.n_plates
    means = summary_by_code(coding.plate[vehicle] * 3 + side, clean[S.SIGNAL].to_numpy(float)[vehicle],
                            3 * n, method="mean").reshape(n, 3)  # fmt: skip
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = means[:, 1] / means[:, 0]
    out = keys.assign(**{EDGE_RATIO: ratio[coding.plate[first_code_rows(coding.plate)]]})
    positive = coding.role_is(S.Role.POSITIVE_CONTROL)
    z = _z_factor(clean) if positive.any() else pd.DataFrame()
    if not len(z):
        return out.assign(**{Z_FACTOR: np.nan, SSMD: np.nan, N_POSITIVE: np.nan})
    return out.merge(z, on=PLATE_KEY, how="left")


def _z_factor(wells: pd.DataFrame) -> pd.DataFrame:
    """Z'-factor and SSMD of each plate from its vehicle wells and its *strongest* positive control: of the
    positive-control wells grouped by perturbagen and concentration, the group with the lowest mean signal (a
    dose series of positive controls pooled into one group makes the spread, and Z', meaningless)."""
    key = list(PLATE_KEY)
    vehicle = wells[wells[S.ROLE] == S.Role.VEHICLE]
    positive = wells[wells[S.ROLE] == S.Role.POSITIVE_CONTROL]
    if not len(vehicle) or not len(positive):
        return pd.DataFrame(columns=[*key, Z_FACTOR, SSMD, N_POSITIVE])
    v = _mean_sd(vehicle, key)
    dose = [c for c in (S.PERTURBAGEN, S.CONCENTRATION) if c in positive]
    p = _mean_sd(positive.assign(**{c: positive[c].astype(str) for c in dose}), [*key, *dose]).reset_index()
    p = p.sort_values([*key, "mean"], kind="stable", na_position="last").groupby(key, dropna=False).head(1)
    both = v.reset_index().merge(p[[*key, "mean", "std", "n"]], on=key, suffixes=("_v", "_p"))
    gap = (both["mean_v"] - both["mean_p"]).abs()
    both[Z_FACTOR] = 1 - 3 * (both["std_v"] + both["std_p"]) / gap
    both[SSMD] = gap / np.sqrt(both["std_v"] ** 2 + both["std_p"] ** 2)
    return both.rename(columns={"n_p": N_POSITIVE})[[*key, Z_FACTOR, SSMD, N_POSITIVE]]


def _mean_sd(frame: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """Mean, sample SD and count of the signal per group of ``key`` (deterministic, see group_summary)."""
    stats = {m: group_summary(frame, key, S.SIGNAL, method=m) for m in ("mean", "std")}
    stats["n"] = frame.groupby(key, dropna=False, sort=True).size()
    return pd.DataFrame(stats)
