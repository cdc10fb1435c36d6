"""Seeding density: how a metric moves when the same curve was measured at several densities.

Seeding density is part of the curve key (:data:`doseatlas.schemas.CURVE_KEY`), so each density is its own curve.
Where a data set measured a cell line x perturbagen (same readout, duration and series) at two or more
densities, :func:`density_shifts` tabulates, per metric, the value at the lowest and at the highest density
and the shift between them: on log10 for concentrations (a shift of 0.3 is a two-fold change), as a
difference otherwise. Only estimated values on both sides give a shift (censored and refused ones are
counted, not compared). Pure and vectorized.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from doseatlas import schemas as S
from doseatlas.metrics.registry import MOLAR, REGISTRY

PAIR_KEY: list[str] = [k for k in S.CURVE_KEY if k != S.SEEDING_DENSITY]
LOW, HIGH = "low_density", "high_density"
SHIFT = "shift"
SHIFT_SCALE = "shift_scale"  # log10 or difference
COLUMNS = [*PAIR_KEY, S.METRIC, LOW, HIGH, "low_value", "high_value", SHIFT, SHIFT_SCALE]


def density_shifts(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per (curve key without the density, metric) estimated at two or more densities: the value at
    the lowest and at the highest and the shift (high minus low; log10 for concentrations)."""
    if S.SEEDING_DENSITY not in metrics or not len(metrics):
        return pd.DataFrame(columns=COLUMNS)
    est = metrics[(metrics[S.STATUS] == S.MetricStatus.ESTIMATED.value) & metrics[S.SEEDING_DENSITY].notna()]
    est = S.with_series(est)
    key = [*PAIR_KEY, S.METRIC]
    ordered = est.sort_values([*key, S.SEEDING_DENSITY], kind="stable")
    grouped = ordered.groupby(key, dropna=False, sort=True)
    several = (grouped[S.SEEDING_DENSITY].transform("nunique") > 1).to_numpy()
    ordered = ordered[several]
    if not len(ordered):
        return pd.DataFrame(columns=COLUMNS)
    grouped = ordered.groupby(key, dropna=False, sort=True)
    low, high = grouped.head(1).reset_index(drop=True), grouped.tail(1).reset_index(drop=True)
    molar = low[S.METRIC].map(lambda m: REGISTRY[m].unit == MOLAR if m in REGISTRY else False).to_numpy(bool)
    lv, hv = low[S.VALUE].to_numpy(float), high[S.VALUE].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(molar, np.log10(hv) - np.log10(lv), hv - lv)
    out = low[key].assign(
        **{
            LOW: low[S.SEEDING_DENSITY].to_numpy(float),
            HIGH: high[S.SEEDING_DENSITY].to_numpy(float),
            "low_value": lv,
            "high_value": hv,
            SHIFT: shift,
            SHIFT_SCALE: np.where(molar, "log10", "difference"),
        }
    )
    return out[COLUMNS]
