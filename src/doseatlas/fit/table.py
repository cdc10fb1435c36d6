"""Table level: the responses table in, the curves table out (:func:`fit_curves`)."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pandas as pd

from doseatlas import schemas as S
from doseatlas.errors import ConfigError
from doseatlas.fit.bootstrap import BootstrapIntervals, bootstrap_intervals
from doseatlas.fit.engine import STATUS_CODES, BatchFit, _extremes, _prepare, fit_batch
from doseatlas.fit.models import PARAMS, get_model, resolve_bounds
from doseatlas.fit.shrink import Population, ShrinkOptions, shrink_batch

# Curves-table column names not (yet) in doseatlas.schemas; candidates to move there.
MODEL = "model"
SELECTED = "selected"
EC50 = "ec50"
RSS = "rss"
R2 = "r2"
N_POINTS = "n_points"
N_DOSES = "n_doses"
N_REPLICATES = "n_replicates"
CONC_MIN = "conc_min"
CONC_MAX = "conc_max"
F_PVALUE = "f_pvalue"
FLAT_VALUE = "flat_value"
ITERATIONS = "iterations"
REPLICATE_SD = "replicate_sd"
AT_BOUND = "at_bound"  # free parameters that ended on a bound (";"-joined, "" for none): issue 14 item 6
SE_SUFFIX, LOWER_SUFFIX, UPPER_SUFFIX = "_se", "_lower", "_upper"
#: population of a curve's group under the shrink policy (NaN under the refusal policy)
POPULATION_COLUMNS: dict[str, str] = {
    "pop_n_curves": "n_curves",
    "pop_log10_ec50": "mean_log10_ec50",
    "pop_sd_log10_ec50": "sd_log10_ec50",
    "pop_ln_hill": "mean_ln_hill",
    "pop_sd_ln_hill": "sd_ln_hill",
}
#: fit policies: per-curve refusal (default) or empirical-Bayes shrinkage across cell lines
POLICIES = ("refuse", "shrink")
COV_PREFIX = "cov_"

#: default model per response scale
DEFAULT_MODEL: dict[str, str] = {
    S.RELATIVE_VIABILITY: "ll4",
    S.PERCENT_GROWTH: "ll4",
    S.GR: "gr_sigmoid",
    S.DIP_RELATIVE: "ll4",
}
#: divide the response column by this before fitting
SCALE_DIVISOR: dict[str, float] = {
    S.RELATIVE_VIABILITY: 1.0,
    S.PERCENT_GROWTH: 100.0,
    S.GR: 1.0,
    S.DIP_RELATIVE: 1.0,
}

#: columns of the curves table in the units of the response (scaled by SCALE_DIVISOR: by its square for sums of
#: squares and variances); the other columns (EC50, hill, counts, r2...) have no response unit
_RESPONSE_LEVELS = ("top", "bottom")


def in_response_units(curves: pd.DataFrame) -> pd.DataFrame:
    """The curves table with every response-valued column in the unit of its scale's response column (percent
    for ``percent_growth``, as ``responses.parquet``), where :func:`fit_curves` gives them on the fitted scale
    (percent growth / 100). Applied once to the run's output curves, after every step that reads them."""
    if S.SCALE not in curves or not len(curves):
        return curves
    factor = curves[S.SCALE].map(SCALE_DIVISOR).fillna(1.0).to_numpy(dtype=float)
    if (factor == 1.0).all():
        return curves
    out = curves.copy()
    linear = [f"{p}{sfx}" for p in _RESPONSE_LEVELS for sfx in ("", SE_SUFFIX, LOWER_SUFFIX, UPPER_SUFFIX)]
    for column in [*linear, FLAT_VALUE, REPLICATE_SD]:
        if column in out:
            out[column] = out[column].to_numpy(dtype=float) * factor
    if RSS in out:
        out[RSS] = out[RSS].to_numpy(dtype=float) * factor**2
    for column in (c for c in out.columns if c.startswith(COV_PREFIX)):
        a, b = _cov_params(column)
        power = (a in _RESPONSE_LEVELS) + (b in _RESPONSE_LEVELS)
        out[column] = out[column].to_numpy(dtype=float) * factor**power
    return out


def _cov_params(column: str) -> tuple[str, str]:
    """The two parameters of a ``cov_<a>_<b>`` column."""
    rest = column.removeprefix(COV_PREFIX)
    for p in PARAMS:
        if rest.startswith(p + "_"):
            return p, rest[len(p) + 1 :]
    return rest, ""


_X, _Y, _CURVE = "_x", "_y", "_curve"
Why = S.RefusalReason


def curves_columns(keys: tuple[str, ...] = S.CURVE_KEY) -> list[str]:
    """Column order of the curves table."""
    params = [*PARAMS[:3], EC50, PARAMS[3]]
    per_param = [f"{p}{sfx}" for p in params for sfx in ("", SE_SUFFIX, LOWER_SUFFIX, UPPER_SUFFIX)]
    stats = [RSS, R2, N_POINTS, N_DOSES, N_REPLICATES, CONC_MIN, CONC_MAX, F_PVALUE, FLAT_VALUE, ITERATIONS]
    return [S.CURVE_ID, *keys, S.SCALE, MODEL, S.FIT_POLICY, S.STATUS, S.REASON, SELECTED, *per_param, *stats,
            REPLICATE_SD, AT_BOUND, *POPULATION_COLUMNS, *cov_columns()]  # fmt: skip


def cov_columns() -> list[str]:
    """The 16 covariance columns ``cov_{a}_{b}`` (a, b in parameter order; the matrix is symmetric)."""
    return [f"{COV_PREFIX}{a}_{b}" for a in PARAMS for b in PARAMS]


def curve_id(key: tuple, scale: str) -> str:
    """Stable id of a curve: 16 hex digits of a BLAKE2b hash of its key values and scale."""
    text = "\x1f".join([*("" if pd.isna(v) else str(v) for v in key), scale])
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def fit_curves(
    responses: pd.DataFrame,
    *,
    scale: str,
    model: str | None = None,
    keys: tuple[str, ...] = S.CURVE_KEY,
    **options,
) -> pd.DataFrame:
    """Fit one curve per key on one response scale; returns the curves table (one row per curve).

    Only ``perturbation_type == "drug"`` rows are dose series. ``duration_h`` is ``time_h``. Rows with a
    missing response are excluded from the fit but their curve still gets a row (status
    ``too_few_points`` when nothing usable is left). Replicates are pooled. ``options`` go to
    :func:`doseatlas.fit.fit_batch`, except ``intervals`` (``"wald"``, default, or ``"bootstrap"``) and
    ``bootstrap`` (a dict for :func:`doseatlas.fit.bootstrap.bootstrap_intervals`: ``n_boot``, ``seed``,
    ``method``...), ``policy`` (``"refuse"``, default, or ``"shrink"``: see :mod:`doseatlas.fit.shrink`;
    its population is pooled over the curves that share every key but ``cell_line``) and ``shrink`` (a
    :class:`doseatlas.fit.shrink.ShrinkOptions`).
    """
    if scale not in S.FIT_SCALES:
        raise ConfigError(f"scale must be one of {list(S.FIT_SCALES)}, not {scale!r}")
    model = model or DEFAULT_MODEL[scale]
    points = _points(responses, scale=scale, keys=keys)
    if points.empty:
        return _empty_curves(keys)
    x, y = _padded(points)
    intervals, boot = options.pop("intervals", "wald"), options.pop("bootstrap", {})
    policy, shrink = options.pop("policy", "refuse"), options.pop("shrink", None)
    check_policy(policy, intervals)
    first = points.groupby(_CURVE, sort=True).head(1).set_index(_CURVE).sort_index()
    table = first[list(keys)].reset_index(drop=True)
    fit = fit_batch(x, y, model=model, **options)
    pooled, population, groups = np.zeros(len(fit), dtype=bool), None, None
    if policy == "shrink":
        groups = _population_groups(table, keys)
        fit, pooled, population = shrink_batch(
            x, y, fit, groups=groups, bounds=options.get("bounds"), options=shrink or ShrinkOptions()
        )
    if intervals == "bootstrap":
        fit = _with_bootstrap(fit, bootstrap_intervals(x, y, fit, **boot, **_refit_options(options)))
    table.insert(0, S.CURVE_ID, _curve_ids(table, keys, scale))
    table[S.SCALE] = scale
    table[MODEL] = model
    table[S.FIT_POLICY] = np.where(pooled, "shrink", "refuse")
    table[S.STATUS] = fit.status_names()
    table[S.REASON] = np.where(fit.status == STATUS_CODES["non_finite"], Why.NON_FINITE_RESPONSE.value, None)
    table[S.REASON] = _no_response_reason(points, scale, table[S.REASON].to_numpy(dtype=object))
    table[SELECTED] = fit.selected_names()
    table[AT_BOUND] = at_bound(x, y, fit.params, model=model, overrides=options.get("bounds"))
    parts = [table, _param_columns(fit), _stat_columns(fit, points)]
    parts.append(_population_columns(population, groups, pooled))
    return pd.concat(parts, axis=1)[curves_columns(keys)]


def at_bound(x: np.ndarray, y: np.ndarray, params: np.ndarray, *, model: str, overrides=None) -> np.ndarray:
    """Per curve: the free parameters whose fitted value lies on the bound the fit was held to (within
    1e-6 of the bound's magnitude, at least 1e-6), ``;``-joined in parameter order, ``""`` for none.

    A binding bound (hill at 10 for a step between two doses, an EC50 held at the edge of its allowed range, a
    GR plateau at -1) means the fit is the best one within the bounds, not the unconstrained least-squares fit:
    its residual sum of squares can exceed a reference fit's and its interval ignores the bound (issue 14).
    """
    spec = get_model(model)
    xs, ys, code, _, _ = _prepare(x, y)
    lo, hi = resolve_bounds(spec, *_extremes(xs, ys, code), overrides=overrides)
    tol_lo, tol_hi = 1e-6 * np.maximum(1.0, np.abs(lo)), 1e-6 * np.maximum(1.0, np.abs(hi))
    free = np.array([p not in spec.fixed for p in PARAMS])
    with np.errstate(invalid="ignore"):
        hit = free & np.isfinite(params) & ((params - lo <= tol_lo) | (hi - params <= tol_hi))
    out = np.full(len(params), "", dtype=object)
    for j, name in enumerate(PARAMS):  # 4 parameters, vectorized over curves
        out[hit[:, j]] = np.where(out[hit[:, j]] == "", name, out[hit[:, j]] + ";" + name)
    return out


def _no_response_reason(points: pd.DataFrame, scale: str, reason: np.ndarray) -> np.ndarray:
    """``reason`` with the cause filled in for curves that have no usable response on ``scale``: the most
    frequent ``<scale>_reason`` of their rows (e.g. ``no_time_zero``; ties -> the first code by name), else
    ``no_responses``."""
    column = S.reason_column(scale)
    usable = points.assign(_ok=np.isfinite(points[_Y].to_numpy()) | np.isinf(points[_Y].to_numpy()))
    empty = ~usable.groupby(_CURVE, sort=True)["_ok"].any().to_numpy()
    out = reason.copy()
    out[empty & pd.isna(out)] = Why.NO_RESPONSES.value
    if column in points and empty.any():
        why = points.loc[points[column].notna(), [_CURVE, column]]
        counts = why.value_counts().rename("_n").reset_index()
        counts = counts.sort_values([_CURVE, "_n", column], ascending=[True, False, True], kind="stable")
        first = counts.drop_duplicates(_CURVE).set_index(_CURVE)[column]
        cause = first.reindex(np.arange(len(out))).to_numpy(dtype=object)
        fill = empty & pd.notna(cause)
        out[fill] = cause[fill]
    return out


def _curve_ids(table: pd.DataFrame, keys: tuple[str, ...], scale: str) -> list[str]:
    """:func:`curve_id` of every row; a curve without a series (empty) or seeding density (null) has the id it had
    before they joined the curve key. The hashed texts are built column by column (each distinct value written
    once), the same texts as :func:`curve_id` of :func:`_id_key`."""
    text = np.full(len(table), "", dtype=object)
    started = np.zeros(len(table), dtype=bool)
    for column in keys:
        codes, uniques = pd.factorize(table[column], use_na_sentinel=True)
        written = np.array(
            [*("" if pd.isna(v) else str(v) for v in uniques), ""], dtype=object
        )  # -1: missing
        part = written[codes]
        if column == S.SERIES:  # left out where the series is the empty text
            kept = ~np.array([*(bool(_empty(v, "")) for v in uniques), False], dtype=bool)[codes]
        else:  # the seeding density left out where missing
            kept = codes >= 0 if column == S.SEEDING_DENSITY else np.ones(len(codes), dtype=bool)
        text = np.where(kept, np.where(started, text + "\x1f" + part, part), text)
        started |= kept
    text = np.where(started, text + ("\x1f" + scale), scale)
    return [hashlib.blake2b(t.encode(), digest_size=8).hexdigest() for t in text]


def _id_key(key: tuple, series: int | None, seeding: int | None) -> tuple:
    """The key values a curve id hashes: an empty series and an unknown seeding density are left out (the id a
    curve had before they joined the curve key)."""
    drop = {i for i, empty in ((series, ""), (seeding, None)) if i is not None and _empty(key[i], empty)}
    return tuple(v for i, v in enumerate(key) if i not in drop)


def _empty(value: object, empty: object) -> bool:
    return bool(pd.isna(value)) if empty is None else value == empty


def _empty_curves(keys: tuple[str, ...]) -> pd.DataFrame:
    """The curves table with no row, its columns typed as in a filled one (so it merges like one)."""
    text = {S.CURVE_ID, *keys, S.SCALE, MODEL, S.FIT_POLICY, S.STATUS, S.REASON, SELECTED, AT_BOUND} - {
        S.DURATION_H,
        S.SEEDING_DENSITY,
    }
    counts = {N_POINTS, N_DOSES, N_REPLICATES, ITERATIONS}
    return pd.DataFrame(
        {
            c: pd.Series(dtype=object if c in text else "int64" if c in counts else "float64")
            for c in curves_columns(keys)
        }
    )


def check_policy(policy: str, intervals: str) -> None:
    """ConfigError for an unknown fit policy or interval method, or for bootstrap intervals with ``shrink``."""
    if policy not in POLICIES:
        raise ConfigError(f"policy must be one of {list(POLICIES)}, not {policy!r}")
    if intervals not in ("wald", "bootstrap"):
        raise ConfigError(f"intervals must be 'wald' or 'bootstrap', not {intervals!r}")
    if policy == "shrink" and intervals == "bootstrap":
        raise ConfigError("the shrink policy reports posterior intervals; use intervals='wald' with it")


def _population_groups(table: pd.DataFrame, keys: tuple[str, ...]) -> np.ndarray:
    """Group code per curve: curves that share every key but the cell line (and its seeding density, which
    differs by cell line) share a population."""
    by = [k for k in keys if k not in (S.CELL_LINE, S.SEEDING_DENSITY)]
    if not by:
        return np.zeros(len(table), dtype=np.int64)
    return table.groupby(by, sort=False, dropna=False).ngroup().to_numpy()


def _population_columns(population: Population | None, groups, pooled: np.ndarray) -> pd.DataFrame:
    """The population of each pooled curve's group (NaN elsewhere)."""
    out = pd.DataFrame(np.nan, index=range(len(pooled)), columns=list(POPULATION_COLUMNS))
    if population is not None:
        per_group = population.table()
        for column, source in POPULATION_COLUMNS.items():
            out[column] = np.where(pooled, per_group[source].to_numpy(dtype=float)[groups], np.nan)
    return out


def _refit_options(options: dict) -> dict:
    """Options of the original fit that also govern the bootstrap refits."""
    return {k: v for k, v in options.items() if k in ("robust", "f_scale", "max_iter", "bounds")}


def _with_bootstrap(fit: BatchFit, boot: BootstrapIntervals) -> BatchFit:
    """``fit`` with bootstrap standard errors and intervals (the covariance stays the Wald one)."""
    return dataclasses.replace(fit, stderr=boot.stderr, ci_lower=boot.lower, ci_upper=boot.upper)


def _points(responses: pd.DataFrame, *, scale: str, keys: tuple[str, ...]) -> pd.DataFrame:
    """Drug rows with curve number, x = log10 concentration and y = scaled response (NaN kept), sorted by
    curve, x and y."""
    used = [*keys, S.PERTURBATION_TYPE, S.TIME_H, S.CONCENTRATION, scale, S.reason_column(scale)]
    narrow = responses[[c for c in dict.fromkeys(used) if c in responses.columns]]  # not every column's copy
    drug = S.with_series(narrow[narrow[S.PERTURBATION_TYPE] == S.PerturbationType.DRUG])
    frame = drug.assign(**{S.DURATION_H: drug[S.TIME_H]}) if S.DURATION_H in keys else drug
    conc = frame[S.CONCENTRATION].to_numpy(dtype=np.float64, na_value=np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.where(conc >= 0, np.log10(conc), np.nan)
    y = frame[scale].to_numpy(dtype=np.float64, na_value=np.nan)
    # an infinite or overflowing response makes the kernel refuse its curve (status non_finite), never fit it
    y = np.where(np.abs(y) > S.MAX_ABS_RESPONSE, np.inf, y) / SCALE_DIVISOR[scale]
    out = frame[list(keys)].assign(**{_X: x, _Y: y, S.CONCENTRATION: conc})
    if S.reason_column(scale) in frame:  # why a response is missing: the cause of a curve without any
        out[S.reason_column(scale)] = frame[S.reason_column(scale)].to_numpy(dtype=object)
    out[_CURVE] = out.groupby(list(keys), sort=True, dropna=False).ngroup()
    # points in a canonical order within each curve (dose, then response): the fit does not depend on the
    # order of the input rows (a partitioned run gathers them in another order than an in-memory one)
    order = np.lexsort((out[_Y].to_numpy(), out[_X].to_numpy(), out[_CURVE].to_numpy()))  # stable, NaN last
    return out.take(order).reset_index(drop=True)


def _padded(points: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """NaN-padded (n_curves, max_points) arrays from the sorted point table."""
    curve = points[_CURVE].to_numpy()
    n = int(curve.max()) + 1
    pos = points.groupby(_CURVE, sort=False).cumcount().to_numpy()
    width = int(pos.max()) + 1
    x = np.full((n, width), np.nan)
    y = np.full((n, width), np.nan)
    x[curve, pos] = points[_X].to_numpy()
    y[curve, pos] = points[_Y].to_numpy()
    return x, y


def _param_columns(fit: BatchFit) -> pd.DataFrame:
    cols: dict[str, np.ndarray] = {}
    for j, name in enumerate(PARAMS):
        cols[name] = fit.params[:, j]
        cols[name + SE_SUFFIX] = fit.stderr[:, j]
        cols[name + LOWER_SUFFIX] = fit.ci_lower[:, j]
        cols[name + UPPER_SUFFIX] = fit.ci_upper[:, j]
    j = PARAMS.index("log10_ec50")
    with np.errstate(over="ignore", invalid="ignore"):
        ec50 = 10.0 ** fit.params[:, j]
        cols[EC50] = ec50
        cols[EC50 + SE_SUFFIX] = ec50 * np.log(10.0) * fit.stderr[:, j]  # delta method
        cols[EC50 + LOWER_SUFFIX] = 10.0 ** fit.ci_lower[:, j]
        cols[EC50 + UPPER_SUFFIX] = 10.0 ** fit.ci_upper[:, j]
    for name, (a, b) in zip(cov_columns(), np.ndindex(len(PARAMS), len(PARAMS)), strict=True):
        cols[name] = fit.cov[:, a, b]
    return pd.DataFrame(cols)


def _dose_spread(used: pd.DataFrame) -> pd.DataFrame:
    """Points and sample SD of the response per (curve, dose); each group summed in sorted order, so the SD
    does not depend on the row order or the rest of the table (the arithmetic of
    :func:`doseatlas._stats.group_summary`, on one numpy sort by curve, dose and response)."""
    curve = used[_CURVE].to_numpy()
    dose = used[S.CONCENTRATION].to_numpy(dtype=float)
    order = np.lexsort((used[_Y].to_numpy(dtype=float), dose, curve))
    c, d, v = curve[order], dose[order], used[_Y].to_numpy(dtype=float)[order]
    first = np.ones(len(c), dtype=bool)
    first[1:] = (c[1:] != c[:-1]) | (d[1:] != d[:-1])
    group = np.cumsum(first) - 1
    n_groups = int(first.sum())
    count = np.bincount(group, minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(group, weights=v, minlength=n_groups) / count
        squares = np.bincount(group, weights=(v - mean[group]) ** 2, minlength=n_groups)
        std = np.where(count > 1, np.sqrt(squares / (count - 1)), np.nan)
    return pd.DataFrame({_CURVE: c[first], S.CONCENTRATION: d[first], "count": count, "std": std})


def _stat_columns(fit: BatchFit, points: pd.DataFrame) -> pd.DataFrame:
    """Fit statistics plus design summaries (doses, replicates, tested range) per curve."""
    used = points[np.isfinite(points[_Y]) & ~np.isnan(points[_X])]
    n = len(fit)
    by_dose = _dose_spread(used)
    per_curve = by_dose.groupby(_CURVE).agg(n_doses=("count", "size"), n_replicates=("count", "max"))
    sd = by_dose.dropna(subset=["std"])  # doses in order within each curve: a sequential, deterministic mean
    curve = sd[_CURVE].to_numpy()
    sums = np.bincount(curve, weights=sd["std"].to_numpy(), minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_sd = sums / np.bincount(curve, minlength=n)
    per_curve["replicate_sd"] = pd.Series(mean_sd).reindex(per_curve.index)
    positive = used[used[S.CONCENTRATION] > 0].groupby(_CURVE)[S.CONCENTRATION].agg(["min", "max"])
    per_curve = per_curve.reindex(range(n))
    positive = positive.reindex(range(n))
    return pd.DataFrame(
        {
            RSS: fit.rss,
            R2: fit.r2,
            N_POINTS: fit.n_points,
            N_DOSES: per_curve["n_doses"].fillna(0).to_numpy(dtype=np.int64),
            N_REPLICATES: per_curve["n_replicates"].fillna(0).to_numpy(dtype=np.int64),
            CONC_MIN: positive["min"].to_numpy(),
            CONC_MAX: positive["max"].to_numpy(),
            F_PVALUE: fit.f_pvalue,
            FLAT_VALUE: fit.flat_value,
            ITERATIONS: fit.iterations,
            REPLICATE_SD: per_curve["replicate_sd"].to_numpy(),
        }
    )
