"""Batched curve fitting on padded arrays: :func:`fit_batch` -> :class:`BatchFit`."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy import special

from doseatlas.errors import ConfigError, FitError
from doseatlas.fit import _kernel as K
from doseatlas.fit.models import PARAMS, get_model, resolve_bounds

#: status code -> name (one per curve, never missing)
STATUS_NAMES: dict[int, str] = {
    K.ST_CONVERGED: "converged",
    K.ST_FLAT: "flat",
    K.ST_MAX_ITER: "max_iter",
    K.ST_TOO_FEW: "too_few_points",
    K.ST_NON_FINITE: "non_finite",
    K.ST_SINGULAR: "singular",
}
STATUS_CODES: dict[str, int] = {v: k for k, v in STATUS_NAMES.items()}

#: selected model codes
SELECTED_NONE, SELECTED_FLAT, SELECTED_SIGMOID = -1, 0, 1
SELECTED_NAMES: dict[int, str] = {SELECTED_NONE: "none", SELECTED_FLAT: "flat", SELECTED_SIGMOID: "sigmoid"}

#: default multi-start grid: (log10_ec50 as a fraction of the tested log-dose range, hill)
#: ``multistart="auto"``: a weak fit is refitted from the other data-driven start with at most AUTO_RESTART_ITER
#: iterations (continued if it got lower without converging), then, only if still unconverged, from the first
#: AUTO_STARTS rows of the grid
DEFAULT_STARTS = np.array(
    [[0.1, 1.0], [0.9, 1.0], [0.5, 3.0], [0.5, 0.4], [0.3, 3.0], [0.7, 3.0], [0.3, 0.4], [0.7, 0.4], [1.2, 1.0],
     [-0.2, 1.0], [0.5, 1.0]]
)  # fmt: skip
AUTO_STARTS = 4
AUTO_RESTART_ITER = 20
#: ``multistart="auto"`` also refits a converged curve whose solution has a free parameter on a bound:
#: 0 never, 1 only log10_ec50 or hill on a bound, 2 any free parameter
AUTO_BOUND = 1
#: LM tuning (kernel option vector): relative RSS tolerance, damping factors, Newton steps (exact Hessian) on/off
LM_TUNING = {"ftol": 1e-10, "lam_down": 0.25, "lam_up": 4.0, "newton": 1.0}
_ROBUST = {None: 0, "soft_l1": 1, "huber": 2}
_MULTISTART = {"never": 0, "auto": 1, "always": 2}


@dataclass
class BatchFit:
    """Results of :func:`fit_batch`, one row per input curve (arrays; parameters in :data:`PARAMS` order).

    ``stderr``, ``ci_lower``, ``ci_upper`` are NaN for fixed parameters and when the covariance is
    singular; ``params`` are NaN only for ``too_few_points`` and ``non_finite`` curves. ``cov`` (n, 4, 4) is
    the full parameter covariance s^2 (J'J)^-1 (or s^2 H^-1), symmetric, with 0 rows and columns for fixed
    parameters and all NaN when there is none (singular, too few points, non-finite input).
    """

    model: str
    param_names: tuple[str, ...]
    params: np.ndarray
    stderr: np.ndarray
    cov: np.ndarray
    ci_lower: np.ndarray
    ci_upper: np.ndarray
    rss: np.ndarray
    r2: np.ndarray
    n_points: np.ndarray
    iterations: np.ndarray
    status: np.ndarray
    flat_value: np.ndarray
    flat_rss: np.ndarray
    f_pvalue: np.ndarray
    selected: np.ndarray
    aic_sigmoid: np.ndarray
    aic_flat: np.ndarray

    def __len__(self) -> int:
        return self.status.shape[0]

    def status_names(self) -> np.ndarray:
        """Status as strings (object array)."""
        return _names(self.status, STATUS_NAMES)

    def selected_names(self) -> np.ndarray:
        """Selected model as strings: ``"sigmoid"``, ``"flat"`` or ``"none"`` (not fitted)."""
        return _names(self.selected, SELECTED_NAMES)


def _names(codes: np.ndarray, mapping: dict[int, str]) -> np.ndarray:
    lut = np.array([mapping[k] for k in sorted(mapping)], dtype=object)
    return lut[codes - min(mapping)]


def check_options(selection: str, ftest_df: str, robust: str | None, multistart: str, alpha: float) -> None:
    """ConfigError naming the first invalid model-selection, loss or multi-start option."""
    if selection not in ("ftest", "aic"):
        raise ConfigError(f"selection must be 'ftest' or 'aic', not {selection!r}")
    if ftest_df not in ("standard", "grmetrics"):
        raise ConfigError(f"ftest_df must be 'standard' or 'grmetrics', not {ftest_df!r}")
    if robust not in _ROBUST:
        raise ConfigError(f"robust must be None, 'soft_l1' or 'huber', not {robust!r}")
    if multistart not in _MULTISTART:
        raise ConfigError(f"multistart must be one of {sorted(_MULTISTART)}, not {multistart!r}")
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha must be in (0, 1), not {alpha!r}")


def _prepare(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
    """Validated contiguous arrays, the point code array, the initial status and the non-missing counts."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    if x.ndim == 1:
        x, y = x[None, :], y[None, :]
    if x.ndim != 2 or x.shape != y.shape:
        raise FitError(f"x and y must be 2-D arrays of the same shape, got {x.shape} and {y.shape}")
    code = np.empty(x.shape, dtype=np.uint8)
    status = np.empty(x.shape[0], dtype=np.int64)
    n_points = np.empty(x.shape[0], dtype=np.int64)
    K.point_codes(x, y, code, status, n_points)
    return x, y, code, status, n_points


def _extremes(x: np.ndarray, y: np.ndarray, code: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per-curve finite log-dose and response ranges (NaN-free: 0 where undefined)."""
    out = np.empty((4, x.shape[0]))
    K.extremes(x, code, y, out)
    return tuple(out)


def fit_batch(
    x: np.ndarray,
    y: np.ndarray,
    *,
    model: str = "ll4",
    robust: str | None = None,
    f_scale: float | None = None,
    max_iter: int = 200,
    selection: str = "ftest",
    alpha: float = 0.05,
    ftest_df: str = "standard",
    bounds: dict[str, tuple[float, float]] | None = None,
    multistart: str = "auto",
    multistart_r2: float = 0.5,
    starts: np.ndarray | None = None,
    confidence: float = 0.95,
    covariance: str = "jacobian",
) -> BatchFit:
    """Fit one sigmoid per row of ``x``, ``y`` and select it against the flat model.

    Parameters
    ----------
    x, y
        Float arrays (n_curves, max_points): log10 molar concentration and response, NaN-padded (a point with
        NaN in x or y is ignored). ``x = -inf`` is a dose-0 (control) point, evaluated at ``top``.
        A curve with an infinite response or ``x = +inf`` gets status ``non_finite``.
    model
        ``"ll4"``, ``"ll3"``, ``"ll2"`` or ``"gr_sigmoid"`` (see :mod:`doseatlas.fit.models`).
    robust, f_scale
        ``None`` (least squares), ``"soft_l1"`` or ``"huber"`` (IRLS); residual scale ``f_scale`` in response
        units, default 1.4826 * MAD of the least-squares residuals per curve.
    max_iter
        LM iterations per start.
    selection, alpha, ftest_df
        ``"ftest"`` (sigmoid when p < alpha) or ``"aic"`` (sigmoid when its AIC is lower). ``ftest_df``:
        ``"standard"`` (denominator df n - p) or ``"grmetrics"`` (n - p + 1, as GRmetrics / gDR).
    bounds
        Absolute (lo, hi) per parameter name, replacing the model's rule (use +-inf for none).
    multistart, multistart_r2, starts
        Every curve starts from the better (lower RSS) of two data-driven starts (logit regression, best
        step function). ``"auto"``: when LM does not converge, R^2 < ``multistart_r2`` or the RSS stays above
        the other start's, refit from the other start, and from the ``starts`` grid (rows: log10_ec50 as a
        fraction of the log-dose range, hill) if still unconverged; ``"always"``: both starts and the whole
        grid with full iterations; ``"never"``: the better start only.
    confidence
        Level of the Wald intervals (t quantile with n - p df).
    covariance
        ``"jacobian"``: s^2 (J'J)^-1 (Gauss-Newton, the default); ``"hessian"``: s^2 H^-1 with H the exact
        Hessian of RSS / 2 (what drc reports; costs a vectorized pass over the data).
    """
    check_options(selection, ftest_df, robust, multistart, alpha)
    if covariance not in ("jacobian", "hessian"):
        raise ConfigError(f"covariance must be 'jacobian' or 'hessian', not {covariance!r}")
    spec = get_model(model)
    x, y, code, status, n_points = _prepare(x, y)
    n = x.shape[0]
    xmin, xmax, ymin, ymax = _extremes(x, y, code)
    lo, hi = resolve_bounds(spec, xmin, xmax, ymin, ymax, overrides=bounds)
    free = np.array([p not in spec.fixed for p in PARAMS])
    fixed = np.array([spec.fixed.get(p, 0.0) for p in PARAMS])
    grid = np.ascontiguousarray(DEFAULT_STARTS if starts is None else starts, dtype=np.float64)
    opt = _options(max_iter, multistart, multistart_r2, robust, f_scale)
    params = np.empty((n, 4))
    cov = np.empty((n, 4, 4))
    rss, mean, rss_flat = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    iters = np.zeros(n, dtype=np.int64)
    params[status >= 0] = np.nan
    cov[status >= 0] = np.nan
    K.fit_all(x, y, code, lo, hi, free, fixed, grid, opt, params, cov, rss, mean, rss_flat, iters, status)
    if covariance == "hessian":
        cov = hessian_cov(x, y, code, params, free)
    return _finish(spec.name, spec.n_free, params, cov, rss, mean, rss_flat, iters, status, n_points, free,
                   selection=selection, alpha=alpha, ftest_df=ftest_df, confidence=confidence)  # fmt: skip


def _options(max_iter: int, multistart: str, multistart_r2: float, robust: str | None, f_scale) -> np.ndarray:
    """The kernel option vector (indices ``K.O_*``)."""
    opt = np.zeros(K.N_OPT)
    opt[K.O_MAX_ITER] = max_iter
    opt[K.O_MS_MODE] = _MULTISTART[multistart]
    opt[K.O_MS_RATIO] = 1.0 - multistart_r2
    opt[K.O_ROBUST] = _ROBUST[robust]
    opt[K.O_F_SCALE] = f_scale or 0.0
    opt[K.O_AUTO_STARTS] = AUTO_STARTS
    opt[K.O_AUTO_ITER] = AUTO_RESTART_ITER
    opt[K.O_MS_BOUND] = AUTO_BOUND
    opt[K.O_FTOL] = LM_TUNING["ftol"]
    opt[K.O_LAM_DOWN] = LM_TUNING["lam_down"]
    opt[K.O_LAM_UP] = LM_TUNING["lam_up"]
    opt[K.O_NEWTON] = LM_TUNING["newton"]
    return opt


def _finish(model, p, params, cov, rss, mean, rss_flat, iters, status, n_points, free, **how) -> BatchFit:
    """Covariance scaling, intervals, R^2, flat-vs-sigmoid selection and final status codes (one compiled
    pass; see :func:`doseatlas.fit._kernel.finalize`)."""
    n = rss.shape[0]
    tq = _t_quantile(np.arange(int(n_points.max(initial=0)) + 1), 0.5 + how["confidence"] / 2)
    out = np.empty((16, n))
    selected = np.empty(n, dtype=np.int64)
    df2_extra = 1 if how["ftest_df"] == "grmetrics" else 0
    K.finalize(params, cov, rss, rss_flat, n_points, status, free, p, tq, df2_extra, how["alpha"],
               how["selection"] == "aic", out, selected)  # fmt: skip
    stderr, lower, upper = out[0:4].T, out[4:8].T, out[8:12].T
    return BatchFit(
        model=model, param_names=PARAMS, params=params, stderr=stderr, cov=cov, ci_lower=lower,
        ci_upper=upper, rss=rss, r2=out[12], n_points=n_points, iterations=iters, status=status,
        flat_value=mean, flat_rss=rss_flat, f_pvalue=out[13], selected=selected, aic_sigmoid=out[14],
        aic_flat=out[15],
    )  # fmt: skip


def _t_quantile(df: np.ndarray, q: float) -> np.ndarray:
    """Student t quantile for integer degrees of freedom (NaN where df <= 0), by table look-up."""
    df = np.asarray(df, dtype=np.int64)
    table = np.full(max(int(df.max(initial=0)), 0) + 1, np.nan)
    table[1:] = special.stdtrit(np.arange(1, table.size, dtype=np.float64), q)
    return table[np.maximum(df, 0)]


def hessian_cov(x: np.ndarray, y: np.ndarray, code: np.ndarray, params: np.ndarray, free: np.ndarray):
    """H^-1 on the free parameters (n, 4, 4; fixed rows/columns 0, NaN when H is not positive definite),
    H = exact Hessian of RSS / 2 = J'J - sum r * d2f (vectorized)."""
    xs = np.where(code == 2, K.X_ZERO_DOSE, np.where(code > 0, x, 0.0))
    w = (code > 0).astype(np.float64)
    t, b, e, h = (params[:, j : j + 1] for j in range(4))
    with np.errstate(all="ignore"):
        dx = xs - e
        s = 1.0 / (1.0 + 10.0 ** np.clip(h * dx, -K.ZMAX, K.ZMAX))
        d = t - b
        s1 = -K.LN10 * s * (1.0 - s)  # ds/dz
        s2 = -K.LN10 * (1.0 - 2.0 * s) * s1  # d2s/dz2
        r = np.where(code > 0, y, 0.0) - (b + d * s)
        jac = [s, 1.0 - s, -d * s1 * h, d * s1 * dx]
        zero = np.zeros_like(s)
        d2 = {(0, 2): -s1 * h, (0, 3): s1 * dx, (1, 2): s1 * h, (1, 3): -s1 * dx, (2, 2): d * s2 * h * h,
              (2, 3): -d * (s2 * dx * h + s1), (3, 3): d * s2 * dx * dx}  # fmt: skip
        H = np.empty((x.shape[0], 4, 4))
        for i in range(4):
            for j in range(i, 4):
                H[:, i, j] = H[:, j, i] = (w * (jac[i] * jac[j] - r * d2.get((i, j), zero))).sum(axis=1)
    idx = np.flatnonzero(free)
    sub = H[:, idx[:, None], idx[None, :]]
    out = np.full((x.shape[0], 4, 4), np.nan)
    for k in np.flatnonzero(np.isfinite(sub).all(axis=(1, 2))):  # small per-curve inverses; on demand only
        try:
            if np.all(np.linalg.eigvalsh(sub[k]) > 0):
                out[k] = 0.0
                out[k][np.ix_(idx, idx)] = np.linalg.inv(sub[k])
        except np.linalg.LinAlgError:
            pass
    return 0.5 * (out + np.swapaxes(out, 1, 2))


def _aic(rss: np.ndarray, n: np.ndarray, k: int) -> np.ndarray:
    """Gaussian AIC up to a constant: n log(RSS / n) + 2 (k + 1)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return n * np.log(np.maximum(rss, 1e-300) / n) + 2.0 * (k + 1)


def f_test_pvalue(
    rss_sigmoid: np.ndarray, rss_flat: np.ndarray, n: np.ndarray, p: int, *, ftest_df: str = "standard"
) -> np.ndarray:
    """p-value of the F-test flat (1 parameter) vs sigmoid (p parameters), vectorized.

    F = ((RSS_flat - RSS_sig) / (p - 1)) / (RSS_sig / df2), df2 = n - p (``"standard"``) or n - p + 1
    (``"grmetrics"``). A sigmoid that does not improve on the flat model has p = 1; a perfect one, p = 0.
    """
    df1 = p - 1.0
    df2 = n - p + (1.0 if ftest_df == "grmetrics" else 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.maximum(rss_flat - rss_sigmoid, 0.0)
        f = (gain / df1) / (rss_sigmoid / df2)
        f = np.where(gain > 0, f, 0.0)
        f = np.where((gain > 0) & (rss_sigmoid <= 0), np.inf, f)
        f = np.atleast_1d(np.asarray(f, dtype=np.float64))
        pval = np.empty(f.size)
        K.f_sf(df1, np.broadcast_to(df2, f.shape).astype(np.float64).ravel(), f.ravel(), pval)
        pval = pval.reshape(f.shape)
    return np.where(np.isnan(rss_sigmoid) | np.isnan(rss_flat), np.nan, pval)


def warmup() -> float:
    """Compile (or load from the numba cache) the kernel on a tiny batch; returns the seconds taken."""
    t0 = time.perf_counter()
    x = np.tile(np.linspace(-9.0, -5.0, 6), (2, 1))
    y = 1.0 / (1.0 + 10.0 ** (x + 7.0))
    fit_batch(x, y)
    return time.perf_counter() - t0
