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
from scipy import stats

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


# ------------------------------------------------------------------------------ model misfit (lack of fit)
MISFIT = "_misfit_factor"  # variance factor of a curve's intervals for model misfit (>= 1)


def _pure_error(responses: pd.DataFrame, divisors: dict[str, float]) -> pd.DataFrame:
    """Per curve key and scale: pure-error sum of squares (replicate wells about their dose mean), wells and
    doses. One grouping of the drug rows for every scale; the sums run over each dose's values in sorted
    order (as :func:`doseatlas._stats.group_summary`), so they do not depend on the order of the rows."""
    drugs = responses[responses[S.PERTURBATION_TYPE] == S.PerturbationType.DRUG]
    drugs = drugs.rename(columns={S.TIME_H: S.DURATION_H})
    key = list(S.CURVE_KEY)
    grouped = drugs.groupby([*key, S.CONCENTRATION], dropna=False, sort=True)
    dose = grouped.ngroup().to_numpy()
    doses = grouped.size().index.to_frame(index=False)
    per_curve = doses.groupby(key, dropna=False, sort=True)
    curve_of_dose = per_curve.ngroup().to_numpy()
    curves = per_curve.size().index.to_frame(index=False)
    n_dose, n_curve = len(doses), len(curves)
    parts = []
    for scale, divisor in divisors.items():
        if scale not in drugs:
            continue
        y = drugs[scale].to_numpy(dtype=float, na_value=np.nan) / divisor
        ok = np.isfinite(y)
        order = np.lexsort((y[ok], dose[ok]))
        d, v = dose[ok][order], y[ok][order]
        count = np.bincount(d, minlength=n_dose)
        mean = np.bincount(d, weights=v, minlength=n_dose) / np.maximum(count, 1)
        with np.errstate(over="ignore"):  # responses near 1e300 (refused later as non-finite fits) overflow
            ss = np.bincount(d, weights=(v - mean[d]) ** 2, minlength=n_dose)
        parts.append(
            curves.assign(
                **{
                    S.SCALE: scale,
                    "_ss_pe": np.bincount(curve_of_dose, weights=ss, minlength=n_curve),
                    "_n_wells": np.bincount(curve_of_dose, weights=count, minlength=n_curve),
                    "_n_doses": np.bincount(curve_of_dose, weights=count > 0, minlength=n_curve),
                }
            )
        )
    return pd.concat(parts, ignore_index=True) if parts else None


def misfit_factors(responses: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """Per ``curve_id``: :data:`MISFIT`, the lack-of-fit variance factor of the curve's intervals.

    A fitted curve's covariance ``s^2 (J'J)^-1`` takes every well as an independent error. When the curve does
    not have the true shape (the 4-parameter sigmoid against a population model), the replicate wells of a dose
    share the misfit, so the dose means scatter about the curve more than the wells scatter about their means.
    The lack-of-fit mean square ``MS_LOF = (RSS - SS_PE) / (k - p)`` (``SS_PE``: replicate wells about their dose
    means, ``k`` doses, ``p`` free parameters) is then the residual variance of a fit that takes the dose as the
    unit of replication (the pure-error vs lack-of-fit F test, e.g. Draper & Smith, Applied Regression Analysis,
    ch. 2.1). Where ``MS_LOF`` exceeds the pooled ``RSS / (n - p)``, the covariance is scaled by
    ``MS_LOF / (RSS / (n - p))`` times ``(t(k - p) / t(n - p))^2``: the variance is then estimated from ``k - p``
    degrees of freedom, and the interval's t quantile (taken with ``n - p`` downstream) is the one of that
    estimate. Never narrower than the fit's own interval; 1 where the dose means scatter no more than the wells
    predict, where a curve has no replicate, or no degree of freedom for lack of fit (``k <= p``).
    """
    from doseatlas.fit.models import MODELS
    from doseatlas.fit.table import SCALE_DIVISOR

    pe = _pure_error(responses, SCALE_DIVISOR) if len(responses) else None
    if pe is None or not len(curves) or "rss" not in curves:
        return pd.DataFrame({S.CURVE_ID: curves.get(S.CURVE_ID, pd.Series(dtype=object)), MISFIT: 1.0})
    joined = S.with_series(curves).merge(pe, on=[*S.CURVE_KEY, S.SCALE], how="left")
    n_free = joined["model"].map({k: m.n_free for k, m in MODELS.items()}).fillna(4).to_numpy(float)
    rss, ss_pe = joined["rss"].to_numpy(float), joined["_ss_pe"].to_numpy(float)
    n, k = joined["_n_wells"].to_numpy(float), joined["_n_doses"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (np.maximum(rss - ss_pe, 0.0) / (k - n_free)) / (rss / (n - n_free))
    usable = np.isfinite(ratio) & (k > n_free) & (n > k) & (joined["selected"].to_numpy() != "flat")
    with np.errstate(divide="ignore", invalid="ignore"):
        tq = (
            stats.t.ppf(0.975, np.maximum(k - n_free, 1)) / stats.t.ppf(0.975, np.maximum(n - n_free, 1))
        ) ** 2
    factor = np.where(usable & (ratio > 1.0), ratio * tq, 1.0)
    return pd.DataFrame({S.CURVE_ID: joined[S.CURVE_ID], MISFIT: factor})


def with_misfit(responses: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """``curves`` with every covariance and standard error scaled by the :func:`misfit_factors` of its curve
    and the parameter and EC50 intervals widened about their estimates by the factor's square root."""
    if S.CURVE_ID not in curves or not len(curves):
        return curves
    factors = misfit_factors(responses, curves).dropna(subset=[S.CURVE_ID]).drop_duplicates(S.CURVE_ID)
    f = curves[S.CURVE_ID].map(factors.set_index(S.CURVE_ID)[MISFIT]).fillna(1.0).to_numpy(float)
    root = np.sqrt(f)
    out = curves.copy()
    for column in [c for c in out.columns if c.startswith("cov_")]:
        out[column] = out[column].to_numpy(float) * f
    for name in ("top", "bottom", "log10_ec50", "hill", "ec50"):
        if f"{name}_se" in out:
            out[f"{name}_se"] = out[f"{name}_se"].to_numpy(float) * root
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for name in ("top", "bottom", "hill"):
            if {name, f"{name}_lower", f"{name}_upper"} <= set(out.columns):
                v = out[name].to_numpy(float)
                out[f"{name}_lower"] = v - (v - out[f"{name}_lower"].to_numpy(float)) * root
                out[f"{name}_upper"] = v + (out[f"{name}_upper"].to_numpy(float) - v) * root
        if {"log10_ec50", "ec50_lower", "ec50_upper"} <= set(out.columns):
            x = out["log10_ec50"].to_numpy(float)
            out["ec50_lower"] = 10.0 ** (x - (x - np.log10(out["ec50_lower"].to_numpy(float))) * root)
            out["ec50_upper"] = 10.0 ** (x + (np.log10(out["ec50_upper"].to_numpy(float)) - x) * root)
    return out
