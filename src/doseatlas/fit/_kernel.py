"""Compiled batched projected Levenberg-Marquardt for the 4-parameter log-logistic family.

One call fits every curve: ``prange`` over blocks of curves, each curve's LM in small per-block scratch
arrays, analytic Jacobian and Hessian, Newton steps (exact Hessian) when it is positive definite and
Gauss-Newton steps otherwise, 4x4 systems solved by an unrolled LDL' with Marquardt scaling, bounds by
projection (clipping) of every trial point. Fixed parameters get a unit row in the system and a zero step.
Two data-driven starts (logit regression, best step function); multi-start on weak fits. The kernel never sees NaN or inf input: padding is excluded through the ``code`` array
(0 = skip, 1 = point, 2 = dose-0 point evaluated at x = -inf, i.e. at ``top``).

Least squares runs on the points grouped by dose (weight = number of replicates, response = their mean,
plus the constant within-dose sum of squares): exactly the same RSS, gradient and J'J at half the cost for
duplicate designs. A trial step costs one pass with one ``exp`` per dose (the sigmoid values are kept);
the normal matrix of an accepted step is formed from the kept values without another ``exp``.

The input codes and ranges, the covariance scaling, intervals, F-test p-values (regularized incomplete
beta) and AICs are compiled parallel passes too (:func:`point_codes`, :func:`extremes`, :func:`finalize`).

fastmath is enabled without the ``nnan``/``ninf`` flags, so the finiteness checks stay valid.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

#: no "reassoc" / "contract": with them LLVM's result depends on inlining, so a freshly compiled kernel and the
#: same kernel loaded from numba's cache gave different last bits (and a different status on ~0.5 % of
#: borderline curves); without them both are bit-identical, at the same speed
FASTMATH = {"nsz", "arcp", "afn"}
_OPTS = {"fastmath": FASTMATH, "error_model": "numpy", "cache": True}

LN10 = math.log(10.0)
ZMAX = 300.0  # |hill * (x - log10_ec50)| is clamped here: 10^300 is finite, 1 / (1 + 10^300) ~ 0
X_ZERO_DOSE = -1.0e6  # stand-in for log10(0): with the clamp, the model there equals top to ~1e-300
BLOCK = 256
STEP_HILL = 10.0  # hill of the step-function start (capped by the hill bounds)

ST_UNSET = -1
ST_CONVERGED = 0
ST_FLAT = 1
ST_MAX_ITER = 2
ST_TOO_FEW = 3
ST_NON_FINITE = 4
ST_SINGULAR = 5

# indices of the option vector ``opt`` of :func:`fit_all`
O_MAX_ITER, O_MS_MODE, O_MS_RATIO, O_ROBUST, O_F_SCALE, O_RSS_FLAT, O_AUTO_STARTS, O_AUTO_ITER = range(8)
O_FTOL, O_LAM_DOWN, O_LAM_UP, O_NEWTON, O_MS_BOUND = range(8, 13)
N_OPT = 13


@njit(inline="always", **_OPTS)
def _sigmoid(z):
    z = min(max(z, -ZMAX), ZMAX)
    return 1.0 / (1.0 + math.exp(z * LN10))


@njit(**_OPTS)
def _rss_keep(p, xs, ys, ws, m, sv):
    """Weighted RSS at p; keeps the sigmoid values in sv for :func:`_normal`."""
    t, b, e, h = p[0], p[1], p[2], p[3]
    d = t - b
    rss = 0.0
    for i in range(m):
        s = _sigmoid(h * (xs[i] - e))
        sv[i] = s
        r = ys[i] - (b + d * s)
        rss += ws[i] * r * r
    return rss


@njit(**_OPTS)
def _rss_kept(p, ys, ws, m, sv):
    """Weighted RSS at p from sigmoid values sv already kept for p's log10_ec50 and hill."""
    d = p[0] - p[1]
    rss = 0.0
    for i in range(m):
        r = ys[i] - (p[1] + d * sv[i])
        rss += ws[i] * r * r
    return rss


@njit(**_OPTS)
def _normal(p, xs, ys, ws, m, sv, A, g, H):
    """Normal matrix A = J'WJ (upper triangle), g = J'Wr and the exact Hessian of RSS / 2,
    H = A - sum w r d2f (upper triangle), at p from the kept sigmoid values sv."""
    t, b, e, h = p[0], p[1], p[2], p[3]
    d = t - b
    a00 = a01 = a02 = a03 = a11 = a12 = a13 = a22 = a23 = a33 = 0.0
    g0 = g1 = g2 = g3 = 0.0
    r1 = r1x = r2 = r2x = r2xx = 0.0
    for i in range(m):
        s = sv[i]
        dx = xs[i] - e
        r = ys[i] - (b + d * s)
        w = ws[i]
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
        wr1 = w * r * (-LN10 * s * (1.0 - s))  # w r ds/dz
        wr2 = -LN10 * (1.0 - 2.0 * s) * wr1  # w r d2s/dz2
        r1 += wr1
        r1x += wr1 * dx
        r2 += wr2
        r2x += wr2 * dx
        r2xx += wr2 * dx * dx
    A[0, 0], A[0, 1], A[0, 2], A[0, 3] = a00, a01, a02, a03
    A[1, 1], A[1, 2], A[1, 3] = a11, a12, a13
    A[2, 2], A[2, 3] = a22, a23
    A[3, 3] = a33
    g[0], g[1], g[2], g[3] = g0, g1, g2, g3
    H[0, 0], H[0, 1], H[0, 2], H[0, 3] = a00, a01, a02 + h * r1, a03 - r1x
    H[1, 1], H[1, 2], H[1, 3] = a11, a12 - h * r1, a13 + r1x
    H[2, 2], H[2, 3] = a22 - d * h * h * r2, a23 + d * (h * r2x + r1)
    H[3, 3] = a33 - d * r2xx


@njit(**_OPTS)
def _rss(p, xs, ys, m):
    d = p[0] - p[1]
    rss = 0.0
    for i in range(m):
        r = ys[i] - (p[1] + d * _sigmoid(p[3] * (xs[i] - p[2])))
        rss += r * r
    return rss


@njit(inline="always", **_OPTS)
def _ldl4(m00, m01, m02, m03, m11, m12, m13, m22, m23, m33, tol):
    """Unrolled LDL' factorization of a symmetric 4x4 matrix: (ok, L below the diagonal, 1 / D).

    ok is False when a pivot D_j is not above ``tol * m_jj`` (not numerically positive definite)."""
    d0 = m00
    ok = d0 > tol * m00 + 1e-300
    i0 = 1.0 / d0 if ok else 0.0
    l10, l20, l30 = m01 * i0, m02 * i0, m03 * i0
    d1 = m11 - l10 * m01
    ok = ok and d1 > tol * m11 + 1e-300
    i1 = 1.0 / d1 if ok else 0.0
    u21 = m12 - l20 * m01
    u31 = m13 - l30 * m01
    l21, l31 = u21 * i1, u31 * i1
    d2 = m22 - l20 * m02 - l21 * u21
    ok = ok and d2 > tol * m22 + 1e-300
    i2 = 1.0 / d2 if ok else 0.0
    u32 = m23 - l30 * m02 - l31 * u21
    l32 = u32 * i2
    d3 = m33 - l30 * m03 - l31 * u31 - l32 * u32
    ok = ok and d3 > tol * m33 + 1e-300
    i3 = 1.0 / d3 if ok else 0.0
    return ok, (l10, l20, l30, l21, l31, l32, i0, i1, i2, i3)


@njit(inline="always", **_OPTS)
def _ldl4_solve(f, r0, r1, r2, r3):
    """Solve L D L' x = r with the factors of :func:`_ldl4`."""
    l10, l20, l30, l21, l31, l32, i0, i1, i2, i3 = f
    z1 = r1 - l10 * r0
    z2 = r2 - l20 * r0 - l21 * z1
    z3 = r3 - l30 * r0 - l31 * z1 - l32 * z2
    x3 = z3 * i3
    x2 = z2 * i2 - l32 * x3
    x1 = z1 * i1 - l21 * x2 - l31 * x3
    x0 = r0 * i0 - l10 * x1 - l20 * x2 - l30 * x3
    return x0, x1, x2, x3


@njit(**_OPTS)
def _step(B, A, g, lam, free, delta):
    """Marquardt step (B + lam diag(A)) delta = g on the free parameters (B = A or the Hessian; upper
    triangles read). False if not (numerically) positive definite."""
    dmax = 0.0
    for j in range(4):
        if free[j] and A[j, j] > dmax:
            dmax = A[j, j]
    floor = max(dmax * 1e-12, 1e-300)
    f0, f1, f2, f3 = free[0], free[1], free[2], free[3]
    ok, fac = _ldl4(
        B[0, 0] + lam * max(A[0, 0], floor) if f0 else 1.0,
        B[0, 1] if f0 and f1 else 0.0,
        B[0, 2] if f0 and f2 else 0.0,
        B[0, 3] if f0 and f3 else 0.0,
        B[1, 1] + lam * max(A[1, 1], floor) if f1 else 1.0,
        B[1, 2] if f1 and f2 else 0.0,
        B[1, 3] if f1 and f3 else 0.0,
        B[2, 2] + lam * max(A[2, 2], floor) if f2 else 1.0,
        B[2, 3] if f2 and f3 else 0.0,
        B[3, 3] + lam * max(A[3, 3], floor) if f3 else 1.0,
        1e-14,
    )
    if not ok:
        return False
    x0, x1, x2, x3 = _ldl4_solve(fac, g[0] if f0 else 0.0, g[1] if f1 else 0.0, g[2] if f2 else 0.0,
                                 g[3] if f3 else 0.0)  # fmt: skip
    delta[0], delta[1], delta[2], delta[3] = x0, x1, x2, x3
    return True


@njit(**_OPTS)
def _active(p, g, lo, hi, free, act):
    """Free parameters not pinned at a bound by a gradient pointing outward (projected-LM active set)."""
    for j in range(4):
        act[j] = free[j] and not ((p[j] >= hi[j] and g[j] > 0.0) or (p[j] <= lo[j] and g[j] < 0.0))


@njit(**_OPTS)
def _lm(p, xs, ys, ws, m, c0, lo, hi, free, max_iter, opt, work, A, g, act, sv, rss0, cur):
    """Projected LM from p (updated in place). Returns (rss, iterations, converged).

    The RSS includes the constant ``c0`` (within-dose sum of squares of grouped data). When ``rss0 >= 0``
    it is the RSS at p (without c0) with the sigmoid values already in ``sv[cur]``. The step solves
    (H + lam diag(J'J)) delta = J'r with H the exact Hessian of RSS / 2 when it is positive definite there
    (Newton: quadratic convergence at non-zero residuals), else J'J (Gauss-Newton). ``A``, ``g`` are left at
    the returned p. Converged when the relative RSS decrease of an accepted step is below ``ftol``, the
    step is below 1e-8 relative, or no step along the projected gradient decreases the RSS any more.
    """
    ftol, lam_down, lam_up = opt[O_FTOL], opt[O_LAM_DOWN], opt[O_LAM_UP]
    newton = opt[O_NEWTON] > 0
    H = work[5]
    delta = work[1, 1]
    pn = work[1, 2]
    rss = (rss0 if rss0 >= 0.0 else _rss_keep(p, xs, ys, ws, m, sv[cur])) + c0
    if not math.isfinite(rss):
        return rss, 0, False
    _normal(p, xs, ys, ws, m, sv[cur], A, g, H)
    lam = 1e-3
    it = 0
    while it < max_iter:
        it += 1
        accepted = False
        rss_new = rss
        _active(p, g, lo, hi, free, act)
        while lam < 1e16:
            use_h = newton and _step(H, A, g, lam, act, delta)
            if use_h or _step(A, A, g, lam, act, delta):
                for j in range(4):
                    pn[j] = min(max(p[j] + delta[j], lo[j]), hi[j])
                rss_new = _rss_keep(pn, xs, ys, ws, m, sv[1 - cur]) + c0
                if rss_new < rss:
                    accepted = True
                    break
            lam *= lam_up
        if not accepted:
            return rss, it, True  # no descent direction left: a (projected) minimum
        cur = 1 - cur
        small = True
        for j in range(4):
            if abs(pn[j] - p[j]) > 1e-8 * (abs(p[j]) + 1e-8):
                small = False
            p[j] = pn[j]
        _normal(p, xs, ys, ws, m, sv[cur], A, g, H)
        drop = rss - rss_new
        rss = rss_new
        lam = max(lam * lam_down, 1e-12)
        if small or drop <= ftol * rss or rss <= 1e-300:
            return rss, it, True
    return rss, it, False


@njit(**_OPTS)
def _covariance(A, free, cov, sc):
    """(A restricted to free)^-1 into cov (4x4, fixed rows/columns 0) via the LDL' factorization of the
    unit-diagonal scaled (correlation) matrix. False when singular (a pivot below 1e-13; cov undefined)."""
    for j in range(4):
        sc[j] = 0.0
        if free[j]:
            if not A[j, j] > 0.0:
                return False
            sc[j] = 1.0 / math.sqrt(A[j, j])
    c01 = A[0, 1] * sc[0] * sc[1]
    c02 = A[0, 2] * sc[0] * sc[2]
    c03 = A[0, 3] * sc[0] * sc[3]
    c12 = A[1, 2] * sc[1] * sc[2]
    c13 = A[1, 3] * sc[1] * sc[3]
    c23 = A[2, 3] * sc[2] * sc[3]
    ok, fac = _ldl4(1.0, c01, c02, c03, 1.0, c12, c13, 1.0, c23, 1.0, 1e-13)
    if not ok:
        return False
    for t in range(4):
        x0, x1, x2, x3 = _ldl4_solve(fac, 1.0 if t == 0 else 0.0, 1.0 if t == 1 else 0.0,
                                     1.0 if t == 2 else 0.0, 1.0 if t == 3 else 0.0)  # fmt: skip
        cov[0, t] = x0 * sc[0] * sc[t]
        cov[1, t] = x1 * sc[1] * sc[t]
        cov[2, t] = x2 * sc[2] * sc[t]
        cov[3, t] = x3 * sc[3] * sc[t]
    for i in range(4):  # exact symmetry
        for j in range(i + 1, 4):
            v = 0.5 * (cov[i, j] + cov[j, i])
            cov[i, j] = v
            cov[j, i] = v
    return True


@njit(**_OPTS)
def _collect(x, y, code, c, xs, ys):
    """Copy the usable points of curve c into xs, ys (finite doses sorted by x, then dose 0); (m, m1)."""
    m = 0
    for k in range(x.shape[1]):
        if code[c, k] == 1:
            v = x[c, k]
            w = y[c, k]
            i = m
            while i > 0 and xs[i - 1] > v:  # insertion sort by dose
                xs[i] = xs[i - 1]
                ys[i] = ys[i - 1]
                i -= 1
            xs[i] = v
            ys[i] = w
            m += 1
    m1 = m
    for k in range(x.shape[1]):
        if code[c, k] == 2:
            xs[m] = X_ZERO_DOSE
            ys[m] = y[c, k]
            m += 1
    return m, m1


@njit(**_OPTS)
def _group(xs, ys, m, m1, gx, gy, gw):
    """Group the sorted points by dose: (dose, mean, count); dose 0 last. Returns (nf, ng, within-dose SS)."""
    ng = 0
    ssw = 0.0
    i = 0
    while i < m:
        k = i
        acc = 0.0
        end = m1 if i < m1 else m
        while k < end and xs[k] == xs[i]:
            acc += ys[k]
            k += 1
        mean = acc / (k - i)
        for j in range(i, k):
            ssw += (ys[j] - mean) * (ys[j] - mean)
        gx[ng] = xs[i]
        gy[ng] = mean
        gw[ng] = k - i
        ng += 1
        i = k
    nf = ng - 1 if m > m1 else ng
    return nf, ng, ssw


@njit(**_OPTS)
def _start(gx, gy, gw, nf, ng, free, fixed, lo, hi, p):
    """Logit start: top, bottom from the extreme doses; hill and log10_ec50 from the weighted regression of
    log10((1 - u) / u) on x (u = normalized dose means); falls back to the midpoint crossing with hill 1."""
    top = gy[0] if nf > 0 else 0.0
    if ng > nf:
        top = gy[ng - 1]
    bottom = gy[nf - 1] if nf > 0 else top
    if not free[0]:
        top = fixed[0]
    if not free[1]:
        bottom = fixed[1]
    mid = 0.5 * (top + bottom)
    e = 0.5 * (gx[0] + gx[nf - 1]) if nf > 0 else 0.0
    for i in range(nf - 1):
        a = gy[i] - mid
        bb = gy[i + 1] - mid
        if a * bb <= 0.0 and a != bb:
            e = gx[i] + (gx[i + 1] - gx[i]) * a / (a - bb)
            break
    h = 1.0
    d = top - bottom
    if nf >= 3 and abs(d) > 1e-12 * (abs(top) + abs(bottom)) + 1e-300:
        sw = sx = sl = sxx = sxl = 0.0
        for k in range(nf):
            u = min(max((gy[k] - bottom) / d, 0.02), 0.98)
            lg = math.log10((1.0 - u) / u)
            w = gw[k] * u * (1.0 - u)
            sw += w
            sx += w * gx[k]
            sl += w * lg
            sxx += w * gx[k] * gx[k]
            sxl += w * gx[k] * lg
        xm = sx / sw
        lm = sl / sw
        var = sxx / sw - xm * xm
        if var > 1e-12:
            slope = (sxl / sw - xm * lm) / var
            if slope > 0.0 and math.isfinite(slope):
                h = min(max(slope, max(lo[3], 0.1)), min(hi[3], STEP_HILL))
                e = xm - lm / h
    p[0], p[1], p[2], p[3] = top, bottom, e, h
    _project(p, lo, hi)


@njit(**_OPTS)
def _asymptotes(p, gx, gy, gw, ng, free, lo, hi, sv):
    """Least-squares top and bottom for the current log10_ec50 and hill (closed form; the model is linear
    in them); keeps the sigmoid values in sv."""
    saa = sab = sbb = say = sby = 0.0
    for k in range(ng):
        s = _sigmoid(p[3] * (gx[k] - p[2]))
        sv[k] = s
        w = gw[k]
        a = s
        b = 1.0 - s
        saa += w * a * a
        sab += w * a * b
        sbb += w * b * b
        say += w * a * gy[k]
        sby += w * b * gy[k]
    if free[0] and free[1]:
        det = saa * sbb - sab * sab
        if det > 1e-10 * saa * sbb:
            p[0] = (say * sbb - sby * sab) / det
            p[1] = (sby * saa - say * sab) / det
    elif free[0] and saa > 0.0:
        p[0] = (say - p[1] * sab) / saa
    elif free[1] and sbb > 0.0:
        p[1] = (sby - p[0] * sab) / sbb
    _project(p, lo, hi)


@njit(inline="always", **_OPTS)
def _side_rss(sw, sy, syy, free, value):
    if free:
        return syy - sy * sy / sw
    return syy - 2.0 * value * sy + value * value * sw


@njit(**_OPTS)
def _step_start(gx, gy, gw, nf, ng, free, fixed, lo, hi, p):
    """Best step function (dose 0 and doses up to a split at top, the rest at bottom): start with the
    split midpoint as log10_ec50 and a steep hill."""
    tw = ty = tyy = 0.0
    for k in range(nf):
        tw += gw[k]
        ty += gw[k] * gy[k]
        tyy += gw[k] * gy[k] * gy[k]
    lw = ly = lyy = 0.0
    for k in range(nf, ng):
        lw += gw[k]
        ly += gw[k] * gy[k]
        lyy += gw[k] * gy[k] * gy[k]
    best = np.inf
    for k in range(nf - 1):
        lw += gw[k]
        ly += gw[k] * gy[k]
        lyy += gw[k] * gy[k] * gy[k]
        r = _side_rss(lw, ly, lyy, free[0], fixed[0])
        r += _side_rss(tw - lw, ty - ly, tyy - lyy, free[1], fixed[1])
        if r < best:
            best = r
            p[0] = ly / lw if free[0] else fixed[0]
            p[1] = (ty - ly) / (tw - lw) if free[1] else fixed[1]
            p[2] = 0.5 * (gx[k] + gx[k + 1])
    p[3] = min(STEP_HILL, hi[3])
    _project(p, lo, hi)


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
def _copy4(src, dst):
    for j in range(4):
        dst[j] = src[j]


@njit(**_OPTS)
def _try(p, start, buf, ng, ssw, bnd, free, n_iter, opt, work, A, g, act, sv, state, rss0=-1.0, cur=0):
    """LM on the grouped data (``buf`` rows dose, mean, count) from ``start``; keeps the result in
    ``work[2, 3]`` / ``work[4]`` (best parameters / normal matrix) when its RSS is lower than the best so
    far (``state`` = [rss, converged, iterations])."""
    best = work[2, 3]
    Abest = work[4]
    _copy4(start, p)
    r, it, c = _lm(
        p, buf[0], buf[1], buf[2], ng, ssw, bnd[0], bnd[1], free, n_iter, opt, work, A, g, act, sv, rss0, cur
    )
    state[2] += it
    conv = state[1] > 0
    if r < state[0] or (r <= state[0] and c and not conv):
        state[0] = r
        state[1] = 1.0 if c else 0.0
        _copy4(p, best)
        for i in range(4):
            for j in range(i, 4):
                Abest[i, j] = A[i, j]


@njit(**_OPTS)
def _at_bound(p, lo, hi, free, mode):
    """True when a free parameter of p sits on a bound (projected LM: a common sign of a poor local optimum).
    ``mode``: 0 never, 1 only log10_ec50 and hill (the shape), 2 any free parameter."""
    if mode <= 0:
        return False
    for j in range(2 if mode == 1 else 0, 4):
        if free[j] and (p[j] <= lo[j] or p[j] >= hi[j]):
            return True
    return False


@njit(**_OPTS)
def _fit_curve(xs, ys, m, m1, bnd, free, nfree, fixed, starts, opt, buf, work, A, g, out_p, act, sv):
    """Fit one curve: two data-driven starts, LM, multi-start, robust IRLS. Returns (rss, iterations, conv).

    ``bnd`` rows: lower and upper bounds. ``A`` holds the (weighted) normal matrix at the returned
    parameters ``out_p``.
    """
    lo = bnd[0]
    hi = bnd[1]
    max_iter, ms_mode = int(opt[O_MAX_ITER]), int(opt[O_MS_MODE])
    gx, gy, gw, ws = buf[0], buf[1], buf[2], buf[3]
    p1, p2, p, best, state = work[2, 0], work[2, 1], work[2, 2], work[2, 3], work[3, 0]
    Abest = work[4]  # best parameters and their normal matrix, kept up to date by _try
    nf, ng, ssw = _group(xs, ys, m, m1, gx, gy, gw)
    for j in range(4):
        p1[j] = fixed[j]
        p2[j] = fixed[j]
    _start(gx, gy, gw, nf, ng, free, fixed, lo, hi, p1)
    _asymptotes(p1, gx, gy, gw, ng, free, lo, hi, sv[0])
    r1 = _rss_kept(p1, gy, gw, ng, sv[0])
    r2 = np.inf
    cur = 0
    if nf >= 2:
        _step_start(gx, gy, gw, nf, ng, free, fixed, lo, hi, p2)
        r2 = _rss_keep(p2, gx, gy, gw, ng, sv[1])
    if r2 < r1:  # begin with the better start
        for j in range(4):
            p1[j], p2[j] = p2[j], p1[j]
        r1, r2 = r2, r1
        cur = 1
    state[0], state[1], state[2] = np.inf, 0.0, 0.0
    _try(p, p1, buf, ng, ssw, bnd, free, max_iter, opt, work, A, g, act, sv, state, r1, cur)
    weak = not state[1] > 0 or not state[0] <= opt[O_MS_RATIO] * opt[O_RSS_FLAT] or state[0] > r2 + ssw
    # a usable fit (R^2 above the multistart threshold) with a free parameter on a bound is refitted too;
    # near-flat curves are not (their sigmoid parameters drift to bounds by nature, and the F-test drops them)
    bound_mode = int(opt[O_MS_BOUND]) if state[0] <= opt[O_MS_RATIO] * opt[O_RSS_FLAT] else 0
    if nf >= 2 and (ms_mode == 2 or (ms_mode == 1 and (weak or _at_bound(best, lo, hi, free, bound_mode)))):
        n_iter = max_iter if ms_mode == 2 else min(max_iter, int(opt[O_AUTO_ITER]))
        _try(p, p2, buf, ng, ssw, bnd, free, n_iter, opt, work, A, g, act, sv, state)
        if not state[1] > 0:  # the best so far is unconverged (a short refit that got lower): continue it
            _copy4(best, p2)
            _try(p, p2, buf, ng, ssw, bnd, free, max_iter, opt, work, A, g, act, sv, state)
        n_starts = starts.shape[0] if ms_mode == 2 else min(starts.shape[0], int(opt[O_AUTO_STARTS]))
        if ms_mode == 1 and state[1] > 0 and not _at_bound(best, lo, hi, free, bound_mode):
            n_starts = 0  # auto: the grid only for curves still unconverged or still on a bound
        for s in range(n_starts):
            _copy4(p1, p2)
            p2[2] = gx[0] + starts[s, 0] * (gx[nf - 1] - gx[0])
            p2[3] = starts[s, 1]
            _project(p2, lo, hi)
            _try(p, p2, buf, ng, ssw, bnd, free, n_iter, opt, work, A, g, act, sv, state)
        if n_starts > 0 and not state[1] > 0:  # a short grid refit got lowest without converging: continue it
            _copy4(best, p2)
            _try(p, p2, buf, ng, ssw, bnd, free, max_iter, opt, work, A, g, act, sv, state)
    rss, iters, conv = state[0], int(state[2]), state[1] > 0
    _copy4(best, out_p)
    for i in range(4):
        for j in range(i, 4):
            A[i, j] = Abest[i, j]
    robust = int(opt[O_ROBUST])
    if robust > 0 and m > nfree:
        for i in range(m):
            ws[i] = 1.0
        for _ in range(20):
            _copy4(out_p, best)
            _irls_weights(xs, ys, m, out_p, robust, opt[O_F_SCALE], ws, buf[4])
            _, it2, conv = _lm(
                out_p, xs, ys, ws, m, 0.0, lo, hi, free, max_iter, opt, work, A, g, act, sv, -1.0, 0
            )
            iters += it2
            moved = 0.0
            for j in range(4):
                moved = max(moved, abs(out_p[j] - best[j]) / (abs(best[j]) + 1e-6))
            if moved < 1e-6:
                break
        rss = _rss(out_p, xs, ys, m)
        _rss_keep(out_p, xs, ys, ws, m, sv[0])  # weighted normal matrix at the solution for the covariance
        _normal(out_p, xs, ys, ws, m, sv[0], A, g, work[5])
    return rss, iters, conv


@njit(parallel=True, **_OPTS)
def fit_all(
    x, y, code, lo, hi, free, fixed, starts, opt, params, cov, rss, flat_mean, flat_rss, iters, status
):
    """Fit every curve (rows of x, y); results written into the output arrays.

    ``status`` is an input too: rows already set (>= 0, e.g. non_finite) are skipped.
    ``cov`` (n, 4, 4) receives (J'J)^-1 on the free parameters (not yet scaled by s^2; fixed rows and columns
    0; NaN when singular). ``opt``: see the ``O_*`` indices (``O_RSS_FLAT`` is set per curve).
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
        buf = np.empty((5, max(mp, 4)))
        sv = np.empty((2, max(mp, 4)))
        work = np.empty((6, 4, 4))
        A = np.zeros((4, 4))
        g = np.empty(4)
        pc = np.empty(4)
        cc = np.empty((4, 4))
        myopt = opt.copy()
        fr = free.copy()  # thread-local copies: no shared reference counts in the loop
        fx = fixed.copy()
        st = starts.copy()
        bnd = np.empty((2, 4))
        act = np.empty(4, dtype=np.bool_)
        cov_work = np.empty(4)
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
                    for k in range(4):
                        cov[c, j, k] = np.nan
                rss[c] = np.nan
                continue
            myopt[O_RSS_FLAT] = ss
            for j in range(4):
                bnd[0, j] = lo[c, j]
                bnd[1, j] = hi[c, j]
            r, it, conv = _fit_curve(
                xs, ys, m, m1, bnd, fr, nfree, fx, st, myopt, buf, work, A, g, pc, act, sv
            )
            for j in range(4):
                params[c, j] = pc[j]
            rss[c] = r
            iters[c] = it
            ok = _covariance(A, fr, cc, cov_work)
            for j in range(4):
                for k in range(4):
                    cov[c, j, k] = cc[j, k] if ok else np.nan
            if not conv:
                status[c] = ST_MAX_ITER
            elif not ok:
                status[c] = ST_SINGULAR
            else:
                status[c] = ST_CONVERGED


@njit(parallel=True, **_OPTS)
def extremes(x, code, y, out):
    """Per curve (rows): min and max finite log10 dose and min and max response into out (4, n); 0 where
    a curve has no such point."""
    n, mp = x.shape
    for c in prange(n):
        xmn = np.inf
        xmx = -np.inf
        ymn = np.inf
        ymx = -np.inf
        for k in range(mp):
            cd = code[c, k]
            if cd > 0:
                ymn = min(ymn, y[c, k])
                ymx = max(ymx, y[c, k])
                if cd == 1:
                    xmn = min(xmn, x[c, k])
                    xmx = max(xmx, x[c, k])
        has_x = xmn <= xmx
        has_y = ymn <= ymx
        out[0, c] = xmn if has_x else 0.0
        out[1, c] = xmx if has_x else 0.0
        out[2, c] = ymn if has_y else 0.0
        out[3, c] = ymx if has_y else 0.0


@njit(**_OPTS)
def _betacf(a, b, x):
    """Continued fraction of the regularized incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab = a + b
    qap = a + 1.0
    qam = a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    if abs(d) < tiny:
        d = tiny
    d = 1.0 / d
    h = d
    for m in range(1, 1000):
        m2 = 2.0 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = tiny if abs(d) < tiny else d
        c = 1.0 + aa / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = tiny if abs(d) < tiny else d
        c = 1.0 + aa / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return h


@njit(**_OPTS)
def _betainc(a, b, x, lbeta):
    """Regularized incomplete beta function I_x(a, b) for a, b > 0, 0 <= x <= 1; lbeta = log B(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbt = a * math.log(x) + b * math.log1p(-x) - lbeta
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(lbt) * _betacf(a, b, x) / a
    return 1.0 - math.exp(lbt) * _betacf(b, a, 1.0 - x) / b


@njit(**_OPTS)
def _lbeta(a, b):
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


@njit(parallel=True, **_OPTS)
def f_sf(df1, df2, f, out):
    """Survival function of the F distribution P(F_{df1, df2} > f), elementwise over df2 and f (NaN where
    undefined; f = inf gives 0). log B is cached while df2 repeats (it mostly does)."""
    n = f.shape[0]
    for blk in prange((n + BLOCK - 1) // BLOCK):
        last = -1.0
        lb = 0.0
        for i in range(blk * BLOCK, min(n, (blk + 1) * BLOCK)):
            d2 = df2[i]
            v = f[i]
            if not (d2 > 0.0 and df1 > 0.0 and v >= 0.0):
                out[i] = np.nan
            elif v == np.inf:
                out[i] = 0.0
            else:
                if d2 != last:
                    last = d2
                    lb = _lbeta(0.5 * d2, 0.5 * df1)
                out[i] = _betainc(0.5 * d2, 0.5 * df1, d2 / (d2 + df1 * v), lb)


@njit(parallel=True, **_OPTS)
def point_codes(x, y, code, status, n_points):
    """Point codes (0 skip, 1 point, 2 dose-0 point), usable-point counts and the initial status
    (``non_finite`` for a curve with an infinite response or x = +inf, whose codes are all 0)."""
    n, mp = x.shape
    for c in prange(n):
        cnt = 0
        bad = False
        for k in range(mp):
            xv = x[c, k]
            yv = y[c, k]
            cd = 0
            if not (math.isnan(xv) or math.isnan(yv)):
                cnt += 1
                cd = 2 if xv == -np.inf else 1
                if xv == np.inf or math.isinf(yv):
                    bad = True
            code[c, k] = cd
        if bad:
            for k in range(mp):
                code[c, k] = 0
        n_points[c] = cnt
        status[c] = ST_NON_FINITE if bad else ST_UNSET


@njit(parallel=True, **_OPTS)
def finalize(params, cov, rss, rss_flat, n_points, status, free, p, tq, df2_extra, alpha, by_aic, out, sel):
    """Per curve, in one pass: scale cov by s^2 = RSS / (n - p) in place; stderr, Wald interval bounds,
    R^2, F-test p-value, both AICs (``out`` rows 0-3, 4-7, 8-11, 12, 13, 14, 15); the selected model
    (``sel``: -1 none, 0 flat, 1 sigmoid) and the status ``flat`` when the flat model wins (in place).

    ``tq[df]`` is the t quantile for integer df; the F-test uses df2 = n - p + ``df2_extra``."""
    n = rss.shape[0]
    df1 = p - 1.0
    for blk in prange((n + BLOCK - 1) // BLOCK):
        last = -1.0
        lb = 0.0
        for c in range(blk * BLOCK, min(n, (blk + 1) * BLOCK)):
            npt = n_points[c]
            df = npt - p
            r = rss[c]
            rf = rss_flat[c]
            s2 = r / df if df > 0 else np.nan
            t = tq[df] if df > 0 else np.nan
            for j in range(4):
                for k in range(4):
                    cov[c, j, k] *= s2
                se = math.sqrt(cov[c, j, j]) if free[j] else np.nan
                out[j, c] = se
                out[4 + j, c] = params[c, j] - t * se
                out[8 + j, c] = params[c, j] + t * se
            if rf > 0.0:
                out[12, c] = 1.0 - r / rf
            else:
                out[12, c] = 1.0 if r == 0.0 else np.nan
            pv = np.nan
            d2 = df + df2_extra
            if not (math.isnan(r) or math.isnan(rf)) and d2 > 0:
                gain = rf - r
                if not gain > 0.0:
                    pv = 1.0
                elif not r > 0.0:
                    pv = 0.0
                else:
                    if d2 != last:
                        last = d2
                        lb = _lbeta(0.5 * d2, 0.5 * df1)
                    f = (gain / df1) / (r / d2)
                    pv = _betainc(0.5 * d2, 0.5 * df1, d2 / (d2 + df1 * f), lb)
            out[13, c] = pv
            aic_s = npt * math.log(max(r, 1e-300) / npt) + 2.0 * (p + 1) if not math.isnan(r) else np.nan
            aic_f = npt * math.log(max(rf, 1e-300) / npt) + 2.0 * 2 if not math.isnan(rf) else np.nan
            out[14, c] = aic_s
            out[15, c] = aic_f
            st = status[c]
            fitted = st == ST_CONVERGED or st == ST_MAX_ITER or st == ST_SINGULAR
            sigmoid = aic_s < aic_f if by_aic else pv < alpha
            sel[c] = (1 if sigmoid else 0) if fitted else -1
            if fitted and not sigmoid:
                status[c] = ST_FLAT
