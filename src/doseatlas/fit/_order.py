"""Compiled helper of the curve table's preparation (:mod:`doseatlas.fit.table`): the points of every curve in
their canonical order (dose, then response) without a full sort per response scale.

The rows are sorted once by (curve, dose); each response scale then only orders the runs of equal (curve, dose)
by response, which are short (the replicates of one dose).
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: runs longer than this are ordered by a merge sort instead of an insertion sort
_INSERTION_MAX = 24


@njit(cache=True)
def _before(a, b):
    """``a`` sorts strictly before ``b``: ascending, NaN last (numpy's order)."""
    return not np.isnan(a) and (np.isnan(b) or a < b)


@njit(cache=True)
def _insertion(out, lo, hi, y):
    """Stable insertion sort of ``out[lo:hi]`` by ``y[out[i]]``."""
    for i in range(lo + 1, hi):
        item = out[i]
        key = y[item]
        j = i - 1
        while j >= lo and _before(key, y[out[j]]):
            out[j + 1] = out[j]
            j -= 1
        out[j + 1] = item


@njit(cache=True)
def _merge(out, lo, hi, y):
    """Stable sort of ``out[lo:hi]`` by ``y[out[i]]``: the non-NaN values by a merge sort, then the NaN ones in
    their order."""
    rows = out[lo:hi].copy()
    values = np.empty(hi - lo)
    nan_rows = np.empty(hi - lo, dtype=rows.dtype)
    m = 0
    k = 0
    for i in range(hi - lo):
        v = y[rows[i]]
        if np.isnan(v):
            nan_rows[k] = rows[i]
            k += 1
        else:
            values[m] = v
            rows[m] = rows[i]
            m += 1
    ranked = np.argsort(values[:m], kind="mergesort")
    for i in range(m):
        out[lo + i] = rows[ranked[i]]
    for i in range(k):
        out[lo + m + i] = nan_rows[i]


@njit(cache=True)
def sort_runs(order, bounds, y):
    """``order`` (row numbers) with each run ``order[bounds[r]:bounds[r + 1]]`` stably sorted by ``y`` of its
    rows (ascending, NaN last): what ``numpy.lexsort((y, *keys))`` gives when ``order`` is the stable sort of
    the rows by ``keys`` and the runs are its groups of equal keys."""
    out = order.copy()
    for r in range(bounds.size - 1):
        lo, hi = bounds[r], bounds[r + 1]
        if hi - lo <= _INSERTION_MAX:
            _insertion(out, lo, hi, y)
        else:
            _merge(out, lo, hi, y)
    return out
