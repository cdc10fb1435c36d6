"""The drug rows of a responses table grouped by (curve, tested concentration) once, for every grouped step of
the metrics that works per dose: replicate means (:class:`doseatlas.metrics.compute.DoseMeans`), the pure error
of the misfit factor and the dose-clustered sandwich (:mod:`doseatlas.metrics.uncertainty`).

The rows are sorted once by (curve, concentration); each response scale then only orders the runs of equal
(curve, concentration) by its response (:func:`doseatlas.fit._order.sort_runs`: the replicates of a dose, a few
rows each) instead of sorting all the rows by three keys again. The sums below run over each dose's rows in that
order, as ``numpy.bincount`` over ``np.lexsort((y, concentration, curve))`` ran them, so they are the same to the
bit (equal keys and equal responses are interchangeable: every summed quantity is a function of them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numba import njit

from doseatlas.fit._order import sort_runs


@dataclass(frozen=True)
class DoseRuns:
    """Drug rows grouped by (curve, concentration).

    Attributes
    ----------
    rows
        Position of each drug row in the responses table (the rows that ``order`` numbers).
    keys
        The curve key table (row ``c``: the key of curve code ``c``).
    order
        The drug rows (``0 .. len(rows) - 1``) sorted by curve code, then concentration (missing last), stable.
    bounds
        ``order[bounds[d]:bounds[d + 1]]`` are the rows of dose ``d``.
    dose
        Dose number of each place of ``order`` (non-decreasing).
    curve, concentration
        Curve code and concentration of each dose (the concentration as ``pandas.factorize`` gives it).
    log_distinct
        No two tested concentrations share a finite log10: the doses with a finite log10 are then the groups of
        equal (curve, log10 concentration) too.
    """

    rows: np.ndarray
    keys: pd.DataFrame
    order: np.ndarray
    bounds: np.ndarray
    dose: np.ndarray
    curve: np.ndarray
    concentration: np.ndarray
    log_distinct: bool

    @classmethod
    def of(
        cls, codes: np.ndarray, concentration: np.ndarray, *, rows: np.ndarray, keys: pd.DataFrame
    ) -> DoseRuns:
        """The runs of the drug rows with curve ``codes`` (positions in ``keys``) and ``concentration``."""
        codes = np.asarray(codes, dtype=np.int64)
        conc_code, uniques = pd.factorize(
            np.asarray(concentration, dtype=float), sort=True, use_na_sentinel=True
        )
        uniques = np.asarray(uniques, dtype=float)
        width = len(uniques) + 1
        combined = codes * width + np.where(conc_code < 0, len(uniques), conc_code)
        order = np.argsort(combined, kind="stable")
        ordered = combined[order]
        new = np.ones(len(ordered), dtype=bool)
        new[1:] = ordered[1:] != ordered[:-1]
        starts = np.flatnonzero(new)
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log10(uniques[uniques > 0])
        return cls(
            rows=np.asarray(rows),
            keys=keys,
            order=order,
            bounds=np.append(starts, len(ordered)),
            dose=np.cumsum(new) - 1,
            curve=ordered[starts] // width,
            concentration=np.append(uniques, np.nan)[ordered[starts] % width],
            log_distinct=bool(np.all(np.diff(logs[np.isfinite(logs)]) > 0)),
        )

    @property
    def n_doses(self) -> int:
        return len(self.curve)

    def sorted_by(self, y: np.ndarray) -> np.ndarray:
        """The drug rows sorted by curve, concentration and ``y`` (per drug row; NaN last within a dose)."""
        return sort_runs(self.order, self.bounds, np.asarray(y, dtype=np.float64))


def renumbered(dose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense numbers of a non-decreasing array of dose numbers (a subset of the places of a :class:`DoseRuns`):
    (number per entry, first entry of each number)."""
    new = np.ones(len(dose), dtype=bool)
    new[1:] = dose[1:] != dose[:-1]
    return np.cumsum(new) - 1, np.flatnonzero(new)


@njit(cache=True)
def cross_products(codes, pair, jac, n):
    """Per curve, ``sum J_a J_b`` over its rows (``jac`` per pair of the row, ``pair``; the curve ``codes``), in
    the order of the rows: ``np.bincount(codes, weights=jac[pair, a] * jac[pair, b], minlength=n)`` for every
    ``a <= b``, mirrored."""
    out = np.zeros((n, 4, 4))
    for i in range(codes.size):
        c, p = codes[i], pair[i]
        for a in range(4):
            for b in range(a, 4):
                out[c, a, b] += jac[p, a] * jac[p, b]
    for a in range(4):
        for b in range(a + 1, 4):
            out[:, b, a] = out[:, a, b]
    return out
