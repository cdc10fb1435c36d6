"""Compiled batched projected Levenberg-Marquardt for the 4-parameter log-logistic family.

One call fits every curve: ``prange`` over blocks of curves, each curve's LM in small per-block scratch
arrays, analytic Jacobian, normal equations solved by a 4x4 Cholesky with Marquardt scaling, bounds by
projection (clipping) of every trial point. Fixed parameters get a unit row in the normal matrix and a zero
step. The kernel never sees NaN or inf input: padding is excluded through the ``code`` array
(0 = skip, 1 = point, 2 = dose-0 point evaluated at x = -inf, i.e. at ``top``).

fastmath is enabled without the ``nnan``/``ninf`` flags, so the finiteness checks stay valid.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
_OPTS = {"fastmath": FASTMATH, "error_model": "numpy", "cache": True}

LN10 = math.log(10.0)
ZMAX = 300.0  # |hill * (x - log10_ec50)| is clamped here: 10^300 is finite, 1 / (1 + 10^300) ~ 0
X_ZERO_DOSE = -1.0e6  # stand-in for log10(0): with the clamp, the model there equals top to ~1e-300
BLOCK = 256

ST_UNSET = -1
ST_CONVERGED = 0
ST_FLAT = 1
ST_MAX_ITER = 2
ST_TOO_FEW = 3
ST_NON_FINITE = 4
ST_SINGULAR = 5


@njit(inline="always", **_OPTS)
def _sigmoid(z):
    if z > ZMAX:
        z = ZMAX
    elif z < -ZMAX:
        z = -ZMAX
    if z > 0.0:
        w = math.exp(-z * LN10)
        return w / (1.0 + w)
    return 1.0 / (1.0 + math.exp(z * LN10))


@njit(**_OPTS)
def _evaluate(p, xs, ys, ws, m, A, g):
    """Weighted RSS at p; fills the normal matrix A = J'WJ (upper triangle) and g = J'Wr."""
    t, b, e, h = p[0], p[1], p[2], p[3]
    d = t - b
    a00 = a01 = a02 = a03 = a11 = a12 = a13 = a22 = a23 = a33 = 0.0
    g0 = g1 = g2 = g3 = 0.0
    rss = 0.0
    for i in range(m):
        dx = xs[i] - e
        s = _sigmoid(h * dx)
        r = ys[i] - (b + d * s)
        w = ws[i]
        rss += w * r * r
        q = LN10 * s * (1.0 - s) * d
        j0 = s
        j1 = 1.0 - s
        j2 = q * h
        j3 = -q * dx
        wj0, wj1, wj2, wj3 = w * j0, w * j1, w * j2, w * j3
        a00 += wj0 * j0
        a01 += wj0 * j1
        a02 += wj0 * j2
        a03 += wj0 * j3
        a11 += wj1 * j1
        a12 += wj1 * j2
        a13 += wj1 * j3
        a22 += wj2 * j2
        a23 += wj2 * j3
        a33 += wj3 * j3
        g0 += wj0 * r
        g1 += wj1 * r
        g2 += wj2 * r
        g3 += wj3 * r
    A[0, 0], A[0, 1], A[0, 2], A[0, 3] = a00, a01, a02, a03
    A[1, 1], A[1, 2], A[1, 3] = a11, a12, a13
    A[2, 2], A[2, 3] = a22, a23
    A[3, 3] = a33
    g[0], g[1], g[2], g[3] = g0, g1, g2, g3
    return rss


@njit(**_OPTS)
def _rss(p, xs, ys, m):
    d = p[0] - p[1]
    rss = 0.0
    for i in range(m):
        r = ys[i] - (p[1] + d * _sigmoid(p[3] * (xs[i] - p[2])))
        rss += r * r
    return rss


@njit(**_OPTS)
def _cholesky(M):
    """In-place Cholesky of symmetric 4x4 M (upper triangle read, lower factor written). False if not PD."""
    for j in range(4):
        s = M[j, j]
        for k in range(j):
            s -= M[j, k] * M[j, k]
        if not s > 1e-300:
            return False
        M[j, j] = math.sqrt(s)
        for i in range(j + 1, 4):
            v = M[j, i]
            for k in range(j):
                v -= M[i, k] * M[j, k]
            M[i, j] = v / M[j, j]
    return True


@njit(**_OPTS)
def _chol_solve(L, rhs, out):
    """Solve L L' out = rhs with the lower factor L."""
    for i in range(4):
        v = rhs[i]
        for k in range(i):
            v -= L[i, k] * out[k]
        out[i] = v / L[i, i]
    for i in range(3, -1, -1):
        v = out[i]
        for k in range(i + 1, 4):
            v -= L[k, i] * out[k]
        out[i] = v / L[i, i]


@njit(**_OPTS)
def _cholesky_solve(M, rhs, out):
    """Solve M out = rhs for symmetric positive definite M (overwritten). False if not PD."""
    if not _cholesky(M):
        return False
    _chol_solve(M, rhs, out)
    return True


@njit(**_OPTS)
def _step(A, g, lam, free, M, rhs, delta):
    """Marquardt step (A + lam diag(A)) delta = g on the free parameters."""
    dmax = 0.0
    for j in range(4):
        if free[j] and A[j, j] > dmax:
            dmax = A[j, j]
    floor = max(dmax * 1e-12, 1e-300)
    for i in range(4):
        for j in range(i, 4):
            if free[i] and free[j]:
                M[i, j] = A[i, j]
            else:
                M[i, j] = 0.0
        if free[i]:
            M[i, i] = A[i, i] + lam * max(A[i, i], floor)
            rhs[i] = g[i]
        else:
            M[i, i] = 1.0
            rhs[i] = 0.0
    return _cholesky_solve(M, rhs, delta)


@njit(**_OPTS)
def _active(p, g, lo, hi, free, act):
    """Free parameters not pinned at a bound by a gradient pointing outward (projected-LM active set)."""
    for j in range(4):
        act[j] = free[j] and not ((p[j] >= hi[j] and g[j] > 0.0) or (p[j] <= lo[j] and g[j] < 0.0))


@njit(**_OPTS)
def _lm(p, xs, ys, ws, m, lo, hi, free, max_iter, work, A, g, act):
    """Projected LM from p (updated in place). Returns (weighted rss, iterations, converged).

    Converged when the relative RSS decrease of an accepted step is below 1e-10, the step is below 1e-8
    relative, or no step along the projected gradient decreases the RSS any more.
    """
    M = work[0]
    An = work[1]
    rhs = work[2, 0]
    delta = work[2, 1]
    pn = work[2, 2]
    gn = work[2, 3]
    rss = _evaluate(p, xs, ys, ws, m, A, g)
    if not math.isfinite(rss):
        return rss, 0, False
    lam = 1e-3
    it = 0
    while it < max_iter:
        it += 1
        accepted = False
        rss_new = rss
        _active(p, g, lo, hi, free, act)
        while lam < 1e16:
            if _step(A, g, lam, act, M, rhs, delta):
                for j in range(4):
                    v = p[j] + delta[j]
                    pn[j] = min(max(v, lo[j]), hi[j])
                rss_new = _evaluate(pn, xs, ys, ws, m, An, gn)
                if rss_new < rss:
                    accepted = True
                    break
            lam *= 4.0
        if not accepted:
            return rss, it, True  # no descent direction left: a (projected) minimum
        small = True
        for j in range(4):
            if abs(pn[j] - p[j]) > 1e-8 * (abs(p[j]) + 1e-8):
                small = False
            p[j] = pn[j]
            g[j] = gn[j]
            for k in range(j, 4):
                A[j, k] = An[j, k]
        drop = rss - rss_new
        rss = rss_new
        lam = max(lam * 0.25, 1e-12)
        if small or drop <= 1e-10 * rss or rss <= 1e-300:
            return rss, it, True
    return rss, it, False


@njit(**_OPTS)
def _covariance_diag(A, free, M, out, cw):
    """Diagonal of (A restricted to free)^-1 via a unit-diagonal scaled Cholesky; False when singular."""
    sc = cw[0]
    for j in range(4):
        sc[j] = 0.0
        if free[j]:
            if not A[j, j] > 0.0:
                return False
            sc[j] = 1.0 / math.sqrt(A[j, j])
    for i in range(4):
        for j in range(i, 4):
            M[i, j] = A[i, j] * sc[i] * sc[j] if (free[i] and free[j]) else 0.0
        if not free[i]:
            M[i, i] = 1.0
    if not _cholesky(M):
        return False
    for i in range(4):
        if M[i, i] * M[i, i] < 1e-13:  # pivot of the correlation-scaled matrix collapsed
            return False
    rhs = cw[1]
    sol = cw[2]
    for target in range(4):
        if not free[target]:
            out[target] = np.nan
            continue
        for i in range(4):
            rhs[i] = 1.0 if i == target else 0.0
        _chol_solve(M, rhs, sol)
        out[target] = sol[target] * sc[target] * sc[target]
    return True


@njit(**_OPTS)
def _collect(x, y, code, c, xs, ys):
    """Copy the usable points of curve c into xs, ys; returns (m, finite-dose count)."""
    m = 0
    for k in range(x.shape[1]):
        cd = code[c, k]
        if cd == 1:
            xs[m] = x[c, k]
            ys[m] = y[c, k]
            m += 1
    m1 = m
    for k in range(x.shape[1]):
        if code[c, k] == 2:
            xs[m] = X_ZERO_DOSE
            ys[m] = y[c, k]
            m += 1
    return m, m1


@njit(**_OPTS)
def _start(xs, ys, m, m1, sx, sy, p):
    """Data-driven start: top, bottom from extreme-dose means, ec50 at the midpoint crossing, hill 1."""
    for i in range(m1):  # insertion sort of the finite-dose points by x
        sx[i] = xs[i]
        sy[i] = ys[i]
        k = i
        while k > 0 and sx[k - 1] > sx[k]:
            sx[k - 1], sx[k] = sx[k], sx[k - 1]
            sy[k - 1], sy[k] = sy[k], sy[k - 1]
            k -= 1
    ng = 0  # group equal doses into (dose, mean) pairs, in place
    i = 0
    while i < m1:
        k = i
        acc = 0.0
        while k < m1 and sx[k] == sx[i]:
            acc += sy[k]
            k += 1
        sx[ng] = sx[i]
        sy[ng] = acc / (k - i)
        ng += 1
        i = k
    top = sy[0] if ng > 0 else 0.0
    if m > m1:
        acc = 0.0
        for i in range(m1, m):
            acc += ys[i]
        top = acc / (m - m1)
    bottom = sy[ng - 1] if ng > 0 else top
    mid = 0.5 * (top + bottom)
    e = 0.5 * (sx[0] + sx[ng - 1]) if ng > 0 else 0.0
    for i in range(ng - 1):
        a = sy[i] - mid
        bb = sy[i + 1] - mid
        if a * bb <= 0.0 and a != bb:
            e = sx[i] + (sx[i + 1] - sx[i]) * a / (a - bb)
            break
    p[0], p[1], p[2], p[3] = top, bottom, e, 1.0
    return ng


@njit(**_OPTS)
def _project(p, lo, hi):
    for j in range(4):
        p[j] = min(max(p[j], lo[j]), hi[j])


@njit(**_OPTS)
def _irls_weights(xs, ys, m, p, kind, f_scale, ws, tmp):
    """Soft-L1 (kind 1) or Huber (kind 2) IRLS weights from the residuals at p."""
    d = p[0] - p[1]
    for i in range(m):
        tmp[i] = abs(ys[i] - (p[1] + d * _sigmoid(p[3] * (xs[i] - p[2]))))
    s = f_scale
    if not s > 0.0:
        s = 1.4826 * np.median(tmp[:m])
        if not s > 1e-12:
            s = 1e-12
    for i in range(m):
        u = tmp[i] / s
        if kind == 1:
            ws[i] = 1.0 / math.sqrt(1.0 + u * u)
        else:
            ws[i] = 1.0 if u <= 1.345 else 1.345 / u


@njit(**_OPTS)
def _fit_curve(
    xs, ys, ws, m, m1, lo, hi, free, nfree, fixed, starts, opt, scratch, work, A, g, best, out_p, act
):
    """Fit one curve: start, LM, multi-start, robust IRLS. Returns (rss, iterations, converged)."""
    max_iter, ms_mode, ms_ratio, robust, f_scale, rss_flat = (
        int(opt[0]),
        int(opt[1]),
        opt[2],
        int(opt[3]),
        opt[4],
        opt[5],
    )
    for i in range(m):
        ws[i] = 1.0
    p = out_p
    ng = _start(xs, ys, m, m1, scratch[0], scratch[1], p)
    for j in range(4):
        if not free[j]:
            p[j] = fixed[j]
        scratch[2, j] = p[j]  # keep the data-driven start for multi-start
    _project(p, lo, hi)
    rss, iters, conv = _lm(p, xs, ys, ws, m, lo, hi, free, max_iter, work, A, g, act)
    need = ms_mode == 2 or (ms_mode == 1 and (not conv or not rss <= ms_ratio * rss_flat))
    n_starts = starts.shape[0]
    restart_iter = max_iter
    if ms_mode == 1:  # auto: a few starts with a short iteration budget
        n_starts = min(n_starts, int(opt[6]))
        restart_iter = min(max_iter, int(opt[7]))
    if need and ng >= 2:
        xlo = scratch[0, 0]
        xhi = scratch[0, ng - 1]
        for j in range(4):
            best[j] = p[j]
        for s in range(n_starts):
            for j in range(4):
                p[j] = scratch[2, j]
            p[2] = xlo + starts[s, 0] * (xhi - xlo)
            p[3] = starts[s, 1]
            _project(p, lo, hi)
            r2, it2, c2 = _lm(p, xs, ys, ws, m, lo, hi, free, restart_iter, work, A, g, act)
            iters += it2
            if r2 < rss or (r2 <= rss and c2 and not conv):
                rss, conv = r2, c2
                for j in range(4):
                    best[j] = p[j]
        for j in range(4):
            p[j] = best[j]
    if robust > 0 and m > nfree:
        for _ in range(20):
            for j in range(4):
                best[j] = p[j]
            _irls_weights(xs, ys, m, p, robust, f_scale, ws, scratch[2])
            _, it2, conv = _lm(p, xs, ys, ws, m, lo, hi, free, max_iter, work, A, g, act)
            iters += it2
            moved = 0.0
            for j in range(4):
                moved = max(moved, abs(p[j] - best[j]) / (abs(best[j]) + 1e-6))
            if moved < 1e-6:
                break
        rss = _rss(p, xs, ys, m)
    # normal matrix at the solution (weighted for robust fits) for the covariance
    _evaluate(p, xs, ys, ws, m, A, g)
    return rss, iters, conv


@njit(parallel=True, **_OPTS)
def fit_all(
    x, y, code, lo, hi, free, fixed, starts, opt, params, var_diag, rss, flat_mean, flat_rss, iters, status
):
    """Fit every curve (rows of x, y); results written into the output arrays.

    ``status`` is an input too: rows already set (>= 0, e.g. non_finite) are skipped.
    ``var_diag`` receives diag((J'J)^-1) (not yet scaled by s^2). ``opt`` = (max_iter, multistart mode,
    multistart R^2 ratio, robust kind, f_scale, rss_flat (set per curve), auto starts, auto restart iterations).
    """
    n, mp = x.shape
    nfree = 0
    for j in range(4):
        if free[j]:
            nfree += 1
    nblocks = (n + BLOCK - 1) // BLOCK
    for blk in prange(nblocks):
        xs = np.empty(mp)
        ys = np.empty(mp)
        ws = np.empty(mp)
        scratch = np.empty((3, max(mp, 4)))
        work = np.empty((3, 4, 4))
        A = np.zeros((4, 4))
        g = np.empty(4)
        best = np.empty(4)
        vd = np.empty(4)
        myopt = opt.copy()
        act = np.empty(4, dtype=np.bool_)
        cov_work = np.empty((3, 4))
        for c in range(blk * BLOCK, min(n, (blk + 1) * BLOCK)):
            if status[c] >= 0:
                continue
            m, m1 = _collect(x, y, code, c, xs, ys)
            acc = 0.0
            for i in range(m):
                acc += ys[i]
            mean = acc / m if m > 0 else np.nan
            ss = 0.0
            for i in range(m):
                ss += (ys[i] - mean) * (ys[i] - mean)
            flat_mean[c] = mean
            flat_rss[c] = ss if m > 0 else np.nan
            if m <= nfree:
                status[c] = ST_TOO_FEW
                for j in range(4):
                    params[c, j] = np.nan
                    var_diag[c, j] = np.nan
                rss[c] = np.nan
                continue
            myopt[5] = ss
            r, it, conv = _fit_curve(
                xs,
                ys,
                ws,
                m,
                m1,
                lo[c],
                hi[c],
                free,
                nfree,
                fixed,
                starts,
                myopt,
                scratch,
                work,
                A,
                g,
                best,
                vd,
                act,
            )
            for j in range(4):
                params[c, j] = vd[j]
            rss[c] = r
            iters[c] = it
            ok = _covariance_diag(A, free, work[0], vd, cov_work)
            for j in range(4):
                var_diag[c, j] = vd[j] if ok else np.nan
            if not conv:
                status[c] = ST_MAX_ITER
            elif not ok:
                status[c] = ST_SINGULAR
            else:
                status[c] = ST_CONVERGED
