"""Table level: the responses table in, the curves table out (:func:`fit_curves`)."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pandas as pd

from doseatlas import schemas as S
from doseatlas._codes import factorize, ordered_codes
from doseatlas.errors import ConfigError
from doseatlas.fit._order import sort_runs
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
    out = curves.copy(deep=False)  # its columns are replaced, never written into: no copy of the table
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
    return fit_scales(responses, models={scale: model}, keys=keys, **options)[0]


def fit_scales(
    responses: pd.DataFrame,
    *,
    models: dict[str, str | None],
    keys: tuple[str, ...] = S.CURVE_KEY,
    **options,
) -> list[pd.DataFrame]:
    """:func:`fit_curves` on each response scale of ``models`` (scale -> model, None for the scale's default),
    one curves table per scale in that order; the rows are grouped into curves once for every scale."""
    for scale in models:
        if scale not in S.FIT_SCALES:
            raise ConfigError(f"scale must be one of {list(S.FIT_SCALES)}, not {scale!r}")
    grouped = _group_curves(responses, scales=tuple(models), keys=keys)
    if grouped is None:
        return [_empty_curves(keys) for _ in models]
    return [_fit_scale(grouped, scale=s, model=m or DEFAULT_MODEL[s], **options) for s, m in models.items()]


def _fit_scale(grouped: _Grouped, *, scale: str, model: str, **options) -> pd.DataFrame:
    """The curves table of one response scale (:func:`fit_curves`)."""
    keys = grouped.keys
    points = _points(grouped, scale=scale)
    x, y = _padded(grouped, points)
    intervals, boot = options.pop("intervals", "wald"), options.pop("bootstrap", {})
    policy, shrink = options.pop("policy", "refuse"), options.pop("shrink", None)
    check_policy(policy, intervals)
    table, texts = _curve_keys(grouped, points)
    fit = fit_batch(x, y, model=model, **options)
    pooled, population, groups = np.zeros(len(fit), dtype=bool), None, None
    if policy == "shrink":
        groups = _population_groups(table, keys)
        fit, pooled, population = shrink_batch(
            x, y, fit, groups=groups, bounds=options.get("bounds"), options=shrink or ShrinkOptions()
        )
    if intervals == "bootstrap":
        fit = _with_bootstrap(fit, bootstrap_intervals(x, y, fit, **boot, **_refit_options(options)))
    table.insert(0, S.CURVE_ID, _hashed_ids(texts, scale))
    table[S.SCALE] = scale
    table[MODEL] = model
    table[S.FIT_POLICY] = np.where(pooled, "shrink", "refuse")
    table[S.STATUS] = fit.status_names()
    table[S.REASON] = np.where(fit.status == STATUS_CODES["non_finite"], Why.NON_FINITE_RESPONSE.value, None)
    table[S.REASON] = _no_response_reason(grouped, points, scale, table[S.REASON].to_numpy(dtype=object))
    table[SELECTED] = fit.selected_names()
    table[AT_BOUND] = at_bound(x, y, fit.params, model=model, overrides=options.get("bounds"))
    parts = [table, _param_columns(fit), _stat_columns(fit, grouped, points)]
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


def _curve_keys(grouped: _Grouped, points: _Points) -> tuple[pd.DataFrame, tuple[np.ndarray, np.ndarray]]:
    """The key table of the curves (a new frame: the scale's columns go into it) and their id texts: the key
    values of each curve's first point."""
    if grouped.shared_keys is not None:
        table, texts = grouped.shared_keys
        return table.copy(), texts
    table = grouped.key_table.take(points.order[grouped.starts]).reset_index(drop=True)
    return table, _id_texts(table, grouped.keys)


def _no_response_reason(grouped: _Grouped, points: _Points, scale: str, reason: np.ndarray) -> np.ndarray:
    """``reason`` with the cause filled in for curves that have no usable response on ``scale``: the most
    frequent ``<scale>_reason`` of their rows (e.g. ``no_time_zero``; ties -> the first code by name), else
    ``no_responses``."""
    column = S.reason_column(scale)
    n = len(reason)
    empty = np.bincount(grouped.row_curve[~np.isnan(points.row_y)], minlength=n) == 0
    out = reason.copy()
    out[empty & pd.isna(out)] = Why.NO_RESPONSES.value
    if column in grouped.frame and empty.any():
        values = grouped.frame[column].to_numpy(dtype=object)
        rows = pd.notna(values) & empty[grouped.row_curve]  # the rows of the curves without a response
        codes, names = pd.factorize(values[rows], sort=True)
        if len(codes):
            pairs, counts = np.unique(grouped.row_curve[rows] * len(names) + codes, return_counts=True)
            curve, code = pairs // len(names), pairs % len(names)
            best = np.lexsort((code, -counts, curve))  # per curve: most frequent first, then by name
            best = best[np.r_[True, curve[best][1:] != curve[best][:-1]]]
            out[curve[best]] = np.asarray(names, dtype=object)[code[best]]
    return out


def _curve_ids(table: pd.DataFrame, keys: tuple[str, ...], scale: str) -> list[str]:
    """:func:`curve_id` of every row; a curve without a series (empty) or seeding density (null) has the id it had
    before they joined the curve key. The hashed texts are built column by column (each distinct value written
    once), the same texts as :func:`curve_id` of :func:`_id_key`."""
    return _hashed_ids(_id_texts(table, keys), scale)


def _id_texts(table: pd.DataFrame, keys: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The key part of the text :func:`_curve_ids` hashes for each row, and whether it has one (not every key
    left out)."""
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
    return text, started


def _hashed_ids(texts: tuple[np.ndarray, np.ndarray], scale: str) -> list[str]:
    """The curve ids of the key texts of :func:`_id_texts` on ``scale``."""
    text, started = texts
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


@dataclasses.dataclass(frozen=True)
class _Grouped:
    """The drug rows of a responses table grouped into curves, once for every response scale.

    Attributes
    ----------
    frame
        Drug rows (the columns the fit reads; ``duration_h`` = ``time_h``); ``key_table``: its key columns.
    row_curve
        Curve number of each row of ``frame`` (the curves numbered as ``groupby(keys, sort=True, dropna=False)``).
    conc, x
        Concentration and x = log10 concentration (NaN for a missing or negative one) of each row of ``frame``.
    order, bounds
        The rows sorted by curve then x (stable, NaN last); ``order[bounds[r]:bounds[r + 1]]`` are the runs of
        equal (curve, x), which each scale orders by response (:func:`doseatlas.fit._order.sort_runs`).
    curve, pos, starts
        Curve number and position within its curve of each place of ``order``; first place of each curve.
    distinct_doses
        Every x of a curve comes from one concentration (no two concentrations share a log10): the points in
        (curve, x, response) order are then in (curve, concentration, response) order too.
    shared_keys
        The curves' key table and id texts (:func:`_id_texts`) when they are the same whichever row of a curve
        they are read from (:func:`_strict`), so the same for every scale; None otherwise.
    """

    keys: tuple[str, ...]
    frame: pd.DataFrame
    key_table: pd.DataFrame
    row_curve: np.ndarray
    conc: np.ndarray
    x: np.ndarray
    order: np.ndarray
    bounds: np.ndarray
    curve: np.ndarray
    pos: np.ndarray
    starts: np.ndarray
    distinct_doses: bool
    shared_keys: tuple[pd.DataFrame, tuple[np.ndarray, np.ndarray]] | None

    @property
    def n_curves(self) -> int:
        return len(self.starts)


@dataclasses.dataclass(frozen=True)
class _Points:
    """One scale's points: ``order`` (rows of the grouped frame sorted by curve, x and response, NaN last), y
    (scaled response) per row of the frame (``row_y``) and per place of ``order`` (``y``), the sorted x and
    concentrations."""

    order: np.ndarray
    row_y: np.ndarray
    x: np.ndarray
    y: np.ndarray
    conc: np.ndarray


def _group_curves(
    responses: pd.DataFrame, *, scales: tuple[str, ...], keys: tuple[str, ...]
) -> _Grouped | None:
    """The drug rows of ``responses`` grouped into curves (None when there is none)."""
    used = [*keys, S.PERTURBATION_TYPE, S.TIME_H, S.CONCENTRATION, *scales, *map(S.reason_column, scales)]
    narrow = responses[[c for c in dict.fromkeys(used) if c in responses.columns]]  # not every column's copy
    types, names = factorize(narrow[S.PERTURBATION_TYPE])  # (each distinct type compared once)
    is_drug = np.append(np.asarray(names, dtype=object) == S.PerturbationType.DRUG.value, False)[types]
    drug = S.with_series(narrow[is_drug])
    frame = drug.assign(**{S.DURATION_H: drug[S.TIME_H]}) if S.DURATION_H in keys else drug
    if not len(frame):
        return None
    key_table = frame[list(keys)]
    row_curve, strict = _curve_numbers(key_table)
    conc = frame[S.CONCENTRATION].to_numpy(dtype=np.float64, na_value=np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.where(conc >= 0, np.log10(conc), np.nan)
    x_code, x_values = pd.factorize(x, sort=True)
    x_code = np.where(x_code < 0, len(x_values), x_code)  # NaN after every x, as a sort puts it
    width, n = len(x_values) + 1, int(row_curve.max()) + 1
    run_key = row_curve * width + x_code
    order = np.argsort(run_key, kind="stable") if n * width < 2**62 else np.lexsort((x, row_curve))
    run_key, curve = run_key[order], row_curve[order]
    bounds = np.append(np.flatnonzero(np.r_[True, run_key[1:] != run_key[:-1]]), len(order))
    starts = np.flatnonzero(np.r_[True, curve[1:] != curve[:-1]])
    sorted_conc, sorted_x = conc[order], x[order]
    same_run = run_key[1:] == run_key[:-1]
    one_conc = sorted_conc[1:] == sorted_conc[:-1]
    distinct = bool((~same_run | one_conc | np.isnan(sorted_x[1:])).all())
    pos = np.arange(len(order)) - np.repeat(starts, np.diff(np.append(starts, len(order))))
    shared = None
    if strict:
        table = key_table.take(order[starts]).reset_index(drop=True)
        shared = (table, _id_texts(table, keys))
    return _Grouped(keys=keys, frame=frame, key_table=key_table, row_curve=row_curve, conc=conc, x=x,
                    order=order, bounds=bounds, curve=curve, pos=pos, starts=starts,
                    distinct_doses=distinct, shared_keys=shared)  # fmt: skip


def _curve_numbers(key_table: pd.DataFrame) -> tuple[np.ndarray, bool]:
    """Curve number of each row of the drug rows' key columns, as ``groupby(keys, sort=True, dropna=False)
    .ngroup()`` numbers them: each column factorized once (sorted, missing last), the codes combined into one
    integer per row (pandas' groupby when the combination could overflow). The perturbation type of a drug row
    is ``drug``: one code, nothing to factorize.

    Also whether the key values that group together are the same value, written the same (:func:`_strict`);
    then every row of a curve gives its key table row and id."""
    columns = [c for c in key_table.columns if c != S.PERTURBATION_TYPE]
    factorized = [_factorized(key_table[c]) for c in columns]
    strict = all(_strict(key_table[c], *f) for c, f in zip(columns, factorized, strict=True))
    codes = ordered_codes([(code, len(uniques)) for code, uniques in factorized], len(key_table))
    return codes, strict


def _factorized(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """``pd.factorize(values, sort=True)``, on the first value of each run of equal values (the drug rows come
    in plate order: a data set, cell line, read time or seeding density in long runs), as
    :func:`doseatlas._codes.factorize` does it."""
    return factorize(values, sort=True)


def _strict(values: pd.Series, code: np.ndarray, uniques) -> bool:
    """Whether the values that ``pd.factorize`` gave one code (``code``, ``uniques``) are the same value, written
    the same: no ``-0.0`` beside ``0.0`` in a float column; text only, and one kind of missing value, in an
    object column."""
    dtype = values.dtype
    if isinstance(dtype, pd.StringDtype) or pd.api.types.is_integer_dtype(dtype):
        return True
    if isinstance(dtype, np.dtype) and dtype.kind == "f":
        v = values.to_numpy()
        return not ((v == 0) & np.signbit(v)).any()
    if not (isinstance(dtype, np.dtype) and dtype.kind == "O") or not all(
        isinstance(u, str) for u in uniques
    ):
        return False
    missing = values.to_numpy()[code < 0]
    return len({type(v) for v in missing}) <= 1


def _points(grouped: _Grouped, *, scale: str) -> _Points:
    """The points of ``scale``: x = log10 concentration and y = scaled response (NaN kept), sorted by curve, x
    and y."""
    y = grouped.frame[scale].to_numpy(dtype=np.float64, na_value=np.nan)
    # an infinite or overflowing response makes the kernel refuse its curve (status non_finite), never fit it
    y = np.where(np.abs(y) > S.MAX_ABS_RESPONSE, np.inf, y) / SCALE_DIVISOR[scale]
    # points in a canonical order within each curve (dose, then response): the fit does not depend on the
    # order of the input rows (a partitioned run gathers them in another order than an in-memory one)
    order = sort_runs(grouped.order, grouped.bounds, y)
    return _Points(order=order, row_y=y, x=grouped.x[order], y=y[order], conc=grouped.conc[order])


def _padded(grouped: _Grouped, points: _Points) -> tuple[np.ndarray, np.ndarray]:
    """NaN-padded (n_curves, max_points) arrays of the sorted points."""
    width = int(grouped.pos.max()) + 1
    x = np.full((grouped.n_curves, width), np.nan)
    y = np.full((grouped.n_curves, width), np.nan)
    x[grouped.curve, grouped.pos] = points.x
    y[grouped.curve, grouped.pos] = points.y
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


def _dose_spread(
    curve: np.ndarray, dose: np.ndarray, y: np.ndarray, *, presorted: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Curve, points and sample SD of the response per (curve, dose), in (curve, dose) order; each group summed
    in sorted order, so the SD does not depend on the row order or the rest of the table (the arithmetic of
    :func:`doseatlas._stats.group_summary`, on one numpy sort by curve, dose and response, skipped when the
    points are ``presorted`` so)."""
    if not presorted:
        order = np.lexsort((y, dose, curve))
        curve, dose, y = curve[order], dose[order], y[order]
    first = np.ones(len(curve), dtype=bool)
    first[1:] = (curve[1:] != curve[:-1]) | (dose[1:] != dose[:-1])
    group = np.cumsum(first) - 1
    n_groups = int(first.sum())
    count = np.bincount(group, minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(group, weights=y, minlength=n_groups) / count
        squares = np.bincount(group, weights=(y - mean[group]) ** 2, minlength=n_groups)
        std = np.where(count > 1, np.sqrt(squares / (count - 1)), np.nan)
    return curve[first], count, std


def _per_curve(curve: np.ndarray, values: np.ndarray, ufunc: np.ufunc, n: int, fill: float) -> np.ndarray:
    """``ufunc`` reduced over the values of each curve (``curve`` sorted), ``fill`` for a curve without one."""
    out = np.full(n, fill, dtype=values.dtype if len(values) else np.float64)
    if len(curve):
        starts = np.flatnonzero(np.r_[True, curve[1:] != curve[:-1]])
        out[curve[starts]] = ufunc.reduceat(values, starts)
    return out


def _stat_columns(fit: BatchFit, grouped: _Grouped, points: _Points) -> pd.DataFrame:
    """Fit statistics plus design summaries (doses, replicates, tested range) per curve."""
    used = np.isfinite(points.y) & ~np.isnan(points.x)
    n = len(fit)
    curve, conc = grouped.curve[used], points.conc[used]
    dose_curve, count, std = _dose_spread(curve, conc, points.y[used], presorted=grouped.distinct_doses)
    has_sd = ~np.isnan(std)  # doses in order within each curve: a sequential, deterministic mean
    sums = np.bincount(dose_curve[has_sd], weights=std[has_sd], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_sd = sums / np.bincount(dose_curve[has_sd], minlength=n)
    positive = conc > 0
    return pd.DataFrame(
        {
            RSS: fit.rss,
            R2: fit.r2,
            N_POINTS: fit.n_points,
            N_DOSES: np.bincount(dose_curve, minlength=n).astype(np.int64),
            N_REPLICATES: _per_curve(dose_curve, count, np.maximum, n, 0).astype(np.int64),
            CONC_MIN: _per_curve(curve[positive], conc[positive], np.minimum, n, np.nan),
            CONC_MAX: _per_curve(curve[positive], conc[positive], np.maximum, n, np.nan),
            F_PVALUE: fit.f_pvalue,
            FLAT_VALUE: fit.flat_value,
            ITERATIONS: fit.iterations,
            REPLICATE_SD: mean_sd,
        }
    )
