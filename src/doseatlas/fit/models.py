"""Dose-response model declarations: each model is declared once, here.

All sigmoid models share one engine parameter vector ``(top, bottom, log10_ec50, hill)`` on
x = log10(concentration in molar)::

    y = bottom + (top - bottom) / (1 + 10 ** (hill * (x - log10_ec50)))

With ``hill > 0`` the curve goes from ``top`` (low dose) to ``bottom`` (high dose): a decreasing viability
curve has a positive hill. An increasing curve is represented by ``bottom > top`` (still ``hill > 0``), so
the sign of the hill never needs to flip. Dose 0 (x = -inf) evaluates to ``top``.

Models differ in which parameters are fixed and in their bounds. Bounds are rules relative to the data
of each curve (``x`` = finite log10 doses, ``y`` = responses) or absolute numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from doseatlas.errors import ConfigError

#: order of the engine parameter vector (every sigmoid model uses it; fixed entries stay constant)
PARAMS: tuple[str, ...] = ("top", "bottom", "log10_ec50", "hill")
N_PARAMS = len(PARAMS)


@dataclass(frozen=True)
class Bound:
    """Bound rule of one parameter.

    ``kind``: ``"abs"`` -> ``[lo, hi]``; ``"x"`` -> ``[min x + lo, max x + hi]`` (log10 doses of the curve);
    ``"y"`` -> ``[min y - lo * span, max y + hi * span]`` with ``span = max y - min y`` (floored at 1e-12).
    """

    kind: str
    lo: float
    hi: float


@dataclass(frozen=True)
class Model:
    """One dose-response model.

    Attributes
    ----------
    name, formula
        Identifier and human-readable formula.
    fixed
        Engine parameters held constant (name -> value).
    bounds
        Bound rule per free engine parameter.
    start
        Starting-value rule, in words (implemented in the engine kernel).
    labels
        Names of the parameters in the model's own literature (engine name -> label).
    """

    name: str
    formula: str
    fixed: dict[str, float] = field(default_factory=dict)
    bounds: dict[str, Bound] = field(default_factory=dict)
    start: str = ""
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def free(self) -> tuple[str, ...]:
        """Free (fitted) parameter names, in engine order."""
        return tuple(p for p in PARAMS if p not in self.fixed)

    @property
    def n_free(self) -> int:
        """Number of fitted parameters."""
        return len(self.free)


_START = (
    "two data-driven starts, LM from the one with the lower RSS. Logit start: top = mean response at the lowest "
    "dose (dose-0 points when present), bottom = mean at the highest dose, hill and log10_ec50 from the "
    "weighted regression of log10((1 - u) / u) on log10 dose (u = normalized dose means; fallback: midpoint "
    "crossing with hill 1), then least-squares top and bottom for that shape (closed form). Step start: the "
    "best two-level step function (split midpoint, steep hill). Fixed parameters at their value; everything "
    "projected into the bounds. Multi-start (auto): curves that end unconverged, with R^2 < 0.5 or above the "
    "other start's RSS are refitted from the other start (then from a grid of log10_ec50 x hill starts if "
    "still unconverged) and the lowest RSS is kept."
)
_Y_BOUND = Bound("y", 0.5, 0.5)
_EC50_BOUND = Bound("x", -2.0, 2.0)
_SIGMOID = "y = bottom + (top - bottom) / (1 + 10^(hill * (x - log10_ec50))), x = log10(c / M)"

MODELS: dict[str, Model] = {
    "ll4": Model(
        name="ll4",
        formula=_SIGMOID,
        bounds={
            "top": _Y_BOUND,
            "bottom": _Y_BOUND,
            "log10_ec50": _EC50_BOUND,
            "hill": Bound("abs", 0.1, 10.0),
        },
        start=_START,
        labels={"top": "d (drc)", "bottom": "c (drc)", "log10_ec50": "log10 e (drc)", "hill": "b (drc)"},
    ),
    "ll3": Model(
        name="ll3",
        formula=_SIGMOID + ", top = 1",
        fixed={"top": 1.0},
        bounds={"bottom": _Y_BOUND, "log10_ec50": _EC50_BOUND, "hill": Bound("abs", 0.1, 10.0)},
        start=_START,
    ),
    "ll2": Model(
        name="ll2",
        formula=_SIGMOID + ", top = 1, bottom = 0",
        fixed={"top": 1.0, "bottom": 0.0},
        bounds={"log10_ec50": _EC50_BOUND, "hill": Bound("abs", 0.1, 10.0)},
        start=_START,
    ),
    "gr_sigmoid": Model(
        name="gr_sigmoid",
        formula="GR(c) = GRinf + (1 - GRinf) / (1 + (c / GEC50)^h)  (top = 1, bottom = GRinf)",
        fixed={"top": 1.0},
        bounds={"bottom": Bound("abs", -1.0, 1.0), "log10_ec50": _EC50_BOUND, "hill": Bound("abs", 0.1, 5.0)},
        start=_START,
        labels={"bottom": "GRinf", "log10_ec50": "log10 GEC50", "hill": "h_GR"},
    ),
}

#: the null model of model selection (not a sigmoid; fitted in closed form)
FLAT = Model(name="flat", formula="y = mean(y)", start="closed form")


def get_model(name: str) -> Model:
    """Model by name; ConfigError for an unknown one."""
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; choose one of {sorted(MODELS)}") from None


def resolve_bounds(
    model: Model,
    xmin: np.ndarray,
    xmax: np.ndarray,
    ymin: np.ndarray,
    ymax: np.ndarray,
    *,
    overrides: dict[str, tuple[float, float]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-curve lower and upper bounds, arrays of shape (n_curves, 4), engine order.

    Fixed parameters get ``lo = hi = value``; ``overrides`` (name -> absolute (lo, hi)) replace the rules.
    Infinite bounds are replaced by +-1e300 (the kernel never sees inf).
    """
    n = xmin.shape[0]
    lo = np.empty((n, N_PARAMS))
    hi = np.empty((n, N_PARAMS))
    overrides = dict(overrides or {})
    unknown = set(overrides) - set(PARAMS)
    if unknown:
        raise ConfigError(f"bounds for unknown parameters {sorted(unknown)}; parameters are {list(PARAMS)}")
    span = np.maximum(ymax - ymin, 1e-12)
    for j, name in enumerate(PARAMS):
        if name in model.fixed:
            lo[:, j] = hi[:, j] = model.fixed[name]
            continue
        if name in overrides:
            lo[:, j], hi[:, j] = overrides[name]
            continue
        rule = model.bounds[name]
        if rule.kind == "abs":
            lo[:, j], hi[:, j] = rule.lo, rule.hi
        elif rule.kind == "x":
            lo[:, j], hi[:, j] = xmin + rule.lo, xmax + rule.hi
        else:
            lo[:, j], hi[:, j] = ymin - rule.lo * span, ymax + rule.hi * span
    if np.any(lo > hi):
        raise ConfigError("a lower bound exceeds its upper bound")
    np.clip(lo, -1e300, 1e300, out=lo)
    np.clip(hi, -1e300, 1e300, out=hi)
    return lo, hi


def predict(params: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Evaluate the shared sigmoid at ``x`` (log10 molar; -inf = dose 0, evaluated at ``top``).

    ``params`` is (n, 4) in :data:`PARAMS` order and ``x`` is (n, m); returns (n, m).
    """
    top, bottom, x50, hill = (params[:, [j]] for j in range(4))
    with np.errstate(over="ignore", invalid="ignore"):
        return bottom + (top - bottom) / (1.0 + 10.0 ** (hill * (x - x50)))
