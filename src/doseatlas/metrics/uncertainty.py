"""Uncertainty of the plate controls carried into the metric intervals (issue 14, docs/fitting.md).

Every response of a plate is divided by the same vehicle summary ``C`` (and, for GR and percent growth,
referred to the same time-zero summary ``x0``). Their estimation errors shift all the curves of a plate
together, which a per-curve fit cannot see in its residuals. Delta method over these shared terms: with
relative errors ``eC`` and ``e0`` (variances ``vC``, ``v0``), a crossing of ``level`` by the fitted curve is the
crossing of the true curve at ``level + dL`` with

* relative viability: ``dL = L eC``;
* GR (Hafner 2016, ``a = log2(L + 1)``, ``D = ln(C / x0)``): ``dL = (L + 1) ln2 / D ((1 - a) e0 + a eC)``;
* percent growth read on the GR curve (gi50, tgi, lc50): the level is the signal ``(1 - p) x0 + p C``
  (``p >= 0``) or ``(1 + p) x0`` (``p < 0``), so ``d ln x = w0 e0 + wC eC`` with those weights, and
  ``dL = (L_GR + 1) ln2 / D d ln x``.

The plateau (``einf``, ``grinf``) moves by the same ``dL`` at its own level. ``vC`` is the squared coefficient
of variation of the vehicle wells pooled over the plates of a data set, perturbagen and readout (per-plate
spreads from 3-6 wells are too noisy to use alone), times the variance factor of the control summary (1.2 for the
trimmed mean of 4 or more wells), divided by the number of vehicle wells and by the number of plates of the
curve. ``v0`` uses the same pooled coefficient of variation with the number of time-zero wells.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from doseatlas import schemas as S
from doseatlas._groups import first_code_rows, key_codes, n_distinct
from doseatlas._stats import summary_by_code

VAR_C = "_ctrl_var_c"  # relative variance of the vehicle summary of a curve
VAR_0 = "_ctrl_var_0"  # relative variance of the time-zero summary of a curve
LOG_GROWTH = "_ctrl_log_growth"  # D = ln(C / x0), natural log of the control's growth over the assay
TERMS = (VAR_C, VAR_0, LOG_GROWTH)
SUMMARY_VARIANCE_FACTOR = 1.2  # trimmed mean (interquartile mean) of normal data, relative to the mean
LN2 = np.log(2.0)
#: the columns of a normalized response row that the terms are made of (a table built by hand may lack them)
CONTROL_COLUMNS = (
    S.PLATE,
    S.VEHICLE_SIGNAL,
    S.VEHICLE_SPREAD,
    S.N_VEHICLE,
    S.N_TIME_ZERO,
    S.TIME_ZERO_SIGNAL,
)


def has_controls(responses: pd.DataFrame) -> bool:
    """Whether ``responses`` carries the plate-control summaries (:data:`CONTROL_COLUMNS`)."""
    return all(c in responses for c in CONTROL_COLUMNS)


def control_terms(
    responses: pd.DataFrame, *, coded: tuple[np.ndarray, pd.DataFrame] | None = None
) -> pd.DataFrame:
    """Per curve key: ``VAR_C``, ``VAR_0`` and ``LOG_GROWTH`` (NaN where a control is absent).

    ``coded``: the responses' curve keys as :func:`doseatlas._groups.key_codes` gives them (code per row, key
    table), when the caller has them already; the rows of the result are then those of the key table.
    """
    wells = responses.rename(columns={S.TIME_H: S.DURATION_H})
    key = list(S.CURVE_KEY)
    codes, keys = coded if coded is not None else key_codes(wells, key)
    c = _floats(wells, S.VEHICLE_SIGNAL)
    with np.errstate(divide="ignore", invalid="ignore"):
        cv2 = (_floats(wells, S.VEHICLE_SPREAD) / c) ** 2
    cv2 = np.where(np.isfinite(cv2), cv2, np.nan)
    plate = _plate_codes(wells[S.PLATE])
    # pooled over the plates of one perturbagen of a data set and readout: the scope that a partitioned run
    # (scale.py: metrics per (data set, perturbagen) bucket) sees whole, so both engines give the same value
    pool = [S.DATASET, S.PERTURBAGEN, S.READOUT]
    pool_of_key, pools = key_codes(keys, pool)  # each curve key lies in one pool (pool is part of the key)
    plate_scope, _ = key_codes(keys, [*pool, S.CELL_LINE, S.DURATION_H])
    first = first_code_rows(plate_scope[codes] * (int(plate.max()) + 1) + plate) if len(plate) else plate
    first = first[~np.isnan(cv2[first])]  # one row per plate of a cell line and duration with a spread
    pooled = _mean_where_any(pool_of_key[codes[first]], cv2[first], len(pools))[pool_of_key[codes]]
    n_vehicle, n_zero = _floats(wells, S.N_VEHICLE), _floats(wells, S.N_TIME_ZERO)
    factor_c = np.where(n_vehicle >= 4, SUMMARY_VARIANCE_FACTOR, 1.0)
    factor_0 = np.where(n_zero >= 4, SUMMARY_VARIANCE_FACTOR, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        vc = pooled * factor_c / np.where(n_vehicle > 0, n_vehicle, np.nan)
        v0 = pooled * factor_0 / np.where(n_zero > 0, n_zero, np.nan)
        d = np.log(c / _floats(wells, S.TIME_ZERO_SIGNAL))
    n = len(keys)
    n_plates = n_distinct(codes, plate, n)
    return keys.assign(
        **{
            VAR_C: summary_by_code(codes, vc, n, method="mean") / n_plates,
            VAR_0: summary_by_code(codes, v0, n, method="mean") / n_plates,
            LOG_GROWTH: summary_by_code(codes, d, n, method="mean"),
        }
    )


def _floats(table: pd.DataFrame, column: str) -> np.ndarray:
    return table[column].to_numpy(dtype=np.float64, na_value=np.nan)


def _plate_codes(plate: pd.Series) -> np.ndarray:
    """One code per distinct plate name (a missing name is a plate of its own, as its text ``nan`` was)."""
    text = plate if pd.api.types.infer_dtype(plate, skipna=True) == "string" else plate.astype(str)
    codes, uniques = pd.factorize(text, use_na_sentinel=True)
    return np.where(codes < 0, len(uniques), codes).astype(np.int64)


def _mean_where_any(codes: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """:func:`doseatlas._stats.summary_by_code` mean, NaN for a group without a value."""
    mean = summary_by_code(codes, values, n_groups, method="mean")
    return np.where(np.bincount(codes, minlength=n_groups) > 0, mean, np.nan)


def _gr_shift_variance(level: np.ndarray, w0: np.ndarray, wc: np.ndarray, curves: pd.DataFrame) -> np.ndarray:
    """Variance of dL on the GR scale for a level whose signal moves by ``w0 e0 + wC eC`` (log)."""
    v0, vc, d = (curves[k].to_numpy(float) for k in (VAR_0, VAR_C, LOG_GROWTH))
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (level + 1.0) * LN2 / d
        return slope**2 * (w0**2 * v0 + wc**2 * vc)


def level_variance(scale: str, level: np.ndarray, curves: pd.DataFrame, *, threshold=None) -> np.ndarray:
    """Variance of the effective level ``dL`` (see module docstring); 0 where no control term applies."""
    level = np.asarray(level, dtype=float)
    if not all(k in curves for k in TERMS):
        return np.zeros(len(curves))
    if scale == S.RELATIVE_VIABILITY:
        var = level**2 * curves[VAR_C].to_numpy(float)
    elif scale == S.GR:
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.log2(level + 1.0)
        var = _gr_shift_variance(level, 1.0 - a, a, curves)
    elif scale == S.PERCENT_GROWTH and threshold is not None and "_r0" in curves:
        r0 = curves["_r0"].to_numpy(float)
        p = float(threshold)
        rv_level = r0 + p * (1.0 - r0) if p >= 0 else (1.0 + p) * r0
        with np.errstate(divide="ignore", invalid="ignore"):
            w0 = (1.0 - p) * r0 / rv_level if p >= 0 else np.ones_like(r0)
            wc = p / rv_level if p >= 0 else np.zeros_like(r0)
        var = _gr_shift_variance(level, w0, wc, curves)
    else:
        return np.zeros(len(curves))
    return np.where(np.isfinite(var), var, 0.0)
