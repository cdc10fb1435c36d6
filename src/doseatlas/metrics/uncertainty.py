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
curve. ``v0`` uses the same pooled coefficient of variation with the number of time-zero wells, divided by the
number of distinct time-zero summaries of the curve (one per plate when each plate holds its time zero; one
when the time-zero plates of the cell line are pooled: that summary is shared by every plate of the curve).
A time-zero summary read on other plates than the treated wells also carries the plates' difference in signal
scale (plate gain), which the vehicle of the treated plate removes from ``C`` but not from ``x0``: ``v0`` gains
``2 vG / n_plates`` (the treated plates' own gains and, assumed one per plate set, the time-zero plates'),
``vG`` the between-plate variance of the log vehicle summaries of a cell line's plates beyond their sampling
variance, pooled as ``vC`` is.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from numba import njit

from doseatlas import schemas as S
from doseatlas._codes import first_code_rows, key_codes, n_distinct, same_values, sorted_key_codes
from doseatlas._stats import summary_by_code, t975
from doseatlas.metrics._doses import DoseRuns, cross_products, renumbered
from doseatlas.metrics._join import key_casts

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

    ``coded``: the responses' curve keys as :func:`doseatlas._codes.key_codes` gives them (code per row, key
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
    n_plates = _plates_per_code(codes, plate, n)
    # a time-zero summary pooled over the cell line's time-zero plates is one summary shared by every plate
    # of the curve: its error averages over the distinct summaries, not over the plates (issue 14)
    n_zero_summaries = np.maximum(n_distinct(codes, _floats(wells, S.TIME_ZERO_SIGNAL), n), 1)
    gain = _gain_variance(
        plate_scope[codes[first]], pool_of_key[codes[first]], c[first], vc[first], len(pools)
    )
    apart = _time_zero_apart(wells) * gain[pool_of_key[codes]]  # time zero read on other plates than x
    mean_c, mean_0, mean_d, mean_apart = summary_by_code(
        codes, np.stack([vc, v0, d, apart]), n, method="mean"
    )
    return keys.assign(
        **{
            VAR_C: mean_c / n_plates,
            VAR_0: mean_0 / n_zero_summaries + 2.0 * mean_apart / n_plates,
            LOG_GROWTH: mean_d,
        }
    )


def _plates_per_code(codes: np.ndarray, plate: np.ndarray, n: int) -> np.ndarray:
    """Distinct plates per curve code (:func:`doseatlas._codes.n_distinct` of the plate codes, which are
    dense and never missing)."""
    if not len(codes):
        return np.zeros(n, dtype=np.int64)
    width = int(plate.max()) + 1
    distinct = pd.unique(codes.astype(np.int64) * width + plate)  # (hashed: no sort needed for a count)
    return np.bincount(distinct // width, minlength=n)


def _gain_variance(
    scope: np.ndarray, pool: np.ndarray, vehicle: np.ndarray, sampling: np.ndarray, n_pools: int
) -> np.ndarray:
    """Per pool: the between-plate variance of the plates' signal scale (plate gain, log), from the vehicle
    summaries of the plates of one cell line and duration (``scope``; one entry per plate): their variance
    about the scope's mean less the variance of a summary from its wells (``sampling``, relative), pooled
    over the scopes of the pool with ``plates - 1`` degrees of freedom each; 0 where not positive."""
    ok = np.isfinite(vehicle) & (vehicle > 0) & np.isfinite(sampling)
    scope, pool, y, w = scope[ok], pool[ok], np.log(np.where(ok, vehicle, 1.0)[ok]), sampling[ok]
    if not len(y):
        return np.zeros(n_pools)
    n_scope = int(scope.max()) + 1
    count = np.bincount(scope, minlength=n_scope).astype(float)
    mean = np.bincount(scope, weights=y, minlength=n_scope) / np.maximum(count, 1.0)
    excess = (y - mean[scope]) ** 2 - w * (1.0 - 1.0 / count[scope])  # E[(y - mean)^2] = (1 - 1/m) var
    with np.errstate(divide="ignore", invalid="ignore"):
        var = np.bincount(pool, weights=excess, minlength=n_pools) / np.bincount(
            pool, weights=1.0 - 1.0 / count[scope], minlength=n_pools
        )
    return np.clip(np.nan_to_num(var), 0.0, None)


def _time_zero_apart(wells: pd.DataFrame) -> np.ndarray:
    """1.0 where a row's time-zero summary was read on other plates than the row (``time_zero_scope`` of
    :func:`doseatlas.normalize.normalize` not ``plate``), else 0.0 (also where the scope is not recorded)."""
    from doseatlas.normalize import T0_SCOPE

    if T0_SCOPE not in wells:
        return np.zeros(len(wells))
    scope = wells[T0_SCOPE]  # (compared in its own dtype: no Python string per row for text in arrow)
    return (scope.ne("plate") & scope.notna()).to_numpy(dtype=float)


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


def signal_weights(
    scale: str, level: np.ndarray, *, threshold=None, r0: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(w0, wC)`` of a GR ``level`` crossed by a signal ``x`` with ``d ln x = w0 e0 + wC eC`` (time-zero and
    vehicle errors): ``(1 - a, a)``, ``a = log2(level + 1)``, for the GR scale; for percent growth at
    ``threshold`` ``p`` with the growth ratio ``r0``, ``((1 - p) r0 / RV, p / RV)``, ``RV = r0 + p (1 - r0)``,
    where ``p >= 0``, else ``(1, 0)`` (the level lies below the time-zero signal)."""
    level = np.asarray(level, dtype=float)
    if scale == S.GR:
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.log2(level + 1.0)
        return 1.0 - a, a
    r0, p = np.asarray(r0, dtype=float), float(threshold)
    if p < 0:
        return np.ones_like(r0), np.zeros_like(r0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rv_level = r0 + p * (1.0 - r0)
        return (1.0 - p) * r0 / rv_level, p / rv_level


def signal_level_variance(
    level: np.ndarray, w0: np.ndarray, wc: np.ndarray, curves: pd.DataFrame
) -> np.ndarray:
    """Variance of ``dL`` on the GR scale for a GR ``level`` that is the crossing of a signal ``x`` with
    ``d ln x = w0 e0 + wC eC`` (:func:`signal_weights`; e.g. a metric converted to another duration,
    metrics/convert.py); 0 where no control term applies."""
    if not all(k in curves for k in TERMS):
        return np.zeros(len(curves))
    var = _gr_shift_variance(np.asarray(level, dtype=float), w0, wc, curves)
    return np.where(np.isfinite(var), var, 0.0)


def level_variance(scale: str, level: np.ndarray, curves: pd.DataFrame, *, threshold=None) -> np.ndarray:
    """Variance of the effective level ``dL`` (see module docstring); 0 where no control term applies."""
    level = np.asarray(level, dtype=float)
    if not all(k in curves for k in TERMS):
        return np.zeros(len(curves))
    if scale == S.RELATIVE_VIABILITY:
        var = level**2 * curves[VAR_C].to_numpy(float)
    elif scale == S.GR:
        var = _gr_shift_variance(level, *signal_weights(S.GR, level), curves)
    elif scale == S.PERCENT_GROWTH and threshold is not None and "_r0" in curves:
        weights = signal_weights(scale, level, threshold=threshold, r0=curves["_r0"].to_numpy(float))
        var = _gr_shift_variance(level, *weights, curves)
    else:
        return np.zeros(len(curves))
    return np.where(np.isfinite(var), var, 0.0)


# ------------------------------------------------------------------------------ model misfit (lack of fit)
MISFIT = "_misfit_factor"  # variance factor of a curve's intervals for model misfit (>= 1)


def _drug_doses(responses: pd.DataFrame) -> DoseRuns:
    """The drug rows of ``responses`` grouped by curve key (numbered as ``groupby(CURVE_KEY, sort=True,
    dropna=False)``: curves in key order) and concentration (increasing, a missing one last)."""
    drug = (responses[S.PERTURBATION_TYPE] == S.PerturbationType.DRUG).to_numpy(dtype=bool)
    drugs = responses[drug].rename(columns={S.TIME_H: S.DURATION_H})
    curve, curves = sorted_key_codes(drugs, list(S.CURVE_KEY))
    conc = drugs[S.CONCENTRATION].to_numpy(dtype=float, na_value=np.nan)
    return DoseRuns.of(curve, conc, rows=np.flatnonzero(drug), keys=curves)


def _pure_error(
    responses: pd.DataFrame, divisors: dict[str, float], *, doses: DoseRuns | None = None
) -> pd.DataFrame:
    """Per curve key and scale: pure-error sum of squares (replicate wells about their dose mean), wells and
    doses. One grouping of the drug rows for every scale (``doses``: :class:`DoseRuns` of the drug rows of
    ``responses``, when the caller has it); the sums run over each dose's values in sorted order (as
    :func:`doseatlas._stats.group_summary`), so they do not depend on the order of the rows."""
    doses = doses if doses is not None else _drug_doses(responses)
    n_dose, n_curve, curve_of_dose = doses.n_doses, len(doses.keys), doses.curve
    parts = []
    for scale, divisor in divisors.items():
        if scale not in responses:
            continue
        y = responses[scale].to_numpy(dtype=float, na_value=np.nan)[doses.rows] / divisor
        v = y[doses.sorted_by(y)]  # by dose, then value (NaN last)
        ok = np.isfinite(v)
        d, v = doses.dose[ok], v[ok]
        count = np.bincount(d, minlength=n_dose)
        mean = np.bincount(d, weights=v, minlength=n_dose) / np.maximum(count, 1)
        with np.errstate(over="ignore"):  # responses near 1e300 (refused later as non-finite fits) overflow
            ss = np.bincount(d, weights=(v - mean[d]) ** 2, minlength=n_dose)
        parts.append(
            doses.keys.assign(
                **{
                    S.SCALE: scale,
                    "_ss_pe": np.bincount(curve_of_dose, weights=ss, minlength=n_curve),
                    "_n_wells": np.bincount(curve_of_dose, weights=count, minlength=n_curve),
                    "_n_doses": np.bincount(curve_of_dose, weights=count > 0, minlength=n_curve),
                }
            )
        )
    return pd.concat(parts, ignore_index=True) if parts else None


def misfit_factors(
    responses: pd.DataFrame, curves: pd.DataFrame, *, doses: DoseRuns | None = None
) -> pd.DataFrame:
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

    pe = _pure_error(responses, SCALE_DIVISOR, doses=doses) if len(responses) else None
    if pe is None or not len(curves) or "rss" not in curves:
        return pd.DataFrame({S.CURVE_ID: curves.get(S.CURVE_ID, pd.Series(dtype=object)), MISFIT: 1.0})
    joined = _joined_by_position(S.with_series(curves), pe, len(doses.keys) if doses is not None else -1)
    if joined is None:
        joined = S.with_series(curves).merge(pe, on=[*S.CURVE_KEY, S.SCALE], how="left")
    model, names = pd.factorize(joined["model"], use_na_sentinel=True)  # (the map below: once per model)
    n_free = np.append(pd.Series(names).map({k: m.n_free for k, m in MODELS.items()}).fillna(4), 4.0)
    n_free = n_free.astype(float)[model]
    rss, ss_pe = joined["rss"].to_numpy(float), joined["_ss_pe"].to_numpy(float)
    n, k = joined["_n_wells"].to_numpy(float), joined["_n_doses"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (np.maximum(rss - ss_pe, 0.0) / (k - n_free)) / (rss / (n - n_free))
    usable = np.isfinite(ratio) & (k > n_free) & (n > k) & (joined["selected"].to_numpy() != "flat")
    with np.errstate(divide="ignore", invalid="ignore"):
        tq = (t975(np.maximum(k - n_free, 1)) / t975(np.maximum(n - n_free, 1))) ** 2
    factor = np.where(usable & (ratio > 1.0), ratio * tq, 1.0)
    return pd.DataFrame({S.CURVE_ID: joined[S.CURVE_ID], MISFIT: factor})


def _joined_by_position(curves: pd.DataFrame, pe: pd.DataFrame, n_keys: int) -> pd.DataFrame | None:
    """``curves.merge(pe, on=[*CURVE_KEY, SCALE], how="left")`` without hashing the text key columns, when the
    curves of each scale of ``pe`` (one block of ``n_keys`` rows per scale, the keys of :func:`_pure_error`)
    hold its keys row for row (as the fit gives them); None otherwise (the caller merges)."""
    key, scales = list(S.CURVE_KEY), pe[S.SCALE].to_numpy(dtype=object)[:: max(n_keys, 1)]
    shared = set(pe.columns) & set(curves.columns)
    if n_keys < 1 or len(pe) != n_keys * len(scales) or shared != {*key, S.SCALE}:
        return None
    at = np.full(len(curves), -1, dtype=np.int64)
    scale_of = curves[S.SCALE].to_numpy(dtype=object)
    block = pe.iloc[:n_keys][key].reset_index(drop=True)
    for i, scale in enumerate(scales):
        rows = np.flatnonzero(scale_of == scale)
        if len(rows) != n_keys:
            return None
        if key_casts(curves[key].take(rows).reset_index(drop=True), block, key) is None:  # (as merge matches)
            return None
        at[rows] = i * n_keys + np.arange(n_keys)
    extra = [c for c in pe.columns if c not in curves]
    taken = pe[extra].reindex(np.where(at >= 0, at, -1)).reset_index(drop=True)  # (-1: no row, NaN)
    return pd.concat([curves.reset_index(drop=True), taken], axis=1)


def with_misfit(
    responses: pd.DataFrame, curves: pd.DataFrame, *, doses: DoseRuns | None = None
) -> pd.DataFrame:
    """``curves`` with every covariance and standard error scaled by the :func:`misfit_factors` of its curve
    and the parameter and EC50 intervals widened about their estimates by the factor's square root
    (``doses``: the drug rows' :class:`DoseRuns`, when the caller has them)."""
    if S.CURVE_ID not in curves or not len(curves):
        return curves
    f = _factor_per_curve(curves[S.CURVE_ID], misfit_factors(responses, curves, doses=doses))
    root = np.sqrt(f)
    out = curves.copy()
    out[MISFIT] = f
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


def _factor_per_curve(ids: pd.Series, factors: pd.DataFrame) -> np.ndarray:
    """The :data:`MISFIT` factor of each curve ``ids`` (the first row of its id in ``factors``; 1 without one):
    taken by position when ``factors`` holds the ids row for row and they are distinct and present (as
    :func:`misfit_factors` gives them), else mapped by id."""
    if len(factors) == len(ids) and ids.notna().all() and ids.is_unique:
        if same_values(ids.reset_index(drop=True), factors[S.CURVE_ID].reset_index(drop=True)):
            return factors[MISFIT].fillna(1.0).to_numpy(float)
    factors = factors.dropna(subset=[S.CURVE_ID]).drop_duplicates(S.CURVE_ID)
    return ids.map(factors.set_index(S.CURVE_ID)[MISFIT]).fillna(1.0).to_numpy(float)


# ------------------------------------------------------------------------------ dose-clustered sandwich
PARAMS = ("top", "bottom", "log10_ec50", "hill")
SANDWICH = "_sw_"  # prefix of the per-curve sandwich columns (see SandwichTerms.columns)
_PAIRS = [(a, b) for a in range(4) for b in range(a, 4)]


def sigmoid_jacobian(x: np.ndarray, top, bottom, x50, hill) -> tuple[np.ndarray, np.ndarray]:
    """Fitted value and Jacobian ``(n, 4)`` (top, bottom, log10_ec50, hill) of the log-logistic curve at
    ``x = log10 c``."""
    with np.errstate(over="ignore", invalid="ignore"):
        s = 1.0 / (1.0 + 10.0 ** (hill * (x - x50)))
        ds = s * (1.0 - s) * np.log(10.0) * (top - bottom)
        jac = np.stack([s, 1.0 - s, ds * hill, -ds * (x - x50)], axis=1)
    return bottom + (top - bottom) * s, jac


def _free(curves: pd.DataFrame) -> np.ndarray:
    cov = np.stack([curves[f"cov_{k}_{k}"].to_numpy(float) for k in PARAMS], axis=1)
    return np.isfinite(cov) & (cov > 0)


def _inverse(jtj: np.ndarray, free: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per curve ``(J'J)^-1`` over its free parameters (0 rows and columns for the fixed ones) from its ``J'J``
    (:func:`doseatlas.metrics._doses.cross_products`), and whether it exists."""
    good = np.isfinite(jtj).all(axis=(1, 2)) & free.any(axis=1)
    mat = np.where(good[:, None, None], np.nan_to_num(jtj) + np.eye(4)[None] * (~free)[:, :, None], np.eye(4))
    diag = np.sqrt(np.einsum("nii->ni", mat))
    good &= (diag > 0).all(axis=1)
    root = np.where(good[:, None], diag, 1.0)
    corr = mat / (root[:, :, None] * root[:, None, :])  # correlation-scaled, as the fit's kernel inverts it
    good &= np.linalg.eigvalsh(np.where(good[:, None, None], corr, np.eye(4)))[:, 0] > 1e-13
    corr = np.where(good[:, None, None], corr, np.eye(4))
    inv = np.linalg.inv(corr) / (root[:, :, None] * root[:, None, :])
    return inv * (free[:, :, None] & free[:, None, :]), good


#: kernel width of a crossing's local misfit, in dose spacings: the doses about the crossing (see
#: _local_misfit and docs/fitting.md)
MISFIT_BANDWIDTH = 1.0
#: the response at which multiplicative noise vanishes, per scale (GR: -1, percent growth read on its own fit
#: in percent: -100); the noise model is ``var = sigma_m^2 (f + offset)^2 + sigma_a^2`` (see noise_model)
NOISE_OFFSET = {S.RELATIVE_VIABILITY: 0.0, S.GR: 1.0, S.PERCENT_GROWTH: 100.0}


def sandwich(
    codes: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    curves: pd.DataFrame,
    *,
    offset,
    runs: DoseRuns | None = None,
) -> SandwichTerms:
    """Per curve (rows of ``curves``): the terms of :func:`sandwich_se` from the responses ``y`` at
    ``x = log10 c`` of the curve ``codes`` (position in ``curves``): ``(J'J)^-1`` of the fitted curve, its
    residual variance ``s^2``, the misfit variance and its degrees of freedom, the noise model's degrees of
    freedom and, per tested dose (padded to the largest number of doses), its wells, Jacobian row and noise
    variance. ``offset``: per curve, :data:`NOISE_OFFSET` of the responses it was fitted to. ``runs``: the
    :class:`DoseRuns` of the rows (``codes`` its curve codes, ``x`` the log10 of its concentrations), when the
    caller has them: the rows are then ordered from it instead of sorted."""
    n = len(curves)
    p = {k: curves[k].to_numpy(float) for k in PARAMS}
    codes, x, y, pair, first = _sorted_points(codes, x, y, runs)  # every sum below in this order
    pair_curve, n_pairs = codes[first], len(first)
    # the fitted value and Jacobian are functions of (curve, x): computed once per dose
    fitted, jd = sigmoid_jacobian(x[first], *(p[k][pair_curve] for k in PARAMS))
    free = _free(curves)
    jd = np.where(free[pair_curve], np.nan_to_num(jd), 0.0)
    inv, good = _inverse(cross_products(codes, pair, jd, n), free)
    resid = y - fitted[pair]
    n_free = free.sum(axis=1)
    n_obs = np.bincount(codes, minlength=n)
    with np.errstate(divide="ignore", invalid="ignore"):
        s2 = np.bincount(codes, weights=resid**2, minlength=n) / (n_obs - n_free)
    count = np.bincount(pair, minlength=n_pairs).astype(float)
    mean_resid = np.bincount(pair, weights=resid, minlength=n_pairs) / np.maximum(count, 1)
    ss = np.bincount(pair, weights=(resid - mean_resid[pair]) ** 2, minlength=n_pairs)
    level = np.abs(fitted + np.asarray(offset, dtype=float)[pair_curve])
    noise, noise_df = noise_model(pair_curve, count, ss, level, n)
    lev = count * np.einsum("di,dij,dj->d", jd, inv[pair_curve], jd)
    alone = _without_replicates(noise_df, n_free, n_pairs, pair_curve)
    if alone.any():  # one well per dose: the noise model pooled over the curves of the same pool (below)
        noise, noise_df = pooled_noise(
            curves,
            pair_curve,
            count * mean_resid**2,
            lev,
            level,
            offset,
            alone & good,
            noise,
            noise_df,
            n_free,
        )
    with np.errstate(divide="ignore", invalid="ignore"):  # lack of fit beyond the noise: misfit variance
        excess = count * mean_resid**2 - noise * (1.0 - lev)
        # (one well per dose: the misfit beyond the pool's average, which its noise model holds)
        k = np.bincount(pair_curve, minlength=n).astype(float)
        misfit = np.bincount(pair_curve, weights=excess, minlength=n) / np.bincount(
            pair_curve, weights=count * (1.0 - lev), minlength=n
        )
    per_curve = {
        "s2": np.where(good, s2, np.nan),
        "misfit": np.clip(np.nan_to_num(misfit), 0.0, None),
        "misfit_df": k - n_free,
        "noise_df": noise_df,
    }
    with np.errstate(divide="ignore", invalid="ignore"):
        share = (fitted - p["bottom"][pair_curve]) / (p["top"] - p["bottom"])[pair_curve]
    per_dose = {
        "n": count,
        "v": noise,
        "e": np.nan_to_num(excess),
        "d": count,
        "u": np.nan_to_num(share, nan=0.5),
        "x": x[first],
        **{f"j{a}": jd[:, a] for a in range(4)},
    }
    upper = np.zeros_like(inv)  # the upper triangle, mirrored (as the columns hold it: a_ab for a <= b)
    for i, j in _PAIRS:
        upper[:, i, j] = upper[:, j, i] = inv[:, i, j]
    return SandwichTerms(upper, per_curve, _pad(per_dose, pair_curve, n), *_curve_columns(curves))


def _sorted_points(
    codes: np.ndarray, x: np.ndarray, y: np.ndarray, runs: DoseRuns | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The rows with a finite ``x`` and ``y`` in (curve, x, y) order (``np.lexsort((y, x, codes))``; rows equal
    in all three are interchangeable): their codes, x, y, the number of their (curve, x) pair and the first
    place of each pair."""
    if runs is not None and runs.log_distinct:  # the runs' doses with a finite x are the (curve, x) pairs
        places = runs.sorted_by(y)
        keep = np.isfinite(y[places]) & np.isfinite(x[places])
        rows = places[keep]
        pair, first = renumbered(runs.dose[keep])
        return codes[rows], x[rows], y[rows], pair, first
    from doseatlas._codes import pair_codes

    ok = np.flatnonzero(np.isfinite(y) & np.isfinite(x))
    rows = ok[np.lexsort((y[ok], x[ok], codes[ok]))]
    pair, pair_curve, _ = pair_codes(codes[rows], x[rows])
    first = np.zeros(len(pair_curve), dtype=np.int64)
    first[pair[::-1]] = np.arange(len(pair))[::-1]
    return codes[rows], x[rows], y[rows], pair, first


def _pad(per_dose: dict[str, np.ndarray], pair_curve: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """Per-dose values as blocks ``(n, k)``: column ``d`` the dose at position ``d`` within its curve (0 where a
    curve has fewer doses)."""
    start = np.searchsorted(pair_curve, np.arange(n))
    pos = np.arange(len(pair_curve)) - start[pair_curve]
    k_max = int(pos.max()) + 1 if len(pos) else 0
    at = pair_curve * k_max + pos  # (place in the flattened block: one index for every name)
    out = {}
    for name, values in per_dose.items():
        padded = np.zeros(n * k_max)
        padded[at] = values
        out[name] = padded.reshape(n, k_max)
    return out


NOISE_PASSES = 20  # reweighting passes at most (simulated: 99 % of curves within 1 % of the converged fit)
NOISE_TOLERANCE = 1e-6  # relative change of every dose's fitted variance below which the fit has converged


#: the noise model's kernels: compiled without fastmath, so every sum, product and quotient is the one numpy
#: computes elementwise and ``np.bincount`` sums (in the order of the doses), to the bit
_KERNEL = {"cache": True, "nogil": True, "error_model": "numpy"}


@njit(**_KERNEL)
def _noise_pass(rows, weight, u, s2, pooled, out):
    """One weighted least-squares pass of :func:`noise_model` over the doses ``rows`` of one curve (in order;
    ``weight``: per place in ``rows``): their fitted variance into ``out`` (per place in ``rows``)."""
    s1 = su = suu = ss = sus = 0.0
    for j in range(rows.size):
        i = rows[j]
        s1 += weight[j]
        su += weight[j] * u[i]
        suu += weight[j] * (u[i] * u[i])
        ss += weight[j] * s2[i]
        sus += weight[j] * (u[i] * s2[i])
    det = s1 * suu - su * su
    mult = (s1 * sus - su * ss) / det
    add = (suu * ss - su * sus) / det
    only_mult = sus / suu
    only_add = ss / s1
    both = np.isfinite(mult) and np.isfinite(add) and mult >= 0 and add >= 0
    if not both and np.isfinite(only_mult) and (add < 0 or np.isnan(add)) and only_mult > 0:
        mult, add = only_mult, 0.0  # the additive component dropped
    elif not both:
        mult, add = 0.0, only_add if np.isfinite(only_add) else pooled
    for j in range(rows.size):
        pred = mult * u[rows[j]] + add
        out[j] = pred if pred > 0 else pooled


@njit(**_KERNEL)
def _noise_curve(rows, w, u, s2, passes, tolerance, weight, new, pred):
    """The passes of :func:`noise_model` over the doses ``rows`` of one curve: their fitted variance into
    ``pred``; returns the curve's summed weights ``n_d - 1`` (``weight``, ``new``: scratch, one place per dose)."""
    sw = sws = 0.0
    for j in range(rows.size):
        sw += w[rows[j]]
        sws += w[rows[j]] * s2[rows[j]]
        weight[j] = w[rows[j]]
    pooled = sws / sw  # NaN for a curve without replicates
    _noise_pass(rows, weight, u, s2, pooled, new)
    for j in range(rows.size):
        pred[rows[j]] = new[j]
    for _ in range(passes - 1):
        for j in range(rows.size):
            old = pred[rows[j]]
            floor = old if not old < 1e-12 else 1e-12  # (NaN stays NaN, as np.maximum)
            weight[j] = w[rows[j]] / (floor * floor)
        _noise_pass(rows, weight, u, s2, pooled, new)
        moved = False
        for j in range(rows.size):
            moved |= np.abs(new[j] - pred[rows[j]]) > tolerance * new[j]  # (NaN: a curve without replicates)
            pred[rows[j]] = new[j]
        if not moved:
            break
    return sw


@njit(**_KERNEL)
def _noise_passes(order, start, w, u, s2, passes, tolerance):
    """:func:`_noise_curve` for every curve (its doses ``order[start[c]:start[c + 1]]``): the doses' fitted
    variance (NaN where not finite) and per curve the summed weights ``n_d - 1``."""
    pred = np.empty(order.size)
    total = np.empty(start.size - 1)
    k = np.max(start[1:] - start[:-1]) if start.size > 1 else 0
    weight, new = np.empty(k), np.empty(k)
    for c in range(start.size - 1):
        rows = order[start[c] : start[c + 1]]
        total[c] = _noise_curve(rows, w, u, s2, passes, tolerance, weight, new, pred)
    for i in range(pred.size):
        if not np.isfinite(pred[i]):
            pred[i] = np.nan
    return pred, total


def noise_model(
    pair_curve: np.ndarray, count: np.ndarray, ss: np.ndarray, level: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per dose, the noise variance of one well ``sigma_m^2 level^2 + sigma_a^2`` (multiplicative and
    additive noise) fitted per curve to the replicate variances of its doses, with weights ``(n_d - 1) /
    var_d^2`` (a negative component dropped); and per curve the pure-error degrees of freedom minus the
    model's two. NaN where a curve has no replicate.

    A replicate variance ``s_d^2`` from ``n_d`` wells is ``var_d chi^2(n_d - 1) / (n_d - 1)``: a gamma variable
    whose variance is ``2 var_d^2 / (n_d - 1)``, so the maximum-likelihood (gamma quasi-likelihood) fit of the
    linear model is weighted least squares with those weights at the fitted ``var_d``, iterated until the fit
    no longer changes (every dose's variance by less than :data:`NOISE_TOLERANCE`, relative; :data:`NOISE_PASSES`
    at most; the first pass weights by ``n_d - 1`` alone; a converged curve leaves the iteration). Stopping
    after one reweighting left the first pass's imprint, dominated by the noisy top doses: on the simulator's
    default set-up the variance at viability below 0.02 came out 8 times the replicate variance there
    (docs/fitting.md, "Plateau intervals")."""
    rep = count > 1
    with np.errstate(divide="ignore", invalid="ignore"):
        s2 = np.where(rep, ss / (count - 1.0), 0.0)
    w = np.where(rep, count - 1.0, 0.0)
    order = np.argsort(pair_curve, kind="stable")  # each curve's doses in their order (np.bincount's)
    start = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(pair_curve, minlength=n), out=start[1:])
    pred, total = _noise_passes(order, start, w, level**2, s2, NOISE_PASSES, NOISE_TOLERANCE)
    return pred, total - 2.0


#: the columns that pool the curves without replicates for :func:`pooled_noise` (with the noise offset): the
#: curves of one perturbagen, data set, readout and duration, which a partitioned run sees in one bucket
NOISE_POOL = (S.DATASET, S.PERTURBAGEN, S.READOUT, S.DURATION_H)


def _without_replicates(noise_df: np.ndarray, n_free: np.ndarray, n_pairs: int, pair_curve) -> np.ndarray:
    """Per curve: True where no dose has a replicate (its own noise model has no pure error) and the curve has
    more doses than free parameters (its residuals carry a degree of freedom)."""
    n = len(noise_df)
    k = np.bincount(pair_curve, minlength=n) if n_pairs else np.zeros(n, dtype=np.int64)
    return (noise_df <= -2.0) & (k > n_free)


def pooled_noise(
    curves: pd.DataFrame,
    pair_curve: np.ndarray,
    resid2: np.ndarray,
    lev: np.ndarray,
    level: np.ndarray,
    offset,
    alone: np.ndarray,
    noise: np.ndarray,
    noise_df: np.ndarray,
    n_free: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """``noise`` and ``noise_df`` with the curves ``alone`` (:func:`_without_replicates`, with an invertible
    ``J'J``) given the noise model of their pool (:data:`NOISE_POOL` and the noise offset): fitted by
    :func:`noise_model` to the dose residuals of every such curve of the pool whose selected model is the
    sigmoid (a flat fit's sigmoid residuals are not its noise), each a variance estimate
    ``n_d r_d^2 / (1 - h_d)`` with ``1 - h_d`` degrees of freedom (``r_d`` the dose's mean residual, ``h_d`` its
    leverage: ``E[r_d^2] = var_d (1 - h_d) / n_d``; the ``1 - h_d`` sum to ``k - p`` per curve); degrees of
    freedom: the pool's residual ones minus the model's two. Without
    replicates the misfit cannot be told from the noise: the pooled model holds both (averaged over the
    pool's curves). Unchanged where the curves table lacks the pool columns."""
    if not all(c in curves for c in NOISE_POOL):
        return noise, noise_df
    n = len(curves)
    pool, _ = key_codes(curves.assign(_offset=np.asarray(offset, dtype=float)), [*NOISE_POOL, "_offset"])
    with np.errstate(divide="ignore", invalid="ignore"):
        s2 = resid2 / (1.0 - lev)
    mine = alone[pair_curve]
    sigmoid = curves["selected"].eq("sigmoid").to_numpy() if "selected" in curves else np.ones(n, dtype=bool)
    use = mine & sigmoid[pair_curve] & np.isfinite(s2) & (lev < 1.0 - 1e-9)
    n_pools = int(pool.max()) + 1 if n else 0
    # each usable dose: the variance estimate s2 with the residual's 1 - h_d degrees of freedom (count
    # 2 - h_d, ``ss`` = r_d^2: a dose whose residual the fit pins down, h_d near 1, weighs almost nothing);
    # the other doses of those curves (count 1) only read the pool's model; curves with replicates: apart
    fitted, _ = noise_model(
        np.where(mine, pool[pair_curve], n_pools),
        np.where(use, 2.0 - lev, 1.0),
        np.where(use, resid2, 0.0),
        level,
        n_pools + 1,
    )
    own = np.bincount(pair_curve, minlength=n) - n_free
    df = np.bincount(pool, weights=np.where(alone & sigmoid, own, 0.0),
                     minlength=n_pools) - 2.0  # fmt: skip
    noise = np.where(alone[pair_curve], fitted, noise)
    return noise, np.where(alone, df[pool], noise_df)


#: the per-dose terms of :func:`sandwich` (one column per dose position: ``<SANDWICH><name>_<d>``)
PER_DOSE = ("n", "v", "e", "d", "u", "x", "j0", "j1", "j2", "j3")
#: the per-curve terms of :func:`sandwich` besides ``(J'J)^-1`` and the per-dose ones
PER_CURVE = ("s2", "misfit", "misfit_df", "noise_df")


@dataclass(frozen=True)
class SandwichTerms:
    """Per curve, everything :func:`sandwich_se` and :func:`plateau_scale` read: the terms of
    :func:`sandwich` as arrays (``inverse``: ``(J'J)^-1``, ``(n, 4, 4)``; ``per_curve``: :data:`PER_CURVE`;
    ``per_dose``: :data:`PER_DOSE`, ``(n, k)`` padded with 0), the curves' :data:`MISFIT` factors and
    ``n_points``. Built once for a set of curves and passed to every metric that reads them (arrays derived
    from them, such as the plateau's scale, are kept on the object: read-only)."""

    inverse: np.ndarray
    per_curve: dict[str, np.ndarray]
    per_dose: dict[str, np.ndarray]
    factor: np.ndarray
    n_points: np.ndarray

    @classmethod
    def of(cls, curves: pd.DataFrame) -> SandwichTerms | None:
        """The terms held in the sandwich columns of ``curves`` (as :meth:`columns` names them); None
        without them."""
        if f"{SANDWICH}s2" not in curves:
            return None
        inverse = np.zeros((len(curves), 4, 4))
        for i, j in _PAIRS:
            inverse[:, i, j] = inverse[:, j, i] = curves[f"{SANDWICH}a{i}{j}"].to_numpy(float)
        return cls(
            inverse,
            {k: curves[f"{SANDWICH}{k}"].to_numpy(float) for k in PER_CURVE},
            {k: _padded_block(curves, k) for k in PER_DOSE},
            *_curve_columns(curves),
        )

    def columns(self) -> dict[str, np.ndarray]:
        """The terms as sandwich columns (``<SANDWICH><name>``, the per-dose terms one column per dose position)."""
        out = {f"{SANDWICH}{k}": v for k, v in self.per_curve.items()}
        out.update({f"{SANDWICH}a{a}{b}": self.inverse[:, a, b] for a, b in _PAIRS})
        for name, block in self.per_dose.items():
            out.update({f"{SANDWICH}{name}_{d}": block[:, d] for d in range(block.shape[1])})
        return out

    def take(self, rows: np.ndarray) -> SandwichTerms:
        """The terms of the curves ``rows`` (positions or a mask)."""
        return SandwichTerms(
            self.inverse[rows],
            {k: v[rows] for k, v in self.per_curve.items()},
            {k: v[rows] for k, v in self.per_dose.items()},
            self.factor[rows],
            self.n_points[rows],
        )

    def with_curves(self, curves: pd.DataFrame) -> SandwichTerms:
        """The same terms beside the :data:`MISFIT` factors and ``n_points`` of ``curves`` (one row per curve)."""
        factor, n_points = _curve_columns(curves)
        return dataclasses.replace(self, factor=factor, n_points=n_points)

    @cached_property
    def jacobian(self) -> np.ndarray:
        """The Jacobian rows of the doses, ``(n, k, 4)``."""
        return np.stack([self.per_dose[f"j{i}"] for i in range(4)], axis=2)

    @cached_property
    def plateau_scale(self) -> np.ndarray:
        """:func:`plateau_scale` of these curves."""
        return _plateau_scale(self)


def _curve_columns(curves: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The :data:`MISFIT` factor (1 without) and ``n_points`` (NaN without) of each curve."""
    n = len(curves)
    factor = curves[MISFIT].to_numpy(float) if MISFIT in curves else np.ones(n)
    return factor, curves["n_points"].to_numpy(float) if "n_points" in curves else np.full(n, np.nan)


def _padded_block(curves: pd.DataFrame, name: str) -> np.ndarray:
    columns = sorted(
        (c for c in curves.columns if c.startswith(f"{SANDWICH}{name}_")),
        key=lambda c: int(c.rsplit("_", 1)[1]),
    )
    if not columns:
        return np.zeros((len(curves), 0))
    return np.ascontiguousarray(
        curves[columns].to_numpy(dtype=float)
    )  # one copy of the block, not per column


def metric_variance(
    curves: pd.DataFrame | None,
    grad: np.ndarray,
    *,
    plateau: bool = False,
    terms: SandwichTerms | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per curve, for the metric ``grad . theta``: its variance under the fit's own ``s^2 (J'J)^-1``, its
    variance under the noise model and the misfit (sandwich ``A J' V J A``, ``A = (J'J)^-1``) and the
    Satterthwaite degrees of freedom of that variance (``terms``: the curves' :class:`SandwichTerms`, read off
    the sandwich columns of ``curves`` when not given)."""
    terms = terms if terms is not None else SandwichTerms.of(curves)
    grad = np.nan_to_num(np.asarray(grad, dtype=float), nan=0.0, posinf=0.0, neginf=0.0)
    a, jd = terms.inverse, terms.jacobian
    nd, vd = terms.per_dose["n"], terms.per_dose["v"]
    ag = np.einsum("nij,nj->ni", a, grad)
    w2 = np.einsum("nki,ni->nk", jd, ag) ** 2
    v_noise = np.sum(w2 * nd * np.nan_to_num(vd), axis=1)
    df_n, df_m = (terms.per_curve[f"{k}_df"] for k in ("noise", "misfit"))
    if plateau:  # the plateau: the misfit of the doses that determine it, through the fit's weights
        v_misfit = np.sum(w2 * nd**2, axis=1) * terms.per_curve["misfit"]
    else:  # a crossing: the local misfit where the curve crosses, as a shift of the level
        v_misfit, df_m = _local_misfit(terms, curves, grad, nd)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = (v_noise + v_misfit) ** 2 / (v_noise**2 / df_n + np.where(v_misfit > 0, v_misfit**2 / df_m, 0.0))
    own = terms.per_curve["s2"] * np.einsum("ni,ni->n", grad, ag)
    usable = (df_n > 0) & np.isfinite(vd).all(axis=1)
    return own, np.where(usable, v_noise + v_misfit, np.nan), df


def _local_misfit(
    terms: SandwichTerms, curves: pd.DataFrame, grad: np.ndarray, nd: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Variance of a crossing from the misfit where it lies, and its degrees of freedom (see docs/fitting.md).

    The misfit is read from the doses about the crossing on the dose axis (a Gaussian kernel in log10 dose of
    :data:`MISFIT_BANDWIDTH` dose spacing about it); a dose where the fitted curve is steeper than at the
    crossing moves the crossing by its misfit along the dose axis (``e_d / s_d^2``), not as a shift of the level
    through the flatter slope at the crossing (``e_d / s_L^2``): the smaller of the two.
    """
    g_top, g_bottom = np.abs(grad[:, 0]), np.abs(grad[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):  # share of the transition at the level
        u_level = np.where(g_top + g_bottom > 0, g_top / (g_top + g_bottom), 0.5)
    x, u, e, d = (terms.per_dose[k] for k in ("x", "u", "e", "d"))
    tested = nd > 0
    x_level = curves["log10_ec50"].to_numpy(float) - grad[:, 3] * curves["hill"].to_numpy(float)
    lo = np.where(tested, x, np.inf).min(axis=1)
    hi = np.where(tested, x, -np.inf).max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        spacing = (hi - lo) / np.maximum(tested.sum(axis=1) - 1, 1)
        kern = np.exp(-0.5 * ((x - x_level[:, None]) / (MISFIT_BANDWIDTH * spacing[:, None])) ** 2)
        kern = np.where(tested, np.nan_to_num(kern), 0.0)
        # the fitted slope at a dose relative to the slope at the level: s(1 - s) of the log-logistic
        steeper = (u * (1.0 - u)) / (u_level * (1.0 - u_level))[:, None]
        tau2 = np.sum(kern * e / np.maximum(steeper, 1.0) ** 2, axis=1) / np.sum(kern * d, axis=1)
        k_eff = np.sum(kern, axis=1) ** 2 / np.sum(kern**2, axis=1)
    return (grad[:, 0] + grad[:, 1]) ** 2 * np.clip(np.nan_to_num(tau2), 0.0, None), k_eff


def sandwich_se(
    curves: pd.DataFrame | None,
    se: np.ndarray,
    grad: np.ndarray,
    *,
    plateau: bool = False,
    terms: SandwichTerms | None = None,
) -> np.ndarray:
    """``se`` (the fit's own standard error of a metric, with the :data:`MISFIT` factor) replaced by the
    noise-model and misfit standard error, expressed for the fit's t quantile ``t(n - 4)``. ``terms``: the
    curves' :class:`SandwichTerms` (read off the sandwich columns of ``curves`` when not given; ``se`` as it
    is without either)."""
    terms = terms if terms is not None else SandwichTerms.of(curves)
    if terms is None:
        return se
    own, var, df = metric_variance(curves, grad, plateau=plateau, terms=terms)
    misfit, n_pts = terms.factor, terms.n_points
    with np.errstate(divide="ignore", invalid="ignore"):
        tq = t975(np.maximum(df, 1)) / t975(np.maximum(n_pts - 4, 1))
        new = se / np.sqrt(misfit) * np.sqrt(var / own) * tq
    return np.where(np.isfinite(new), new, se)


def plateau_scale(curves: pd.DataFrame, *, terms: SandwichTerms | None = None) -> np.ndarray:
    """Per curve, the factor that turns the fit's own standard error of the plateau (``bottom``, with the
    :data:`MISFIT` factor) into its noise-model and misfit standard error (:func:`sandwich_se`, for the fit's
    t quantile ``t(n - 4)``); 1 where the curve has no sandwich terms. ``terms``: as :func:`sandwich_se` (the
    factor is kept on them, computed once)."""
    terms = terms if terms is not None else SandwichTerms.of(curves)
    return terms.plateau_scale if terms is not None else np.ones(len(curves))


def _plateau_scale(terms: SandwichTerms) -> np.ndarray:
    n = len(terms.factor)
    grad = np.tile([0.0, 1.0, 0.0, 0.0], (n, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return sandwich_se(None, np.ones(n), grad, plateau=True, terms=terms)


def plateau_bounds(curves: pd.DataFrame, value, lower, upper, *, terms: SandwichTerms | None = None):
    """The plateau's (``bottom``) interval ``lower``, ``upper`` about ``value`` (the fit's own, with the
    :data:`MISFIT` factor) with each half-width rescaled by :func:`plateau_scale` (``terms``: as there)."""
    value, lower, upper = (np.asarray(v, dtype=float) for v in (value, lower, upper))
    scale = plateau_scale(curves, terms=terms)
    return value - (value - lower) * scale, value + (upper - value) * scale
