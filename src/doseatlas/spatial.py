"""Plate position: each well's deviation from its condition, row and column effects, and the edge effect.

Pure functions: the validated well table in, tables out. A dose-response plate has few vehicle wells, so an edge
estimate from them alone is noisy (or missing when no vehicle well sits on the edge). Here every well with cells
counts, in one model of the plates that share conditions (docs/plates.md)::

    log(signal - blank) = plate gain + condition + plate edge term x (well on the edge)

a condition being the data set, cell line, perturbation, concentration, read time, readout and seeding density.
It is fitted by weighted least squares (backfitting, a fixed number of passes, Huber weights; wells near
background left out). A condition whose replicates sit all on the edge or all inside tells nothing about position,
and the model gives it no say.

Per plate (``qc.PLATE_KEY``, :func:`edge_effects`):

- ``edge_effect``: exp(edge term); 0.8 means edge wells read 20% low. ``edge_effect_se``: its standard error on the
  log scale, from the information about the edge term once the condition means and plate gain are projected out;
- row and column effects by Tukey's median polish of the grid of **position residuals** (log signal less its
  condition and its plate's gain; :func:`median_polish`), as in the B-score of Brideau et al. (2003, J Biomol
  Screen 8:634): ``b_score`` = polished residual / MAD of the plate's polished residuals, per well
  (:func:`well_positions`), and the effects shrunk by their reliability (what ``--position-correction bscore``
  divides by, :mod:`doseatlas.position`).

Grouped numpy/pandas throughout; the polish works on an array of shape (plates, rows, columns).
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
from numba import njit

from doseatlas import schemas as S
from doseatlas._codes import factorize, ordered_codes
from doseatlas._stats import group_summary, summary_by_code
from doseatlas.qc import (
    PLATE_KEY,
    PlateCoding,
    _edge_flags,
    key_table,
    plate_coding,
    run_codes,
)

EDGE_EFFECT = "edge_effect"
EDGE_EFFECT_SE = "edge_effect_se"
N_EDGE, N_INTERIOR = "n_edge_wells", "n_interior_wells"
RESIDUAL = "position_residual"
ROW_EFFECT, COL_EFFECT = "row_effect", "col_effect"
B_SCORE = "b_score"
#: log scale: the row and column effects shrunk by their reliability (:func:`_shrunk`); their sum is what
#: ``--position-correction bscore`` divides a well by (:mod:`doseatlas.position`)
SHRUNK_ROW, SHRUNK_COL = "row_effect_shrunk", "col_effect_shrunk"
WEIGHT, LEVERAGE, CONDITION_ID = "position_weight", "position_leverage", "position_condition"
MIN_FRACTION = 0.05
N_PASSES = (
    30  # backfitting passes (fixed: the same sums in every engine; converged to ~1e-6 on the simulator)
)
HUBER_K = 2.0  # robust SDs beyond which a well's weight falls (Huber)
#: compiled kernels: exact IEEE arithmetic (no fastmath), numpy's rules for a division by zero
_JIT = {"cache": True, "error_model": "numpy"}
_FMAX = float(np.finfo(np.float64).max)  # numpy.nan_to_num's stand-in for inf
_CONDITION = [S.DATASET, S.CELL_LINE, S.PERTURBATION_TYPE, S.PERTURBAGEN, S.CONCENTRATION, S.TIME_H,
              S.READOUT, S.SEEDING_DENSITY]  # fmt: skip


def well_positions(
    clean: pd.DataFrame, *, min_fraction: float = MIN_FRACTION, coding: PlateCoding | None = None
) -> pd.DataFrame:
    """One row per well with cells (vehicle, untreated, treated) whose position parses: plate key, ``row``,
    ``col``, ``edge``, ``position_residual`` (NaN where unused), ``position_weight`` (the well's robust weight,
    0 where unused), ``position_leverage`` (its share of its condition's weight), row / column effects and
    ``b_score``. Rows in a canonical order (plate key, well), whatever the order of ``clean``. ``coding``:
    :func:`doseatlas.qc.plate_coding` of ``clean`` when the caller has it."""
    if S.WELL not in clean or not role_is(clean, S.Role.VEHICLE, S.Role.UNTREATED, S.Role.TREATED).any():
        return pd.DataFrame(columns=[*PLATE_KEY, S.WELL, "row", "col", "edge", RESIDUAL, WEIGHT, LEVERAGE,
                                     CONDITION_ID, ROW_EFFECT, COL_EFFECT, B_SCORE, SHRUNK_ROW, SHRUNK_COL])  # fmt: skip
    coding = coding or plate_coding(clean)
    rows, columns = _position_model(clean, coding, min_fraction=min_fraction)
    keep = ~(np.isnan(columns["row"]) | np.isnan(columns["col"]))  # the wells whose position parses
    if not keep.all():
        rows, columns = rows[keep], {name: values[keep] for name, values in columns.items()}
    columns.pop("_full_plate")
    out = clean[[*PLATE_KEY, S.WELL]].take(rows).reset_index(drop=True).assign(**columns)
    return _with_polish(out)


def plate_edge_effects(
    clean: pd.DataFrame, *, coding: PlateCoding, min_fraction: float = MIN_FRACTION
) -> pd.DataFrame:
    """``edge_effects(well_positions(clean, coding=coding))``, the same table, without what the edge table
    does not read: no text column taken per well (the plates are ``coding``'s) and no median polish."""
    if S.WELL not in clean or not coding.role_is(S.Role.VEHICLE, S.Role.UNTREATED, S.Role.TREATED).any():
        return pd.DataFrame(columns=[*PLATE_KEY, EDGE_EFFECT, EDGE_EFFECT_SE, N_EDGE, N_INTERIOR])
    _, columns = _position_model(clean, coding, min_fraction=min_fraction)
    used = columns[WEIGHT] > 0  # (a well whose position does not parse has no edge flag: never used)
    read = {k: columns[k][used] for k in (RESIDUAL, WEIGHT, LEVERAGE, "edge")}
    return _edge_table(read, columns["_full_plate"][used], key_table(coding.firsts))


def _position_model(
    clean: pd.DataFrame, coding: PlateCoding, *, min_fraction: float
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The rows of ``clean`` with cells in canonical order (:func:`_canonical_order`) and their columns: ``row``,
    ``col``, ``edge``, ``_plate`` (the plates numbered in order), ``_full_plate`` (the plate in ``coding``) and
    those of the edge model (:func:`_edge_model`)."""
    cells = coding.role_is(S.Role.VEHICLE, S.Role.UNTREATED, S.Role.TREATED)
    rows = _canonical_order(clean, np.flatnonzero(cells), coding)
    full_plate = coding.plate[rows]
    plate = np.r_[0, np.cumsum(full_plate[1:] != full_plate[:-1])]  # plates of the wells, numbered in order
    positions = coding.positions(rows)
    edge = _edge_flags(positions, pd.Series(plate)).to_numpy(float)
    model = _edge_model(
        clean[S.SIGNAL].to_numpy(float)[rows] - _plate_blanks(clean, coding)[full_plate],
        plate,
        edge,
        treated=coding.role_is(S.Role.TREATED)[rows],
        min_fraction=min_fraction,
        cond=_condition_codes(clean, rows, coding),
    )
    columns = {"row": positions["row"].to_numpy(), "col": positions["col"].to_numpy(), "edge": edge,
               "_plate": plate, **dict(zip((RESIDUAL, WEIGHT, LEVERAGE, CONDITION_ID), model, strict=True))}  # fmt: skip
    return rows, {**columns, "_full_plate": full_plate}


def role_is(table: pd.DataFrame, *roles: S.Role) -> np.ndarray:
    """Per row of ``table``: whether its role is one of ``roles`` (compared as plain text, by numpy)."""
    values = table[S.ROLE].to_numpy()
    hit = np.zeros(len(values), dtype=bool)
    for role in roles:
        hit |= values == role.value
    return hit


def _blanks(clean: pd.DataFrame, wells: pd.DataFrame) -> np.ndarray:
    """Per well: the mean blank signal of its plate (as normalization subtracts it), 0 where it has none."""
    blank_rows = clean[clean[S.ROLE] == S.Role.BLANK]
    if not len(blank_rows):
        return np.zeros(len(wells))
    blanks = group_summary(blank_rows, PLATE_KEY, S.SIGNAL, method="mean").rename("_blank").reset_index()
    merged = wells[PLATE_KEY].merge(blanks, on=PLATE_KEY, how="left")
    return merged["_blank"].fillna(0.0).to_numpy(float)


def _plate_blanks(clean: pd.DataFrame, coding: PlateCoding) -> np.ndarray:
    """Per plate of ``coding``: :func:`_blanks` (the mean blank signal, 0 where the plate has none)."""
    blank = role_is(clean, S.Role.BLANK)
    signal = clean[S.SIGNAL].to_numpy(float)[blank]
    means = summary_by_code(coding.plate[blank], signal, coding.n_plates, method="mean")
    return np.where(np.isnan(means), 0.0, means)


def _canonical_order(clean: pd.DataFrame, rows: np.ndarray, coding: PlateCoding) -> np.ndarray:
    """The positions ``rows`` of ``clean`` sorted by plate key, well and signal (missing last; a stable sort),
    as ``sort_values`` sorts them: the model's sums then run in one order in every engine."""
    names = pd.Series(coding.names, dtype=object).sort_values(kind="stable").index.to_numpy()
    rank = np.empty(len(names) + 1, dtype=np.int64)
    rank[names], rank[-1] = np.arange(len(names)), len(names)  # code -1 (no name): last
    key = coding.plate[rows] * (len(names) + 1) + rank[coding.well[rows]]
    within = np.argsort(key, kind="stable")
    same = key[within][1:] == key[within][:-1]
    if same.any():  # wells of one name on one plate: by signal
        tied = np.zeros(len(key), dtype=bool)
        tied[1:] |= same
        tied[:-1] |= same
        at = np.flatnonzero(tied)
        block = within[at]
        signal = clean[S.SIGNAL].to_numpy(float)[rows]
        within[at] = block[np.lexsort((signal[block], key[block]))]
    return rows[within]


def _condition_codes(clean: pd.DataFrame, rows: np.ndarray, coding: PlateCoding) -> np.ndarray:
    """The condition (:data:`_CONDITION`) of the wells at positions ``rows`` of ``clean``, numbered as
    ``groupby(_CONDITION, sort=True, dropna=False).ngroup()`` of those wells numbers them: each column's sorted
    codes over all of ``clean`` (on its runs, :func:`doseatlas._codes.factorize`; a column of the plate key on
    the plates of ``coding``; missing last) taken at ``rows``, the codes of a well read as the digits of one
    number (the numbers then sort as the combinations do) and the numbers present ranked. A missing seeding
    density is one value."""
    keys = key_table(coding.firsts)
    coded = []
    for column in _CONDITION:
        if column in PLATE_KEY:
            codes, uniques = pd.factorize(keys[column], sort=True)
            codes = codes[coding.plate[rows]]
        elif column in clean:
            codes, uniques = factorize(clean[column], sort=True)
            codes = codes[rows]
        else:
            codes, uniques = np.zeros(len(rows), dtype=np.int64), [0]
        coded.append((np.where(codes < 0, len(uniques), codes), len(uniques) + 1))
    if math.prod(width for _, width in coded) >= 2**62:  # too many digits for one int64: combined in steps
        return ordered_codes(((c, w - 1) for c, w in coded), len(rows))
    number = np.zeros(len(rows), dtype=np.int64)
    for codes, width in coded:
        number *= width
        number += codes
    return np.unique(number, return_inverse=True)[1].reshape(-1).astype(np.int64)


def _usable(
    signal: np.ndarray, treated: np.ndarray, plate: np.ndarray, cond: np.ndarray, *, min_fraction: float
) -> np.ndarray:
    """Wells whose log signal (above the blank) is informative: positive, of a condition whose median is at
    least ``min_fraction`` of the plate's control (vehicle / untreated) median, and of a condition with 2+ such
    wells."""
    reference = _group_medians(signal, cond, int(cond.max()) + 1)[cond]
    control = _group_medians(np.where(treated, np.nan, signal), plate, int(plate.max()) + 1)[plate]
    with np.errstate(invalid="ignore"):
        usable = np.isfinite(signal) & (signal > 0) & (reference > min_fraction * control)
    return usable & (np.bincount(cond, weights=usable)[cond] >= 2)


def _edge_model(
    signal: np.ndarray,
    plate: np.ndarray,
    edge: np.ndarray,
    *,
    treated: np.ndarray,
    min_fraction: float,
    cond: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """Per well (``signal``: less its plate's blank; ``treated``: whether its role is treated): residual of
    ``log(signal) = plate gain + condition + plate edge effect x edge`` less the plate gain (NaN where unused),
    its robust weight, its leverage in its condition (see :func:`_backfit`) and its condition's number
    (``cond``: :func:`_condition_codes`)."""
    use = _usable(signal, treated, plate, cond, min_fraction=min_fraction) & np.isfinite(edge)
    resid, weight, leverage = (np.full(len(signal), np.nan) for _ in range(3))
    if use.any():
        y, codes = np.log(signal[use]), (plate[use], cond[use])  # _backfit numbers what it uses
        resid[use], weight[use], leverage[use] = _backfit(y, *codes, edge[use] == 1.0)
    return resid, np.where(use, weight, 0.0), leverage, cond


def _means(group: np.ndarray, values: np.ndarray, weights: np.ndarray, n: int) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.bincount(group, weights=weights * values, minlength=n) / np.bincount(
            group, weights=weights, minlength=n
        )


def _backfit(
    y: np.ndarray, plate: np.ndarray, cond: np.ndarray, edge: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted least squares of ``y = a[plate] + b[cond] + e[plate] * edge`` by backfitting (a fixed number of
    passes, so the sums are the same in every engine), Huber weights from the third of the passes on.

    Returns the residual ``y - a - b`` (edge wells keep their edge effect), the weights and each well's
    leverage in its condition (its weight over the condition's: the share of its own deviation the condition
    mean absorbs). Compiled (:func:`_backfit_passes`), plate by plate (the plates shared by two threads); every sum runs over the wells in their
    order within a plate and the plates in order (the row order when a plate's wells are together, as
    :func:`well_positions` gives them), as ``numpy.bincount`` sums, so the numbers are those of the same
    passes written with numpy. ``plate`` and ``cond``: integer codes (codes without wells are skipped)."""
    n_p = int(plate.max()) + 1
    starts = np.r_[0, np.cumsum(np.bincount(plate, minlength=n_p))].astype(np.int64)
    if len(plate) < 2 or bool((plate[1:] >= plate[:-1]).all()):  # the plates' wells together, in order
        order = slice(None)
    else:
        order = np.argsort(plate, kind="stable")
    cond = pd.factorize(cond[order])[0].astype(np.int64)  # renumbered as met: a plate's conditions together
    n_c = int(cond.max()) + 1
    fitted = _backfit_passes(y[order], cond, edge[order].astype(np.float64), n_c, starts)
    results = tuple(np.empty(len(y)) for _ in fitted)
    for result, values in zip(results, fitted, strict=True):
        result[order] = values
    return results


def group_medians(values: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Per row: the median of the non-NaN ``values`` of its group (integer codes ``group``), the numbers of
    ``pd.Series(values).groupby(group).transform("median")`` (compiled)."""
    if not len(values):
        return np.zeros(0)
    group = np.asarray(group, dtype=np.int64)
    return _group_medians(np.asarray(values, dtype=float), group, int(group.max()) + 1)[group]


@njit(**_JIT)
def _nan_to_num(x: float) -> float:
    if np.isnan(x):
        return 0.0
    if np.isinf(x):
        return _FMAX if x > 0 else -_FMAX
    return x


@njit(**_JIT)
def _median(values: np.ndarray) -> float:
    """Median of the non-NaN ``values`` (NaN if none), as pandas' grouped median computes it: the middle value,
    or the two middle values added and halved. ``values`` is reordered in place (:func:`_select`)."""
    m = 0
    for k in range(len(values)):
        if not np.isnan(values[k]):
            values[m] = values[k]
            m += 1
    if m == 0:
        return np.nan
    high = _select(values, m, m // 2)
    if m % 2 == 1:
        return high
    low = values[0]
    for k in range(1, m // 2):
        low = max(low, values[k])
    return (high + low) / 2


@njit(**_JIT)
def _select(a: np.ndarray, m: int, k: int) -> float:
    """The ``k``-th smallest of ``a[:m]`` (no NaN), ``a`` reordered so that ``a[:k] <= a[k] <= a[k + 1:m]``
    (quickselect, median-of-three pivots; no allocation)."""
    lo, hi = 0, m - 1
    while hi > lo:
        mid = (lo + hi) // 2
        if a[mid] < a[lo]:
            a[mid], a[lo] = a[lo], a[mid]
        if a[hi] < a[lo]:
            a[hi], a[lo] = a[lo], a[hi]
        if a[hi] < a[mid]:
            a[hi], a[mid] = a[mid], a[hi]
        pivot, i, j = a[mid], lo, hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while pivot < a[j]:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i, j = i + 1, j - 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            break
    return a[k]


@njit(**_JIT)
def _group_medians(values: np.ndarray, group: np.ndarray, n: int) -> np.ndarray:
    """Median (:func:`_median`) of ``values`` per group (codes ``0 <= group < n``; NaN without a value): the
    values gathered by group once (a counting sort), each group's median taken in place."""
    starts = np.zeros(n + 1, dtype=np.int64)
    for k in range(len(group)):
        starts[group[k] + 1] += 1
    for g in range(n):
        starts[g + 1] += starts[g]
    at, gathered = starts[:-1].copy(), np.empty(len(values))
    for k in range(len(group)):
        gathered[at[group[k]]] = values[k]
        at[group[k]] += 1
    out = np.empty(n)
    for g in range(n):
        out[g] = _median(gathered[starts[g] : starts[g + 1]])
    return out


def _backfit_passes(
    y: np.ndarray, cond: np.ndarray, out: np.ndarray, n_c: int, starts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The passes of :func:`_backfit` over wells ordered by plate (``starts``: where each plate's wells begin;
    ``out``: 1.0 on the edge, else 0.0). Each pass: this pass's condition means from the sums of the last
    (:func:`_next_means`), then per plate its residuals, gain and edge term (:func:`_plate_update`), its Huber
    weights and its wells' weighted deviations (:func:`_plate_passes`; the plates are independent there: two
    threads take a half of the wells each, numba releasing the GIL), then the deviations and weights added to
    their conditions' sums in row order (:func:`_add_sums`): each grouped sum adds its wells in order from 0.0,
    as ``numpy.bincount(group, weights)``, whatever the threads. A condition's numbers sit together (``by_cond``
    row: the sums of the weighted deviations and of the weights for the next pass, the mean and the weight for
    this pass)."""
    n, n_p = len(y), len(starts) - 1
    a, e, w, r, dev = np.zeros(n_p), np.zeros(n_p), np.ones(n), np.empty(n), y.copy()
    by_cond, medians = np.zeros((n_c, 4)), np.full(n_p, np.nan)  # each plate's median z in the pass before
    _add_sums(cond, w, dev, by_cond)  # the sums of the first pass: y, weight 1 (no plate terms yet)
    size = int(np.max(starts[1:] - starts[:-1])) if n_p else 0
    cut = int(np.searchsorted(starts, n // 2)) if n >= _THREAD_WELLS and _N_THREADS > 1 else 0
    halves = [(lo, hi, np.empty((2, size))) for lo, hi in ((0, cut), (cut, n_p)) if hi > lo]  # a z per half
    with ThreadPoolExecutor(len(halves)) as pool:
        for i in range(N_PASSES):
            _next_means(by_cond)
            huber = i >= N_PASSES // 3  # no Huber weights in the first third of the passes
            args = (y, cond, out, w, by_cond, r, a, e, dev, starts, medians, huber, HUBER_K)
            list(pool.map(lambda half: _plate_passes(*args, *half), halves))  # noqa: B023 (used at once)
            _add_sums(cond, w, dev, by_cond)
    return _final(r, w, a, cond, by_cond, starts)


_THREAD_WELLS = 20_000  # fewer wells: one thread
_N_THREADS = min(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


@njit(**_JIT)
def _next_means(by_cond):
    """This pass's condition means and weights from the sums of the last; the sums start again from 0.0."""
    for c in range(by_cond.shape[0]):
        by_cond[c, 2], by_cond[c, 3] = by_cond[c, 0] / by_cond[c, 1], by_cond[c, 1]
        by_cond[c, 0], by_cond[c, 1] = 0.0, 0.0


@njit(nogil=True, **_JIT)
def _plate_passes(y, cond, out, w, by_cond, r, a, e, dev, starts, medians, huber, k_huber, p_lo, p_hi, z):
    """One pass over the plates ``p_lo:p_hi`` (reading ``by_cond[:, 2:]`` only): each plate's gain and edge
    term, its Huber weights if ``huber``, and its wells' weighted deviations ``dev`` (``z``: a buffer)."""
    for p in range(p_lo, p_hi):
        lo, hi = starts[p], starts[p + 1]
        a[p], e[p] = _plate_update(y, cond, out, w, by_cond, r, lo, hi)
        bound = 0.0
        if huber:
            bound = _huber_bound(r, w, cond, out, by_cond, a[p], e[p], lo, hi, z, medians[p:], k_huber)
        for k in range(lo, hi):
            if huber:
                w[k] = bound / z[0, k - lo] if z[0, k - lo] > bound else 1.0
            dev[k] = w[k] * (y[k] - a[p] - e[p] * out[k])


@njit(**_JIT)
def _add_sums(cond, w, dev, by_cond):
    """The weighted deviations and the weights of the wells added to their conditions' sums, in row order."""
    for k in range(len(cond)):
        by_cond[cond[k], 0] += dev[k]
        by_cond[cond[k], 1] += w[k]


@njit(**_JIT)
def _final(r, w, a, cond, by_cond, starts):
    """The residuals less the plate gain, and each well's leverage (its weight over its condition's sum)."""
    resid, leverage = np.empty(len(r)), np.empty(len(r))
    for p in range(len(starts) - 1):
        for k in range(starts[p], starts[p + 1]):
            resid[k] = r[k] - a[p]
            leverage[k] = w[k] / by_cond[cond[k], 1]  # the sums of the final weights
    return resid, w, leverage


@njit(**_JIT)
def _plate_update(y, cond, out, w, by_cond, r, lo, hi):
    """The residuals ``r`` of the wells ``lo:hi`` of a plate from their condition means (``by_cond[:, 2]``)
    and the plate's gain (interior mean of ``r``, the edge mean on a plate without interior) and edge term
    (edge less interior mean, 0 where a side is empty)."""
    s_in, w_in, s_out, w_out = 0.0, 0.0, 0.0, 0.0
    for k in range(lo, hi):
        r[k] = y[k] - by_cond[cond[k], 2]
        wk_in, wk_out = w[k] * (1.0 - out[k]), w[k] * out[k]
        s_in += wk_in * r[k]
        w_in += wk_in
        s_out += wk_out * r[k]
        w_out += wk_out
    a_in, a_out = s_in / w_in, s_out / w_out  # numpy's rules: inf, or NaN for 0 / 0
    return (_nan_to_num(a_out) if np.isnan(a_in) else a_in), _nan_to_num(a_out - a_in)


@njit(**_JIT)
def _huber_bound(r, w, cond, out, by_cond, a, e, lo, hi, z, median, k_huber):
    """The Huber bound of a plate (``k_huber`` robust SDs of its residuals standardized by their leverage;
    ``by_cond[:, 3]``: the conditions' weights), its wells' standardized residuals left in ``z[0]``; the
    median of the pass before in ``median[0]`` (NaN if none), replaced by this pass's."""
    for k in range(lo, hi):
        resid = r[k] - a - e * out[k]
        one_less = 1.0 - w[k] / by_cond[cond[k], 3]
        z[0, k - lo] = np.abs(resid) / np.sqrt(one_less if not one_less < 1e-12 else 1e-12)  # NaN stays NaN
    median[0] = _median_near(z[0, : hi - lo], median[0], z[1])
    return k_huber * (1.4826 * median[0])


@njit(**_JIT)
def _median_near(values, guess, buffer):
    """:func:`_median` of ``values`` (left as they are; ``buffer`` as long), found among the values within 2%
    of ``guess`` (>= 0) when the middle ones are among them (the middle values, hence the median, are the
    same whichever values they are selected from), else among all."""
    m, below, inside = 0, 0, 0
    lower, upper = guess * 0.98, guess * 1.02
    for v in values:  # NaN: in none of the counts
        m += 0 if np.isnan(v) else 1
        below += 1 if v < lower else 0
        buffer[inside] = v
        inside += 1 if lower <= v <= upper else 0
    k = m // 2
    if m > 0 and below <= (k if m % 2 == 1 else k - 1) and k < below + inside:
        high = _select(buffer, inside, k - below)  # buffer[: k - below]: the values below it
        if m % 2 == 1:
            return high
        low = buffer[0]
        for j in range(1, k - below):
            low = max(low, buffer[j])
        return (high + low) / 2
    buffer[: len(values)] = values
    return _median(buffer[: len(values)])


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
    median (the residual grid is centred per plate already). Compiled, plate by plate; each median is
    :func:`nanmedian`'s (an all-NaN row or column has no effect)."""
    grid = np.asarray(grid, dtype=np.float64)
    return _polish(np.ascontiguousarray(grid), n_iter)


@njit(**_JIT)
def _middle(buffer: np.ndarray, m: int) -> float:
    """:func:`nanmedian` of the ``m`` non-NaN values at the start of ``buffer`` (reordered): the two middle
    values of the sorted ones added and halved (:func:`_select` finds them)."""
    if m == 0:
        return np.nan
    high = _select(buffer, m, m // 2)
    low = high
    if m % 2 == 0:
        low = buffer[0]
        for k in range(1, m // 2):
            low = max(low, buffer[k])
    return (low + high) / 2.0


@njit(**_JIT)
def _sweep(mat, effect, buffer):
    """One median-polish sweep over the rows of ``mat`` (a plate, or its transpose for the columns): each row's
    median of the present values taken out of the row and added to its effect. Returns whether anything
    changed: not when every median is +0.0 (an effect is never -0.0, so adding +0.0 keeps it)."""
    n_rows, n_cols = mat.shape
    changed = False
    for i in range(n_rows):
        m = 0
        for j in range(n_cols):
            if not np.isnan(mat[i, j]):
                buffer[m] = mat[i, j]
                m += 1
        r = _nan_to_num(_middle(buffer, m))
        if r != 0.0 or math.copysign(1.0, r) < 0.0:
            mat[i, :] -= r
            effect[i] += r
            changed = True
    return changed


@njit(**_JIT)
def _polish(grid, n_iter):
    n_plates, n_rows, n_cols = grid.shape
    resid = grid.copy()
    row_eff, col_eff = np.zeros((n_plates, n_rows)), np.zeros((n_plates, n_cols))
    buffer = np.empty(max(n_rows, n_cols))
    for p in range(n_plates):
        for _ in range(n_iter):
            rows = _sweep(resid[p], row_eff[p], buffer)
            if not _sweep(resid[p].T, col_eff[p], buffer) and not rows:
                break  # a sweep of rows and columns that changed nothing: the later ones change nothing either
    return row_eff, col_eff, resid


@njit(**_JIT)
def _plate_mad(resid):
    """Per plate: 1.4826 x the median absolute deviation of its residuals from their median (NaN ignored)."""
    mad = np.empty(resid.shape[0])
    buffer = np.empty(resid.shape[1] * resid.shape[2])
    for p in range(resid.shape[0]):
        flat = resid[p].ravel()
        m = 0
        for v in flat:
            if not np.isnan(v):
                buffer[m] = v
                m += 1
        centre = _middle(buffer, m)
        m = 0
        for v in flat:
            d = np.abs(v - centre)
            if not np.isnan(d):
                buffer[m] = d
                m += 1
        mad[p] = 1.4826 * _middle(buffer, m)
    return mad


def nanmedian(values: np.ndarray, *, axis: int | tuple[int, ...]) -> np.ndarray:
    """``numpy.nanmedian`` along ``axis`` (the same numbers: the two middle values of the sorted non-NaN ones
    added and halved; NaN for an all-NaN slice, without a warning), by one sort instead of numpy's masked-array
    path for short slices."""
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    axes = tuple(a % values.ndim for a in axes)
    kept = [a for a in range(values.ndim) if a not in axes]
    size = int(np.prod([values.shape[a] for a in axes]))  # not -1: a slice of an empty array has a size
    flat = np.transpose(values, [*kept, *axes]).reshape([values.shape[a] for a in kept] + [size])
    ordered = np.sort(flat, axis=-1)  # NaN last
    n = np.count_nonzero(~np.isnan(ordered), axis=-1)[..., None]
    high = np.minimum(n // 2, max(ordered.shape[-1] - 1, 0))
    low = np.where(n % 2 == 1, high, np.maximum(high - 1, 0))
    with np.errstate(invalid="ignore"):
        middle = (np.take_along_axis(ordered, low, -1) + np.take_along_axis(ordered, high, -1)) / 2.0
    return np.where(n == 0, np.nan, middle)[..., 0]


def _with_polish(table: pd.DataFrame) -> pd.DataFrame:
    if not len(table):
        return table.assign(
            **{
                ROW_EFFECT: np.nan,
                COL_EFFECT: np.nan,
                B_SCORE: np.nan,
                SHRUNK_ROW: np.nan,
                SHRUNK_COL: np.nan,
            }
        ).drop(columns="_plate")
    grid = _grid(table)
    row_eff, col_eff, resid = median_polish(grid)
    p, r, c = table["_plate"].to_numpy(int), table["row"].to_numpy(int) - 1, table["col"].to_numpy(int) - 1
    mad = _plate_mad(resid)
    with np.errstate(all="ignore"):
        table[ROW_EFFECT] = row_eff[p, r]
        table[COL_EFFECT] = col_eff[p, c]
        table[B_SCORE] = resid[p, r, c] / np.where(mad > 0, mad, np.nan)[p]
    present = ~np.isnan(grid)
    shrunk_rows = _shrunk(row_eff, present.sum(axis=2), mad)
    shrunk_cols = _shrunk(col_eff, present.sum(axis=1), mad)
    table[SHRUNK_ROW], table[SHRUNK_COL] = shrunk_rows[p, r], shrunk_cols[p, c]
    return table.drop(columns="_plate")


def _shrunk(effects: np.ndarray, counts: np.ndarray, mad: np.ndarray) -> np.ndarray:
    """Row (or column) effects of each plate shrunk towards 0 by their reliability (empirical Bayes): effect x
    tau^2 / (tau^2 + se^2), with se^2 = (1.2533 MAD)^2 / n the sampling variance of a median of n residuals
    and tau^2 the plate's spread of the effects beyond it (0 on a plate without position effects: no
    correction adds noise there)."""
    with np.errstate(all="ignore"):
        se2 = np.where(counts > 0, (1.2533 * np.nan_to_num(mad)[:, None]) ** 2 / counts, np.inf)
        seen = counts > 0
        n_seen = np.maximum(seen.sum(axis=1), 1)
        spread = (np.where(seen, effects**2, 0.0).sum(axis=1) - np.where(seen, se2, 0.0).sum(axis=1)) / n_seen
        tau2 = np.clip(spread, 0.0, None)[:, None]
        factor = np.where(seen & (tau2 + se2 > 0), tau2 / (tau2 + se2), 0.0)
    return effects * factor


def _edge_information(
    plate: np.ndarray, cond: np.ndarray, w: np.ndarray, edge: np.ndarray, n: int
) -> np.ndarray:
    """Per plate: the information (1 / variance, in units of the residual variance) of its edge term once the
    condition means and the plate gain are taken out: the Schur complement ``vv - uv^2 / uu`` of the weighted
    cross-products of the plate's columns (u: on the plate, v: on its edge) projected off the condition
    columns (per condition: ``sum x y - sum x sum y / W``)."""
    cp = pd.factorize(plate.astype(np.int64) * (int(cond.max()) + 1) + cond, sort=True)[0]
    n_cp = np.bincount(cp, weights=w)
    m_cp = np.bincount(cp, weights=w * edge)
    first = np.zeros(len(n_cp), dtype=np.int64)
    first[cp[::-1]] = np.arange(len(cp))[::-1]
    w_c = np.bincount(cond, weights=w)[cond[first]]
    p = plate[first]
    uu = np.bincount(p, weights=n_cp - n_cp**2 / w_c, minlength=n)
    uv = np.bincount(p, weights=m_cp - n_cp * m_cp / w_c, minlength=n)
    vv = np.bincount(p, weights=m_cp - m_cp**2 / w_c, minlength=n)
    with np.errstate(divide="ignore", invalid="ignore"):
        return vv - uv**2 / uu


def edge_effects(positions: pd.DataFrame) -> pd.DataFrame:
    """Per plate: ``edge_effect`` (edge over interior, a ratio), its log-scale SE and the wells on each side.

    ``log edge_effect`` is the weighted mean residual of the edge wells less that of the interior wells (the
    backfitted edge term of :func:`well_positions`); its SE is ``s sqrt(1/I_edge + 1/I_interior)``, ``I`` the
    sum of weight x (1 - leverage) of a side (what a well tells about position once its condition's mean is
    taken out) and ``s`` the plate's residual SD (weighted squares over that sum)."""
    used = positions[positions[WEIGHT].astype(float) > 0] if WEIGHT in positions else positions.iloc[:0]
    if not len(used):
        return pd.DataFrame(columns=[*PLATE_KEY, EDGE_EFFECT, EDGE_EFFECT_SE, N_EDGE, N_INTERIOR])
    plate, firsts = run_codes(used, PLATE_KEY)  # the wells of a plate are together (well_positions' order)
    columns = {k: used[k].to_numpy(float) for k in (RESIDUAL, WEIGHT, LEVERAGE, "edge")}
    return _edge_table(columns, plate, key_table(firsts))


def _edge_table(columns: dict[str, np.ndarray], plate: np.ndarray, keys: pd.DataFrame) -> pd.DataFrame:
    """:func:`edge_effects` of the used wells (``columns``: their residual, weight, leverage and edge flag, in
    the order of :func:`well_positions`) on plates ``plate`` (row ``i`` of ``keys``: the key of plate ``i``):
    one row per plate with a used well, in the order of ``keys``."""
    if not len(plate):
        return pd.DataFrame(columns=[*PLATE_KEY, EDGE_EFFECT, EDGE_EFFECT_SE, N_EDGE, N_INTERIOR])
    n = len(keys)
    r, w = columns[RESIDUAL], columns[WEIGHT]
    info = w * (1.0 - columns[LEVERAGE])
    edge = columns["edge"] == 1.0
    means = {side: _means(plate, r, np.where(edge == side, w, 0.0), n) for side in (0, 1)}
    log_edge = means[True] - means[False]
    rest = r - np.where(edge, means[True][plate], means[False][plate])
    with np.errstate(divide="ignore", invalid="ignore"):
        s2 = np.bincount(plate, weights=w * rest**2, minlength=n) / np.bincount(
            plate, weights=info, minlength=n
        )
        i_side = {
            side: np.bincount(plate, weights=np.where(edge == side, info, 0.0), minlength=n)
            for side in (0, 1)
        }
        se = np.sqrt(s2 * (1.0 / i_side[True] + 1.0 / i_side[False]))
    counts = {side: np.bincount(plate, weights=(edge == side).astype(float), minlength=n) for side in (0, 1)}
    present = np.bincount(plate, minlength=n) > 0
    if not present.all():
        keys = keys[present].reset_index(drop=True)
    return keys.assign(
        **{
            EDGE_EFFECT: np.exp(log_edge)[present],
            EDGE_EFFECT_SE: np.where(np.isfinite(se), se, np.nan)[present],
            N_EDGE: counts[True].astype("int64")[present],
            N_INTERIOR: counts[False].astype("int64")[present],
        }
    )
