"""Metrics converted to a target duration under the exponential model (``--target-duration H``).

Model (Hafner et al. 2016; Harris et al. 2016): the cells grow exponentially and a drug at concentration
``c`` changes the net growth rate from ``k0`` to ``k(c)`` from the start of the assay. Then

- ``GR(c) = 2^(k(c)/k0) - 1`` does not depend on the duration;
- the time-zero over vehicle ratio at duration ``T`` is ``r0_T = Tz/C = exp(-k0 T)``, so ``r0_H = r0_T^(H/T)``;
- relative viability ``RV_H(c) = RV_T(c)^(H/T)`` and NCI-60 percent growth follow from ``GR`` and ``r0_H``.

So every threshold metric at any duration ``H`` is a crossing of the source's **fitted GR curve** at a level
that depends only on ``r0_H``: ``ic50`` at ``GR = 2^(1 - log2(2)/log2(1/r0_H)) - 1`` (RV = 0.5), ``gi50``,
``tgi``, ``lc50`` at the GR levels of PG = 50, 0, -50 (:func:`doseatlas.metrics.compute.pg_to_gr_level`),
``gr50`` at GR = 0.5 whatever ``H`` (duration-invariant: the converted value equals the measured one). The
conversion acts on the fitted curve, never on a point value; the interval is built as a measured crossing's
(docs/fitting.md, "Noise model and model misfit"): the noise model and dose-clustered sandwich of the GR curve,
the local misfit where it crosses the level, and the plate controls (vehicle and time zero, which also make
``r0``: :func:`_level_variance`); see docs/time.md.
Censoring follows the usual crossing rule on the tested range.

A converted row is refused with a reason where the model cannot carry it: no growth estimate
(``no_growth_estimate``: neither time-zero reads nor a doubling time), a target far from the measured
duration (``target_duration_out_of_range``: ``H / T`` outside ``[1/max_ratio, max_ratio]``), a control whose
growth is not exponential (``growth_not_exponential``, from :mod:`doseatlas.growth`), and the refusals of the
GR fit itself (flat, poor or failed fits, as for the measured metrics).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from doseatlas import growth as G
from doseatlas import schemas as S
from doseatlas.errors import ConfigError
from doseatlas.metrics import compute as C
from doseatlas.metrics import uncertainty as U
from doseatlas.metrics.registry import CONVERTIBLE, METRICS
from doseatlas.metrics.time_dependence import PAIR_KEY, TIME_DEPENDENT

BASIS = "basis"
SOURCE_DURATION_H = "source_duration_h"
MEASURED, CONVERTED = "measured", "converted"
CONVERTED_METRICS = CONVERTIBLE
CONVERTED_COLUMNS = [*C.OUTPUT_COLUMNS, BASIS, SOURCE_DURATION_H, S.DOUBLING_TIME_H]


@dataclass(frozen=True)
class ConversionOptions:
    """Target durations and how far from the measured duration a conversion may go.

    Parameters
    ----------
    targets
        Durations in hours to convert every convertible metric to (empty: no conversion).
    max_ratio
        A conversion from ``T`` to ``H`` is refused when ``H / T`` is outside ``[1 / max_ratio, max_ratio]``.
    """

    targets: tuple[float, ...] = ()
    max_ratio: float = 2.0

    def __post_init__(self) -> None:
        bad = [t for t in self.targets if not (np.isfinite(t) and t > 0)]
        if bad:
            raise ConfigError(f"target durations must be positive hours, got {bad}")
        if not (np.isfinite(self.max_ratio) and self.max_ratio >= 1):
            raise ConfigError(f"max_ratio must be >= 1, got {self.max_ratio}")


def rv_to_gr_level(rv: float, r0: np.ndarray) -> np.ndarray:
    """GR level at which relative viability equals ``rv`` given ``r0 = Tz/C`` at that duration."""
    r0 = np.asarray(r0, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 2.0 ** (1.0 + np.log2(rv) / np.log2(1.0 / r0)) - 1.0


def gr_level(metric: str, r0: np.ndarray) -> np.ndarray:
    """The GR level of a convertible threshold metric at a duration whose time-zero ratio is ``r0``."""
    threshold = float(next(m.threshold for m in METRICS if m.name == metric))
    if metric == "ic50":
        return rv_to_gr_level(threshold, r0)
    if metric == "gr50":
        return np.full(np.shape(r0), threshold)
    return C.pg_to_gr_level(threshold, r0)


def convert_metrics(
    responses: pd.DataFrame,
    curves: pd.DataFrame,
    *,
    growth: pd.DataFrame,
    options: ConversionOptions,
    dependence: pd.DataFrame | None = None,
    metric_options: C.MetricOptions | None = None,
) -> pd.DataFrame:
    """Converted rows: one per drug curve key measured at ``T != H``, target ``H`` and convertible metric.

    Parameters
    ----------
    responses, curves
        The run's responses and fitted curves (the GR curves are used).
    growth
        :func:`doseatlas.growth.growth_table` of the run (its ``growth_not_exponential`` flag refuses).
    options
        :class:`ConversionOptions`.
    dependence
        :func:`doseatlas.metrics.time_dependence.time_dependence` of the run: pairs flagged
        ``time_dependent`` are not converted (refused with that reason).
    """
    metric_options = metric_options or C.MetricOptions()
    if not options.targets or not len(responses):
        return pd.DataFrame(columns=CONVERTED_COLUMNS)
    curves = U.with_misfit(
        responses, curves
    )  # the lack-of-fit factor widens converted intervals as measured ones
    drugs = C.DrugCurves.of(responses)
    keys = _gr_keys(responses, curves, growth, dependence, drugs=drugs)
    keys = _with_interval_terms(keys, responses, drugs)
    gate = C._gate(keys, metric_options) if len(keys) else pd.Series(dtype=object)
    frames = [
        _converted(name, keys, gate, target=float(h), options=options)
        for h in sorted(set(options.targets))
        for name in CONVERTED_METRICS
    ]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=CONVERTED_COLUMNS)
    table = pd.concat(frames, ignore_index=True)
    order = [*S.CURVE_KEY, SOURCE_DURATION_H, S.METRIC]
    return table.sort_values(order, kind="stable").reset_index(drop=True)[CONVERTED_COLUMNS]


def _gr_keys(
    responses: pd.DataFrame,
    curves: pd.DataFrame,
    growth: pd.DataFrame,
    dependence: pd.DataFrame | None,
    *,
    drugs: C.DrugCurves,
) -> pd.DataFrame:
    """Every drug curve key (one row per key of ``drugs.keys``, in its order) with its GR curve, its ``r0_T``
    and whether its control grows exponentially."""
    keys = C._scale_keys(responses, S.GR, drugs=drugs)
    keys = keys.merge(curves[curves[S.SCALE] == S.GR], on=list(S.CURVE_KEY), how="left")
    # r0 from time-zero reads (mean Tz/C over the curve's wells), as metrics
    r0 = drugs.keys.assign(**{C.R0: C._drug_growth_ratio(drugs)})
    keys = keys.merge(r0, on=list(S.CURVE_KEY), how="left")
    td = _user_doubling_times(responses)
    keys = keys.merge(td, on=list(S.CURVE_KEY), how="left")
    from_td = 2.0 ** (-keys[S.DURATION_H].astype(float) / keys["_td_user"])
    keys[C.R0] = keys[C.R0].where(keys[C.R0].notna(), from_td)
    slowing = growth.loc[
        growth[G.FLAGS].str.contains(G.NOT_EXPONENTIAL, regex=False), [S.DATASET, S.CELL_LINE, S.READOUT]
    ]
    slowing = slowing.drop_duplicates().assign(_slowing=True)
    keys = keys.merge(slowing, on=[S.DATASET, S.CELL_LINE, S.READOUT], how="left")
    keys["_slowing"] = keys["_slowing"].fillna(False).astype(bool)
    flagged = pd.DataFrame(columns=[*PAIR_KEY, "_time_dependent"])
    if dependence is not None and len(dependence):
        flagged = dependence.loc[dependence[TIME_DEPENDENT].astype(bool), PAIR_KEY].assign(
            _time_dependent=True
        )
    keys = keys.merge(flagged.drop_duplicates(PAIR_KEY), on=PAIR_KEY, how="left")
    keys["_time_dependent"] = keys["_time_dependent"].astype(object).fillna(False).astype(bool)
    return keys


def _with_interval_terms(keys: pd.DataFrame, responses: pd.DataFrame, drugs: C.DrugCurves) -> pd.DataFrame:
    """``keys`` with the terms of a measured crossing's interval (docs/fitting.md, "Noise model and model
    misfit"): the plate-control terms and the dose-clustered sandwich terms (noise model, local misfit) of the GR
    curve. ``keys`` has one row per key of ``drugs.keys``, in its order (as :func:`_gr_keys` builds it)."""
    if not len(keys):
        return keys
    if U.has_controls(responses):
        keys = C._with_controls(keys, U.control_terms(responses), drugs)
    return C._with_sandwich(keys, drugs, S.GR)


def _level_variance(name: str, level: np.ndarray, r0_h: np.ndarray, curves: pd.DataFrame) -> np.ndarray:
    """Variance of the converted level from the plate controls (see :func:`doseatlas.metrics.uncertainty.
    signal_level_variance`): the GR level of a converted metric is that of a signal at the measured duration
    ``T``, ``ln x = ln C + (T/H) ln RV_H`` (exponential model), so ``d ln x = w0 e0 + wC eC`` with ``(w0, wC)``
    = ``(0, 1)`` for ``ic50`` (RV_H = 0.5), the GR scale's for ``gr50`` and the percent-growth weights of the
    measured metric with ``r0_H`` in place of ``r0_T`` for ``gi50``, ``tgi``, ``lc50``
    (:func:`doseatlas.metrics.uncertainty.signal_weights`)."""
    if name == "ic50":
        weights = np.zeros_like(level), np.ones_like(level)
    elif name == "gr50":
        weights = U.signal_weights(S.GR, level)
    else:
        threshold = next(m for m in METRICS if m.name == name).threshold
        weights = U.signal_weights(S.PERCENT_GROWTH, level, threshold=threshold, r0=r0_h)
    return U.signal_level_variance(level, *weights, curves)


def _user_doubling_times(responses: pd.DataFrame) -> pd.DataFrame:
    key = list(S.CURVE_KEY)
    if S.DOUBLING_TIME_H not in responses:
        return pd.DataFrame(columns=[*key, "_td_user"])
    rows = responses[responses[S.DOUBLING_TIME_H].notna()].rename(columns={S.TIME_H: S.DURATION_H})
    first = rows.drop_duplicates(key)[[*key, S.DOUBLING_TIME_H]]
    return first.rename(columns={S.DOUBLING_TIME_H: "_td_user"})


def _converted(name: str, keys: pd.DataFrame, gate: pd.Series, *, target: float, options: ConversionOptions):
    metric = next(m for m in METRICS if m.name == name)
    drugs = keys[keys[S.DURATION_H].astype(float) != target]
    if not len(drugs):
        return pd.DataFrame(columns=CONVERTED_COLUMNS)
    t = drugs[S.DURATION_H].astype(float).to_numpy()
    r0_t = drugs[C.R0].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        r0_h = r0_t ** (target / t)
        td = t * np.log(2) / np.log(1.0 / r0_t)
    reason = gate.loc[drugs.index].astype(object).copy()
    reason[reason == S.RefusalReason.NO_TIME_ZERO.value] = S.RefusalReason.NO_GROWTH_ESTIMATE.value
    no_growth = ~((r0_t > 0) & (r0_t < 1))
    ratio = target / t
    far = (ratio > options.max_ratio) | (ratio < 1.0 / options.max_ratio)
    # a time-dependent pair is never converted, whatever else its curve has: that is the reason to give
    reason[drugs["_time_dependent"].to_numpy()] = S.RefusalReason.TIME_DEPENDENT.value
    reason[reason.isna() & drugs["_slowing"].to_numpy()] = S.RefusalReason.GROWTH_NOT_EXPONENTIAL.value
    reason[reason.isna() & far] = S.RefusalReason.TARGET_DURATION_OUT_OF_RANGE.value
    reason[reason.isna() & no_growth] = S.RefusalReason.NO_GROWTH_ESTIMATE.value
    body = pd.DataFrame(
        {
            S.STATUS: S.MetricStatus.REFUSED.value,
            S.VALUE: np.nan,
            S.LOWER: np.nan,
            S.UPPER: np.nan,
            S.REASON: reason,
        },
        index=drugs.index,
    )
    usable = reason.isna()
    if usable.any():
        at = usable.to_numpy()
        level = gr_level(name, r0_h[at])
        level_var = _level_variance(name, level, r0_h[at], drugs[usable])
        got = C.crossing(drugs[usable], level, level_var=level_var)
        body.loc[usable, got.columns] = got
        body = C._not_identifiable(metric, body, usable & drugs["status"].eq(C.SINGULAR))
    out = pd.concat([drugs[list(S.CURVE_KEY)], body], axis=1)
    out[S.CURVE_ID] = drugs[S.CURVE_ID]
    model = (
        drugs["model"].where(drugs["selected"].ne("flat"), "flat").fillna("none").astype(str) + f"({S.GR})"
    )
    policy = drugs[S.FIT_POLICY].fillna(C.FIT_POLICY_REFUSE) if S.FIT_POLICY in drugs else C.FIT_POLICY_REFUSE
    out = C._finish(out, metric, fit_model=model, fit_policy=policy)
    out[BASIS] = CONVERTED
    out[SOURCE_DURATION_H] = t
    out[S.DOUBLING_TIME_H] = np.where(no_growth, np.nan, td)
    out[S.DURATION_H] = target
    return out
