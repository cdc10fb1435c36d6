"""Speed of the batched curve-fitting engine vs per-curve scipy ``curve_fit`` (measured in the same run).

Usage: ``python benchmarks/fit_speed.py [--curves N] [--baseline-curves M] [--seed S]``

Simulates N 9-dose x 2-replicate 4PL viability curves (10 % flat), times :func:`doseatlas.fit.fit_batch`
(ll4 + flat-vs-sigmoid F-test + Wald intervals) excluding compilation, times scipy ``curve_fit`` (trf with
the same bounds, one call per curve) on a subsample, reports accuracy of both on that subsample and the
peak memory. Peer tools, when importable (the ``bench`` extra: thunor, lmfit; CurveCurator installed with
``pip install --no-deps curve-curator``), are timed on the same subsample through their own public
per-curve 4PL fit; a missing one is skipped with one line. The last line is
``curves_per_s=<engine curves/s> speedup_vs_curve_fit=<per-curve ratio>``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import resource
import time
import warnings

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

from doseatlas.fit import fit_batch, warmup

DOSES = np.linspace(-9.0, -5.0, 9)  # log10 molar
REPLICATES = 2
NOISE_SD = 0.05


def simulate(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x, y of shape (n, 18) and the true (top, bottom, log10_ec50, hill), vectorized."""
    top = rng.normal(1.0, 0.03, n)
    bottom = rng.uniform(0.0, 0.6, n)
    flat = rng.random(n) < 0.1
    bottom[flat] = top[flat]
    ec50 = rng.uniform(-8.5, -5.5, n)
    hill = np.exp(rng.normal(0.0, 0.4, n))
    x = np.tile(np.repeat(DOSES, REPLICATES), (n, 1))
    y = bottom[:, None] + (top - bottom)[:, None] / (1.0 + 10.0 ** (hill[:, None] * (x - ec50[:, None])))
    y += rng.normal(0.0, NOISE_SD, y.shape)
    return x, y, np.column_stack([top, bottom, ec50, hill])


def _ll4(x, top, bottom, e, h):
    return bottom + (top - bottom) / (1.0 + 10.0 ** (h * (x - e)))


def _bounds_and_start(xi: np.ndarray, yi: np.ndarray) -> tuple[list, list, np.ndarray]:
    """The engine's default ll4 bounds and a simple start (top, bottom, log10_ec50, hill) for one curve."""
    span = max(yi.max() - yi.min(), 1e-12)
    lo = [yi.min() - span / 2, yi.min() - span / 2, xi.min() - 2, 0.1]
    hi = [yi.max() + span / 2, yi.max() + span / 2, xi.max() + 2, 10.0]
    p0 = [yi[xi == xi.min()].mean(), yi[xi == xi.max()].mean(), xi.mean(), 1.0]
    return lo, hi, np.clip(p0, lo, hi)


def scipy_fits(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """One bounded curve_fit per curve (same bounds and start rule as the engine); (params, seconds)."""
    out = np.full((x.shape[0], 4), np.nan)
    t0 = time.perf_counter()
    for i in range(x.shape[0]):
        xi, yi = x[i], y[i]
        lo, hi, p0 = _bounds_and_start(xi, yi)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", OptimizeWarning)
                out[i], _ = curve_fit(_ll4, xi, yi, p0=p0, bounds=(lo, hi), maxfev=2000)
        except RuntimeError:
            pass
    return out, time.perf_counter() - t0


def _thunor_fitter():
    """thunor ``fit_drc`` (HillCurveLL4, its default) on molar doses, no flat-model rejection."""
    from thunor.curve_fit import fit_drc

    def fit(xi: np.ndarray, yi: np.ndarray) -> list[float]:
        res = fit_drc(10.0**xi, yi, null_rejection_threshold=None)
        if res is None:  # thunor's own rejection (no fit, or EC50 below the lowest dose)
            return [np.nan] * 4
        b, c, d, e = res.popt  # c + (d - c) / (1 + exp(b (ln x - ln e))): drc's sign, unbounded
        return [d, c, np.log10(e), b] if b >= 0 else [c, d, np.log10(e), -b]

    return fit


def _curve_curator_fitter():
    """CurveCurator ``LogisticModel.efficiently_fit_ols`` (its default OLS 'standard' fit) on log10 molar."""
    from curve_curator.models import LogisticModel

    def fit(xi: np.ndarray, yi: np.ndarray) -> list[float]:
        model = LogisticModel()
        model.set_boundaries(xi)
        model.efficiently_fit_ols(xi, yi, noise=float(np.std(yi)))
        p = model.get_all_parameters()
        return [p["front"], p["back"], -p["pec50"], p["slope"]]

    return fit


def _lmfit_fitter():
    """lmfit ``Model(ll4).fit`` (leastsq) with the same bounds and start as the curve_fit baseline."""
    import lmfit

    model = lmfit.Model(_ll4)

    def fit(xi: np.ndarray, yi: np.ndarray) -> list[float]:
        lo, hi, p0 = _bounds_and_start(xi, yi)
        params = model.make_params()
        for name, v, a, b in zip(model.param_names, p0, lo, hi, strict=True):
            params[name].set(value=v, min=a, max=b)
        res = model.fit(yi, params, x=xi)
        return [res.params[name].value for name in model.param_names]

    return fit


# label, importable module, distribution (for the version), how to install it, fitter factory.
# curve-curator pins pytest<8 and pandas<3, so it cannot share the `bench` extra with the `test` extra.
PEERS = [
    ("thunor fit_drc", "thunor", "thunor", "pip install -e '.[bench]'", _thunor_fitter),
    (
        "CurveCurator LogisticModel",
        "curve_curator",
        "curve-curator",
        "pip install --no-deps curve-curator",
        _curve_curator_fitter,
    ),
    ("lmfit Model.fit", "lmfit", "lmfit", "pip install -e '.[bench]'", _lmfit_fitter),
]


def peer_fits(make_fitter, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float, int]:
    """One peer fit per curve; (params in engine order, seconds, number of curves the peer failed on)."""
    fit_one = make_fitter()
    out = np.full((x.shape[0], 4), np.nan)
    failed = 0
    t0 = time.perf_counter()
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        for i in range(x.shape[0]):
            try:
                out[i] = fit_one(x[i], y[i])
            except (RuntimeError, ValueError, FloatingPointError):
                pass
            failed += not np.all(np.isfinite(out[i]))
    return out, time.perf_counter() - t0, failed


def _rss(x: np.ndarray, y: np.ndarray, params: np.ndarray) -> np.ndarray:
    return np.sum((y - _ll4(x, *params.T[:, :, None])) ** 2, axis=1)


def report_peers(x, y, truth, engine_params, engine_rss, engine_per_curve: float) -> None:
    """Time and score each importable peer on the subsample ``x, y``; one line per peer."""
    for label, module, dist, install, make_fitter in PEERS:
        if importlib.util.find_spec(module) is None:
            print(f"{label}: not installed, skipped ({install})")
            continue
        params, seconds, failed = peer_fits(make_fitter, x, y)
        per_curve = seconds / x.shape[0]
        ok = np.all(np.isfinite(params), axis=1)  # accuracy on the curves the peer fitted
        peer_rss = _rss(x[ok], y[ok], params[ok])
        ratio = np.median(engine_rss[ok] / peer_rss)
        lower = np.mean(engine_rss[ok] < peer_rss * (1 - 1e-6)) * 100
        higher = np.mean(engine_rss[ok] > peer_rss * (1 + 1e-6)) * 100
        print(f"{label} ({dist} {importlib.metadata.version(dist)}): {x.shape[0]} curves in {seconds:.2f} s = "
              f"{per_curve * 1e3:.2f} ms/curve, engine speedup per curve {per_curve / engine_per_curve:.0f}x; "
              f"on its {ok.sum()} fitted curves (failed {failed}): median |d log10_ec50| "
              f"{ec50_error(params[ok], truth[ok]):.4f} (engine {ec50_error(engine_params[ok], truth[ok]):.4f}), "
              f"median RSS ratio engine / peer {ratio:.6f}, engine RSS lower on {lower:.1f} %, higher on {higher:.1f} %")  # fmt: skip


def ec50_error(params: np.ndarray, truth: np.ndarray) -> float:
    """Median |error| of log10_ec50 over curves with a real effect (depth >= 0.2)."""
    effect = (truth[:, 0] - truth[:, 1]) >= 0.2
    return float(np.nanmedian(np.abs(params[effect, 2] - truth[effect, 2])))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--curves", type=int, default=1_000_000)
    ap.add_argument("--baseline-curves", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    first = warmup()
    x, y, truth = simulate(args.curves, rng)
    t0 = time.perf_counter()
    fit = fit_batch(x, y, model="ll4", selection="ftest")
    engine_s = time.perf_counter() - t0
    engine_rate = args.curves / engine_s
    k = min(args.baseline_curves, args.curves)
    sp, scipy_s = scipy_fits(x[:k], y[:k])
    scipy_per_curve = scipy_s / k
    speedup = scipy_per_curve / (engine_s / args.curves)
    status, counts = np.unique(fit.status_names(), return_counts=True)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"first call (compile or cache load): {first:.2f} s")
    print(f"engine: {args.curves} curves in {engine_s:.2f} s = {engine_s / args.curves * 1e6:.2f} us/curve")
    print(f"scipy curve_fit: {k} curves in {scipy_s:.2f} s = {scipy_per_curve * 1e3:.2f} ms/curve")
    print("status: " + ", ".join(f"{s}={c}" for s, c in zip(status, counts, strict=True)))
    print(f"median |d log10_ec50| on the {k}-curve subsample: engine {ec50_error(fit.params[:k], truth[:k]):.4f}, "
          f"curve_fit {ec50_error(sp, truth[:k]):.4f}; engine on all: {ec50_error(fit.params, truth):.4f}")  # fmt: skip
    rss_ratio = np.nanmedian(fit.rss[:k] / _rss(x[:k], y[:k], sp))
    print(f"median RSS ratio engine / curve_fit on the subsample: {rss_ratio:.6f}")
    print(f"peak memory (max RSS): {peak_mb:.0f} MB")
    report_peers(x[:k], y[:k], truth[:k], fit.params[:k], fit.rss[:k], engine_s / args.curves)
    print(f"curves_per_s={engine_rate:.0f} speedup_vs_curve_fit={speedup:.0f}")


if __name__ == "__main__":
    main()
