"""The ``shrink`` fit policy: a value for every curve, by borrowing strength across cell lines.

The default (``refuse``) policy fits each curve on its own and refuses what the curve cannot support (a flat
curve has no EC50). Screens such as GDSC instead fit a nonlinear mixed-effects model, so that a noisy or
flat curve is pulled towards what the same drug does in the other cell lines. This module is that second
policy, chosen explicitly and recorded with every result (``fit_policy = "shrink"``).

Model (one population per *group*: the curves of one perturbagen in one data set, readout, duration and
response scale, i.e. everything of the curve key but the cell line)::

    y_ij = f(x_ij; top_i, bottom_i, e_i, h_i) + eps_ij,      eps_ij ~ N(0, sigma_g^2)
    e_i ~ N(mu_e, tau_e^2),   ln h_i ~ N(mu_h, tau_h^2)        (random effects of curve i in group g)

with ``e = log10 EC50``; ``top`` and ``bottom`` are per-curve parameters within the model's bounds, without
a prior. The population (mu, tau, sigma) is estimated by Laplace EM: each E step is a batched
Levenberg-Marquardt MAP fit of every curve at once (objective ``RSS_i + sigma^2 sum_j (theta_ij - mu_j)^2
/ tau_j^2``), the M step sets ``mu`` to the mean of the MAP estimates, ``tau^2`` to the mean of their squared
deviations plus posterior variances, and ``sigma^2`` to the pooled RSS over the residual degrees of freedom
left by the effective number of parameters ``tr(J'J (J'J + Lambda)^-1)``.

Standard errors and intervals are those of the Laplace posterior ``sigma^2 (J'J + Lambda)^-1`` (normal
95% intervals). Groups with fewer than ``min_curves`` fittable curves have no population to borrow from:
their curves keep the refusal policy's fit and say so (``fit_policy = "refuse"``).

This is not GDSC's model: gdscIC50 fits a 2-parameter logistic (top 1, bottom 0) with random effects per cell
line (position and scale) and per drug within cell line (position) on one global fixed effect, by REML. The
difference is measured on ``docs/validation.md``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from doseatlas.errors import ConfigError
from doseatlas.fit import _kernel as K
from doseatlas.fit.engine import (
    SELECTED_SIGMOID,
    STATUS_CODES,
    BatchFit,
    _extremes,
    _prepare,
)
from doseatlas.fit.models import PARAMS, get_model, resolve_bounds

#: engine parameters that carry a random effect (hill on the log scale)
RANDOM: tuple[str, ...] = ("log10_ec50", "hill")
_E, _H = PARAMS.index("log10_ec50"), PARAMS.index("hill")
_FITTABLE = (K.ST_CONVERGED, K.ST_FLAT, K.ST_MAX_ITER, K.ST_SINGULAR)
_Z95 = 1.959963984540054
#: LM convergence: relative objective decrease and largest parameter move of an accepted step
FTOL, XTOL = 1e-10, 1e-9


@dataclass(frozen=True)
class ShrinkOptions:
    """Options of the ``shrink`` policy (recorded in the provenance).

    Parameters
    ----------
    min_curves
        Fewest fittable curves in a group for a population to be estimated.
    max_rounds, tol
        EM rounds at most; stop when no population mean or SD moves by more than ``tol``.
    max_iter
        LM iterations per curve and round (warm-started from the previous round).
    min_sd
        Floor of the population SDs (log10 EC50 in decades, ln hill), so that no group collapses to one curve.
    """

    min_curves: int = 5
    max_rounds: int = 100
    tol: float = 1e-3
    max_iter: int = 100
    min_sd: float = 0.02

    def __post_init__(self) -> None:
        if self.min_curves < 2:
            raise ConfigError(f"min_curves must be at least 2, got {self.min_curves}")
        if self.max_rounds < 1 or self.max_iter < 1:
            raise ConfigError("max_rounds and max_iter must be positive")
        if not self.tol > 0 or not self.min_sd > 0:
            raise ConfigError("tol and min_sd must be positive")


@dataclass
class Population:
    """Per group: curves pooled, population means and SDs of (log10 EC50, ln hill), residual SD, EM rounds."""

    n_curves: np.ndarray
    mean: np.ndarray
    sd: np.ndarray
    sigma: np.ndarray
    rounds: np.ndarray

    def table(self) -> pd.DataFrame:
        """One row per group (``group`` = the code passed to :func:`shrink_batch`)."""
        return pd.DataFrame(
            {
                "n_curves": self.n_curves,
                "mean_log10_ec50": self.mean[:, 0],
                "sd_log10_ec50": self.sd[:, 0],
                "mean_ln_hill": self.mean[:, 1],
                "sd_ln_hill": self.sd[:, 1],
                "sigma": self.sigma,
                "rounds": self.rounds,
            }
        ).rename_axis("group")


@dataclass
class _Design:
    """The usable points of the pooled curves, flat (ragged curves, no padding): log10 dose (dose 0 replaced),
    response and curve index per point; per-curve bounds on the internal scale."""

    x: np.ndarray
    y: np.ndarray
    c: np.ndarray
    n: int
    lo: np.ndarray
    hi: np.ndarray
    free: np.ndarray
    random: np.ndarray  # (4,) bool: which internal parameters carry a prior

    def take(self, idx: np.ndarray) -> _Design:
        """The design of the curves ``idx`` (sorted), renumbered 0..len(idx)-1."""
        keep = np.zeros(self.n, dtype=bool)
        keep[idx] = True
        points = keep[self.c]
        renumber = np.cumsum(keep) - 1
        return _Design(self.x[points], self.y[points], renumber[self.c[points]], len(idx), self.lo[idx],
                       self.hi[idx], self.free, self.random)  # fmt: skip

    def total(self, values: np.ndarray) -> np.ndarray:
        """Per-curve sum of a per-point array."""
        return np.bincount(self.c, weights=values, minlength=self.n)

    def counts(self) -> np.ndarray:
        """Points per curve."""
        return np.bincount(self.c, minlength=self.n)


def shrink_batch(
    x: np.ndarray,
    y: np.ndarray,
    fit: BatchFit,
    *,
    groups: np.ndarray,
    bounds: dict[str, tuple[float, float]] | None = None,
    options: ShrinkOptions | None = None,
) -> tuple[BatchFit, np.ndarray, Population]:
    """Refit the curves of ``fit`` under the shrink policy.

    Parameters
    ----------
    x, y
        The arrays ``fit`` was made from (see :func:`doseatlas.fit.fit_batch`).
    fit
        The refusal policy's fit: its estimates start the EM and stay for curves that are not pooled.
    groups
        Integer group code per curve (curves of a group share one population).
    bounds
        The parameter bound overrides ``fit`` was made with.
    options
        :class:`ShrinkOptions`.

    Returns
    -------
    (BatchFit, pooled, Population)
        The fit with pooled curves replaced (status ``converged`` or ``max_iter``, selected ``sigmoid``),
        the boolean mask of pooled curves, and the population per group code.
    """
    options = options or ShrinkOptions()
    groups = np.asarray(groups, dtype=np.int64)
    n_groups = int(groups.max(initial=-1)) + 1
    fittable = np.isin(fit.status, _FITTABLE) & np.isfinite(fit.params[:, [_E, _H]]).all(axis=1)
    counts = np.bincount(groups[fittable], minlength=n_groups)
    pooled = fittable & (counts[groups] >= options.min_curves)
    population = _empty_population(counts, n_groups)
    if not pooled.any():
        return fit, pooled, population
    design = _design(x[pooled], y[pooled], fit.model, bounds)
    g = np.unique(groups[pooled], return_inverse=True)[1]
    theta, state = _em(design, _start(fit, pooled, design), g, options)
    population = _fill_population(population, np.unique(groups[pooled]), state)
    return _replace(fit, pooled, theta, state), pooled, population


def _empty_population(counts: np.ndarray, n_groups: int) -> Population:
    nan2 = np.full((n_groups, 2), np.nan)
    return Population(
        counts, nan2, nan2.copy(), np.full(n_groups, np.nan), np.zeros(n_groups, dtype=np.int64)
    )


def _fill_population(pop: Population, codes: np.ndarray, state: dict) -> Population:
    pop.mean[codes], pop.sd[codes] = state["mu"], np.sqrt(state["tau2"])
    pop.sigma[codes], pop.rounds[codes] = np.sqrt(state["sigma2"]), state["rounds"]
    return pop


def _design(x: np.ndarray, y: np.ndarray, model: str, bounds) -> _Design:
    spec = get_model(model)
    x, y, code, _, _ = _prepare(x, y)
    xmin, xmax, ymin, ymax = _extremes(x, y, code)
    lo, hi = resolve_bounds(spec, xmin, xmax, ymin, ymax, overrides=bounds)
    if np.any(lo[:, _H] <= 0):
        raise ConfigError("the shrink policy needs a positive lower bound on hill (it pools ln hill)")
    lo[:, _H], hi[:, _H] = np.log(lo[:, _H]), np.log(hi[:, _H])
    rows, cols = np.nonzero(code > 0)
    xs = np.where(code[rows, cols] == 2, K.X_ZERO_DOSE, x[rows, cols])
    free = np.array([p not in spec.fixed for p in PARAMS])
    random = np.array([p in RANDOM and p not in spec.fixed for p in PARAMS])
    return _Design(xs, y[rows, cols], rows, x.shape[0], lo, hi, free, random)


def _start(fit: BatchFit, pooled: np.ndarray, d: _Design) -> np.ndarray:
    """Internal parameters (top, bottom, log10_ec50, ln hill) from the refusal fit, inside the bounds."""
    theta = fit.params[pooled].copy()
    theta[:, _H] = np.log(np.abs(theta[:, _H]))
    return np.clip(theta, d.lo, d.hi)


# ------------------------------------------------------------------------------ model on the internal scale
def _model(theta: np.ndarray, d: _Design, *, second: bool = False):
    """Fitted values (N,) and Jacobian (N, 4) in (top, bottom, log10_ec50, ln hill), per point; with
    ``second``, also the second derivatives (N, 4, 4) for Newton steps."""
    p = theta[d.c]
    top, bottom, e, h = p[:, 0], p[:, 1], p[:, 2], np.exp(p[:, 3])
    dx = d.x - e
    s = 1.0 / (1.0 + np.exp(K.LN10 * np.clip(h * dx, -K.ZMAX, K.ZMAX)))
    span = top - bottom
    s1 = -K.LN10 * s * (1.0 - s)  # ds/dz, z = h (x - log10_ec50)
    jac = np.stack([s, 1.0 - s, -span * s1 * h, span * s1 * h * dx], axis=1) * d.free
    if not second:
        return bottom + span * s, jac
    s2 = -K.LN10 * (1.0 - 2.0 * s) * s1  # d2s/dz2
    d2 = np.zeros((len(s), 4, 4))
    pairs = {(0, 2): -s1 * h, (0, 3): s1 * h * dx, (1, 2): s1 * h, (1, 3): -s1 * h * dx,
             (2, 2): span * s2 * h * h, (2, 3): -span * (s2 * h * h * dx + s1 * h),
             (3, 3): span * (s2 * (h * dx) ** 2 + s1 * h * dx)}  # fmt: skip
    for (i, j), value in pairs.items():
        d2[:, i, j] = d2[:, j, i] = value
    return bottom + span * s, jac, d2 * np.outer(d.free, d.free)


def _objective(
    theta: np.ndarray, d: _Design, mu: np.ndarray, lam: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(penalized objective, RSS) per curve; ``lam`` (n, 4) = sigma^2 / tau^2 on the random parameters."""
    f, _ = _model(theta, d)
    rss = d.total((d.y - f) ** 2)
    return rss + (lam * (theta - mu) ** 2).sum(axis=1), rss


def _normal(theta: np.ndarray, d: _Design, mu: np.ndarray, lam: np.ndarray, *, newton: bool = False):
    """A = J'J + diag(lam) and g = J'r - lam (theta - mu); fixed parameters get identity rows. With
    ``newton``, A is the exact Hessian of the objective / 2 (J'J - sum r d2f + diag(lam)) where that is
    positive definite, J'J + diag(lam) elsewhere."""
    f, jac, *rest = _model(theta, d, second=newton)
    r = d.y - f
    a = np.empty((d.n, 4, 4))
    for i in range(4):
        for j in range(i, 4):
            a[:, i, j] = a[:, j, i] = d.total(jac[:, i] * jac[:, j])
    a[:, np.arange(4), np.arange(4)] += lam + ~d.free
    g = np.stack([d.total(jac[:, i] * r) for i in range(4)], axis=1) - lam * (theta - mu)
    if newton:
        curvature = np.stack([[d.total(r * rest[0][:, i, j]) for j in range(4)] for i in range(4)], axis=-1)
        exact = a - np.moveaxis(curvature, 0, 1)
        definite = np.linalg.eigvalsh(np.nan_to_num(exact)).min(axis=1) > 0
        a = np.where(definite[:, None, None], exact, a)
    return a, g * d.free


def _map(theta: np.ndarray, d: _Design, mu: np.ndarray, lam: np.ndarray, max_iter: int):
    """Batched bounded LM on the penalized objective; returns (theta, rss, converged).

    Converged: an accepted step that lowered the objective by at most ``FTOL`` (relative) or moved no
    parameter by more than ``XTOL``, or a damping that no step can pass. Only unconverged curves are computed.
    """
    theta = theta.copy()
    obj, rss = _objective(theta, d, mu, lam)
    damp = np.full(len(theta), 1e-3)
    done = np.zeros(len(theta), dtype=bool)
    for _ in range(max_iter):
        idx = np.flatnonzero(~done)
        if idx.size == 0:
            break
        sub, t, m, la = d.take(idx), theta[idx], mu[idx], lam[idx]
        a, g = _normal(t, sub, m, la, newton=True)
        _hold_bounds(a, g, t, sub)
        diag = a[:, np.arange(4), np.arange(4)].copy()
        a[:, np.arange(4), np.arange(4)] += damp[idx, None] * diag
        step = np.linalg.solve(a, g[..., None])[..., 0]
        trial = np.clip(t + np.nan_to_num(step), sub.lo, sub.hi)
        new_obj, new_rss = _objective(trial, sub, m, la)
        better = new_obj <= obj[idx]
        small = (obj[idx] - new_obj <= FTOL * (1.0 + obj[idx])) | (np.abs(trial - t).max(axis=1) <= XTOL)
        theta[idx] = np.where(better[:, None], trial, t)
        obj[idx], rss[idx] = np.where(better, new_obj, obj[idx]), np.where(better, new_rss, rss[idx])
        damp[idx] = np.where(better, damp[idx] * 0.25, damp[idx] * 4.0)
        done[idx] = (better & small) | (damp[idx] >= 1e12)
        np.clip(damp, 1e-12, 1e12, out=damp)
    return theta, rss, done


def _hold_bounds(a: np.ndarray, g: np.ndarray, theta: np.ndarray, d: _Design) -> None:
    """Active set: a parameter on a bound that the gradient pushes outward is held there for this step
    (its row and column of ``a`` become the identity, its gradient 0), so the others move freely."""
    held = ((theta <= d.lo) & (g < 0)) | ((theta >= d.hi) & (g > 0))
    if not held.any():
        return
    keep = ~held
    a *= keep[:, :, None] & keep[:, None, :]
    a[:, np.arange(4), np.arange(4)] += held
    g *= keep


# ------------------------------------------------------------------------------ EM over all groups at once
def _group_mean(values: np.ndarray, g: np.ndarray, n_groups: int) -> np.ndarray:
    sums = np.zeros((n_groups, values.shape[1]))
    np.add.at(sums, g, values)
    return sums / np.bincount(g, minlength=n_groups)[:, None]


def _initial_population(theta: np.ndarray, g: np.ndarray, n_groups: int, min_sd: float):
    """Robust start: median and 1.4826 MAD of the refusal fits per group."""
    frame = pd.DataFrame(theta[:, [_E, _H]], columns=["e", "u"]).assign(g=g)
    med = frame.groupby("g")[["e", "u"]].median().to_numpy()
    mad = (frame[["e", "u"]] - med[g]).abs().assign(g=g).groupby("g").median().to_numpy() * 1.4826
    return med, np.maximum(mad, min_sd) ** 2


def _em(d: _Design, theta: np.ndarray, g: np.ndarray, options: ShrinkOptions):
    n_groups = int(g.max()) + 1
    pop = {
        "mu": None,
        "tau2": None,
        "n_obs": np.bincount(g, weights=d.counts(), minlength=n_groups),
    }
    pop["mu"], pop["tau2"] = _initial_population(theta, g, n_groups, options.min_sd)
    _, rss = _objective(theta, d, theta, np.zeros_like(theta))
    pop["sigma2"] = _pooled_sigma2(rss, np.full(len(theta), float(d.free.sum())), g, pop["n_obs"])
    rounds = np.zeros(n_groups, dtype=np.int64)
    active = np.ones(n_groups, dtype=bool)
    theta = _better_start(theta, d, *_prior(pop["mu"], pop["tau2"], pop["sigma2"], g, d))
    for _ in range(options.max_rounds):
        idx = np.flatnonzero(active[g])  # only the curves of groups whose population still moves
        theta[idx], moved = _em_round(theta[idx], d.take(idx), g[idx], pop, active, options)
        rounds += active
        active &= moved > options.tol
        if not active.any():
            break
    prior_mu, lam = _prior(pop["mu"], pop["tau2"], pop["sigma2"], g, d)
    theta, rss, converged = _map(theta, d, prior_mu, lam, options.max_iter)
    return theta, {
        **pop,
        "rounds": rounds,
        "rss": rss,
        "converged": converged,
        "lam": lam,
        "design": d,
        "g": g,
    }


def _em_round(theta, d: _Design, g, pop: dict, active: np.ndarray, options: ShrinkOptions):
    """One E (MAP fits) and M (population update, in place for the active groups) step; returns the MAP
    estimates and how far each group's population moved."""
    n_groups = len(active)
    prior_mu, lam = _prior(pop["mu"], pop["tau2"], pop["sigma2"], g, d)
    theta, rss, _ = _map(theta, d, prior_mu, lam, options.max_iter)
    post_var, edf = _posterior(theta, d, lam, pop["sigma2"][g])
    with np.errstate(invalid="ignore", divide="ignore"):  # groups absent from this round give NaN, unused
        new_mu = _group_mean(theta[:, [_E, _H]], g, n_groups)
        dev = (theta[:, [_E, _H]] - new_mu[g]) ** 2 + post_var
        new_tau2 = np.maximum(_group_mean(dev, g, n_groups), options.min_sd**2)
        sigma2 = _pooled_sigma2(rss, edf, g, pop["n_obs"])
    step = np.abs(np.sqrt(new_tau2) - np.sqrt(pop["tau2"])).max(axis=1)
    moved = np.where(active, np.maximum(np.abs(new_mu - pop["mu"]).max(axis=1), step), 0.0)
    pop["mu"] = np.where(active[:, None], new_mu, pop["mu"])
    pop["tau2"] = np.where(active[:, None], new_tau2, pop["tau2"])
    pop["sigma2"] = np.where(active, sigma2, pop["sigma2"])
    return theta, moved


def _better_start(theta: np.ndarray, d: _Design, prior_mu: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """The refusal fit or the population centre (same top and bottom), whichever has the lower objective
    (a refusal fit on a hill bound is a plateau that LM leaves only slowly)."""
    centre = theta.copy()
    centre[:, d.random] = prior_mu[:, d.random]
    centre = np.clip(centre, d.lo, d.hi)
    better = _objective(centre, d, prior_mu, lam)[0] < _objective(theta, d, prior_mu, lam)[0]
    return np.where(better[:, None], centre, theta)


def _prior(mu, tau2, sigma2, g, d: _Design) -> tuple[np.ndarray, np.ndarray]:
    """Per-curve prior means and penalty weights (n, 4) on the internal scale (0 where no prior)."""
    n = len(g)
    prior_mu, lam = np.zeros((n, 4)), np.zeros((n, 4))
    for k, j in enumerate((_E, _H)):
        if d.random[j]:
            prior_mu[:, j] = mu[g, k]
            lam[:, j] = sigma2[g] / tau2[g, k]
    return prior_mu, lam


def _posterior(theta: np.ndarray, d: _Design, lam: np.ndarray, sigma2: np.ndarray):
    """Posterior variances of (log10 EC50, ln hill) and the effective number of parameters per curve."""
    a, _ = _normal(theta, d, theta, lam)
    inv = _safe_inv(a)
    diag = inv[:, np.arange(4), np.arange(4)]
    edf = d.free.sum() - (lam * diag).sum(axis=1)
    return sigma2[:, None] * diag[:, [_E, _H]], edf


def _safe_inv(a: np.ndarray) -> np.ndarray:
    out = np.full_like(a, np.nan)
    ok = np.isfinite(a).all(axis=(1, 2)) & (np.linalg.cond(np.nan_to_num(a)) < 1e14)
    out[ok] = np.linalg.inv(a[ok])
    return out


def _pooled_sigma2(rss: np.ndarray, edf: np.ndarray, g: np.ndarray, n_obs: np.ndarray) -> np.ndarray:
    n_groups = len(n_obs)
    total = np.bincount(g, weights=rss, minlength=n_groups)
    df = n_obs - np.bincount(g, weights=np.nan_to_num(edf), minlength=n_groups)
    return np.maximum(total / np.maximum(df, 1.0), 1e-12)


# ------------------------------------------------------------------------------ back to a BatchFit
def _replace(fit: BatchFit, pooled: np.ndarray, theta: np.ndarray, state: dict) -> BatchFit:
    """``fit`` with the pooled curves' MAP estimates, posterior covariance and statistics."""
    d, g = state["design"], state["g"]
    a, _ = _normal(theta, d, theta, state["lam"])
    jac_t = np.ones_like(theta)
    jac_t[:, _H] = np.exp(theta[:, _H])  # d hill / d ln hill
    cov = state["sigma2"][g][:, None, None] * _safe_inv(a) * jac_t[:, :, None] * jac_t[:, None, :]
    cov *= np.outer(d.free, d.free)
    params = theta.copy()
    params[:, _H] = np.exp(theta[:, _H])
    se = np.sqrt(np.clip(cov[:, np.arange(4), np.arange(4)], 0.0, None))
    se = np.where(d.free, se, np.nan)
    out = dataclasses.replace(fit, params=fit.params.copy(), stderr=fit.stderr.copy(), cov=fit.cov.copy(),
                              ci_lower=fit.ci_lower.copy(), ci_upper=fit.ci_upper.copy(), rss=fit.rss.copy(),
                              r2=fit.r2.copy(), status=fit.status.copy(), selected=fit.selected.copy())  # fmt: skip
    out.params[pooled], out.cov[pooled], out.stderr[pooled] = params, cov, se
    out.ci_lower[pooled], out.ci_upper[pooled] = params - _Z95 * se, params + _Z95 * se
    out.rss[pooled] = state["rss"]
    mean = d.total(d.y) / np.maximum(d.counts(), 1.0)
    tss = d.total((d.y - mean[d.c]) ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        out.r2[pooled] = np.where(tss > 0, 1.0 - state["rss"] / tss, np.nan)
    code = np.where(state["converged"], STATUS_CODES["converged"], STATUS_CODES["max_iter"])
    out.status[pooled] = code
    out.iterations = fit.iterations.copy()
    out.iterations[pooled] = state["rounds"][g]  # EM rounds of the curve's group
    out.selected[pooled] = SELECTED_SIGMOID
    return out
