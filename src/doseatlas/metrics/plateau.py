"""Plateau metrics (``einf``, ``grinf``) only where the data reach the plateau (issue 14, item 2).

The bottom asymptote of a fitted sigmoid is an extrapolation when the curve is still falling (or rising) at the
highest tested dose: its value then rests on the assumed shape, not on the data (one simulated curve: truth 0.79,
fitted -1.00 with the interval [-122, 120]). The rule, on the fitted curve:

* the share of the transition from ``top`` to ``bottom`` completed at the highest tested dose ``x1`` is
  ``u = 1 - 1 / (1 + 10^(hill (x1 - log10_ec50)))``; the plateau is *reached* when ``u >=``
  :data:`REACHED_SHARE` (0.9: the response at the top dose is within a tenth of the span from the plateau)
  and at least :data:`MIN_DOSES_PAST` (2) tested doses lie at or beyond the fitted midpoint (a drop at the last
  dose alone does not show where the curve levels off; doses counted on the curve's even log spacing
  ``(x1 - x0) / (n_doses - 1)``);
* reached: the plateau is ``estimated``; its interval is widened in quadrature by the remaining extrapolation
  ``|f(x1) - bottom|`` (the part of the transition no dose has seen);
* not reached, falling curve: the data support "the plateau is at most the fitted response at the highest dose"
  ``f(x1)``: ``einf`` is ``left_censored`` with ``lower = 0`` (relative viability is not negative) and
  ``upper = f(x1)``; ``grinf`` (which ranges down to -1, so the ``[0, bound]`` convention of a left-censored row
  cannot carry its bound) is ``refused`` with ``plateau_not_reached``;
* not reached, rising curve (response increasing with dose): the plateau is at least ``f(x1)``:
  ``right_censored`` with ``lower = f(x1)``, ``upper = inf``.

A flat fit (no transition within the tested range) says nothing about a plateau beyond it: its ``einf`` is
``left_censored`` at the upper 95% confidence limit of its level (``flat_value + 1.96 replicate_sd /
sqrt(n_points)``), its ``grinf`` / ``dip_einf`` refused (``plateau_not_reached``). A falling ``einf`` curve already
at or below 0 at the top dose keeps its value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from doseatlas import schemas as S
from doseatlas._stats import t975
from doseatlas.metrics.uncertainty import plateau_scale

St = S.MetricStatus
REACHED_SHARE = 0.9
Z975 = 1.959963984540054  # normal 97.5 % quantile (the control terms' quantile, as compute._widened)
MIN_DOSES_PAST = 2


def transition_share(curves: pd.DataFrame) -> np.ndarray:
    """Share of the fitted transition completed at the highest tested dose (NaN where no sigmoid)."""
    x1 = np.log10(curves["conc_max"].to_numpy(float))
    x50, hill = curves["log10_ec50"].to_numpy(float), curves["hill"].to_numpy(float)
    with np.errstate(over="ignore", invalid="ignore"):
        return 1.0 - 1.0 / (1.0 + 10.0 ** (hill * (x1 - x50)))


def doses_past_midpoint(curves: pd.DataFrame) -> np.ndarray:
    """Tested doses at or beyond the fitted midpoint, on the curve's even log spacing of ``n_doses`` doses."""
    x0, x1 = (np.log10(curves[k].to_numpy(float)) for k in ("conc_min", "conc_max"))
    n = curves["n_doses"].to_numpy(float) if "n_doses" in curves else np.full(len(curves), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        step = (x1 - x0) / (n - 1)
        past = np.floor((x1 - curves["log10_ec50"].to_numpy(float)) / step + 1e-9) + 1.0
    return np.clip(np.where(np.isfinite(past), past, 0.0), 0.0, np.nan_to_num(n, nan=0.0))


def censor_unreached(name: str, out: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """``out`` (rows of plateau metric ``name`` for ``curves``) with the rule of the module docstring applied."""
    top, bottom, hill = (curves[k].to_numpy(float) for k in ("top", "bottom", "hill"))
    x1 = np.log10(curves["conc_max"].to_numpy(float))
    with np.errstate(over="ignore", invalid="ignore"):
        f1 = bottom + (top - bottom) / (1.0 + 10.0 ** (hill * (x1 - curves["log10_ec50"].to_numpy(float))))
    sigmoid = curves["selected"].eq("sigmoid").to_numpy()
    flat = curves["selected"].eq("flat").to_numpy()
    estimated = out[S.STATUS].eq(St.ESTIMATED.value).to_numpy()
    reached = (transition_share(curves) >= REACHED_SHARE) & (doses_past_midpoint(curves) >= MIN_DOSES_PAST)
    level = curves["flat_value"].to_numpy(float)
    spread = curves["replicate_sd"].to_numpy(float) if "replicate_sd" in curves else np.zeros(len(curves))
    with np.errstate(divide="ignore", invalid="ignore"):
        flat_bound = level + 1.96 * np.nan_to_num(spread) / np.sqrt(curves["n_points"].to_numpy(float))
    unreached = estimated & ((sigmoid & ~reached & np.isfinite(f1)) | (flat & np.isfinite(flat_bound)))
    f1 = np.where(flat, flat_bound, f1)
    rising = ~flat & ((bottom - top) * hill > 0)
    falling = unreached & ~rising & ~((name == "einf") & (f1 <= 0.0))
    right = unreached & rising
    out = out.copy()
    gap = np.where(sigmoid & estimated & ~unreached, np.abs(f1 - bottom), 0.0)
    value = out[S.VALUE].to_numpy(float)
    lo_half = np.sqrt((value - out[S.LOWER].to_numpy(float)) ** 2 + gap**2)
    hi_half = np.sqrt((out[S.UPPER].to_numpy(float) - value) ** 2 + gap**2)
    out[S.LOWER] = np.where(gap > 0, value - lo_half, out[S.LOWER].to_numpy(float))
    out[S.UPPER] = np.where(gap > 0, value + hi_half, out[S.UPPER].to_numpy(float))
    if S.REASON not in out:
        out[S.REASON] = None
    left = falling if name == "einf" else np.zeros(len(out), dtype=bool)
    refuse = falling & ~left
    out.loc[left | right | refuse, S.VALUE] = np.nan
    out.loc[left, S.STATUS] = St.LEFT_CENSORED.value
    out.loc[left, S.LOWER] = 0.0
    out.loc[left, S.UPPER] = f1[left]
    out.loc[right, S.STATUS] = St.RIGHT_CENSORED.value
    out.loc[right, S.LOWER] = f1[right]
    out.loc[right, S.UPPER] = np.inf
    out.loc[refuse, [S.LOWER, S.UPPER]] = np.nan
    out.loc[refuse, S.STATUS] = St.REFUSED.value
    out.loc[refuse, S.REASON] = S.RefusalReason.PLATEAU_NOT_REACHED.value
    return out


# ------------------------------------------------------------------------------ crossings near a plateau (item 4)
def plateau_half_width(curves: pd.DataFrame, level_var=None, *, terms=None) -> np.ndarray:
    """Half-width of the 95% interval of the fitted plateau ``bottom`` as ``einf`` / ``grinf`` report it before
    the extrapolation widening: ``sqrt((t se)^2 + z^2 level_var)``, ``se`` the noise-model and misfit
    standard error (:func:`doseatlas.metrics.uncertainty.plateau_scale` times the fit's own), ``t`` the fit's
    ``t(n - 4)``, ``level_var`` a control variance (per curve; 0 when None). NaN without a covariance.
    ``terms``: the curves' sandwich terms (as ``plateau_scale`` takes them)."""
    own = (
        curves["cov_bottom_bottom"].to_numpy(float)
        if "cov_bottom_bottom" in curves
        else np.full(len(curves), np.nan)
    )
    t = t975(np.maximum(curves["n_points"].to_numpy(float) - 4, 1))
    extra = np.nan_to_num(np.asarray(level_var, dtype=float)) if level_var is not None else 0.0
    with np.errstate(invalid="ignore"):
        se = np.sqrt(own) * plateau_scale(curves, terms=terms)
    return np.sqrt((t * se) ** 2 + Z975**2 * extra)


def near_plateau(
    observed_level: float,
    got: pd.DataFrame,
    curves: pd.DataFrame,
    level: np.ndarray,
    *,
    level_var=None,
    same_scale: bool = True,
    terms=None,
) -> pd.DataFrame:
    """Crossings of a level that lies within the uncertainty of the plateau the curve approaches (item 4).

    Where the level lies within the 95% interval of the fitted ``bottom`` of a falling curve
    (:func:`plateau_half_width`: the interval the plateau metrics report before the extrapolation widening,
    from the noise model and misfit, with the level's own control variance), the crossing is hypersensitive: a plateau a little higher never reaches the level, a little lower crosses it
    far earlier, and the delta-method interval (a linearization) does not hold. The rule:

    * an estimated crossing that no replicate dose mean reaches (every mean above ``observed_level``, the level
      on the metric's own scale, e.g. percent growth) rests on the fitted plateau alone: it keeps its value and
      its interval is opened above, ``upper = inf`` (the true curve may level off before the level);
      a crossing the dose means pass is determined by the data and keeps its interval;
    * a right-censored crossing ("not reached") whose dose means clearly pass the level (the lowest mean below
      it by more than 2 replicate standard errors, ``replicate_sd / sqrt(n_replicates)`` of the curve; only
      where the curve is on the metric's scale, ``same_scale``) is ``left_censored`` at the highest tested dose
      instead: the data say "at most the highest dose", the fit's plateau only that it levels off just above.
    """
    top, bottom, hill = (curves[k].to_numpy(float) for k in ("top", "bottom", "hill"))
    falling = curves["selected"].eq("sigmoid").to_numpy() & ((top - bottom) * hill > 0)
    with np.errstate(invalid="ignore"):
        near = falling & (
            np.abs(np.asarray(level, dtype=float) - bottom)
            <= plateau_half_width(curves, level_var, terms=terms)
        )
    status = got[S.STATUS].astype(str).to_numpy()
    mean_min = curves["_mean_min"].to_numpy(float) if "_mean_min" in curves else np.full(len(top), np.nan)
    widen = near & (status == St.ESTIMATED.value) & (mean_min > observed_level)
    sd = curves["replicate_sd"].to_numpy(float) if "replicate_sd" in curves else np.full(len(top), np.nan)
    reps = curves["n_replicates"].to_numpy(float) if "n_replicates" in curves else np.full(len(top), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        clearly = mean_min < observed_level - 2.0 * sd / np.sqrt(reps)
    recensor = near & (status == St.RIGHT_CENSORED.value) & clearly & same_scale
    out = got.copy()
    out.loc[widen, S.UPPER] = np.inf
    out.loc[recensor, S.STATUS] = St.LEFT_CENSORED.value
    out.loc[recensor, S.LOWER] = 0.0
    out.loc[recensor, S.UPPER] = curves["conc_max"].to_numpy(float)[recensor]
    return out
