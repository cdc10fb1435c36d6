"""Scoring metrics against the simulator's exact truth (used by the tests and docs/validation.md)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from doseatlas import schemas as S

CONCENTRATION_METRICS = ("ic50", "gi50", "tgi", "lc50", "gr50")


def join_truth(metrics: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Metric rows with the true status and value beside them (suffix ``_true``)."""
    keep = [*S.METRIC_KEY, S.STATUS, S.VALUE]
    return metrics.merge(truth[keep], on=list(S.METRIC_KEY), how="inner", suffixes=("", "_true"))


def score(metrics: pd.DataFrame, truth: pd.DataFrame, *, names=CONCENTRATION_METRICS, tol: float = 0.1):
    """Per metric: curves, how many truths lie inside the tested range, the share of those estimated within
    ``tol`` log10 units, the median absolute log10 error, and the share of curves whose status matches the truth.
    """
    joined = join_truth(metrics, truth)
    rows = []
    for name in names:
        block = joined[joined[S.METRIC] == name]
        inside = block[block["status_true"] == S.MetricStatus.ESTIMATED]
        both = inside[inside[S.STATUS] == S.MetricStatus.ESTIMATED]
        err = np.abs(np.log10(both[S.VALUE].to_numpy(float)) - np.log10(both["value_true"].to_numpy(float)))
        rows.append(
            {
                "metric": name,
                "curves": len(block),
                "truth_inside_range": len(inside),
                "within_tol": float((err <= tol).sum() / len(inside)) if len(inside) else np.nan,
                "median_abs_log10_error": float(np.median(err)) if len(err) else np.nan,
                "status_agreement": float((block[S.STATUS] == block["status_true"]).mean())
                if len(block)
                else np.nan,
                "refused": int((block[S.STATUS] == S.MetricStatus.REFUSED).sum()),
            }
        )
    return pd.DataFrame(rows)


def scoring_set(
    *,
    seed: int,
    readout: str = "atp",
    cv: float = 0.05,
    n_cell_lines: int = 10,
    n_drugs: int = 10,
    name: str = "acc",
    **dataset,
):
    """A simulated data set made for scoring: one 72 h read with time-zero plates, multiplicative noise ``cv``,
    no seeding or plate-gain noise (the set-up of the accuracy tests and ``docs/validation.md``); ``dataset``
    overrides other :class:`doseatlas.simulate.DatasetConfig` fields (e.g. ``time_zero=False``).

    Returns
    -------
    (Simulation, DataFrame)
        The simulation (wells and exact truth) and its wells as a canonical table ready for the pipeline.
    """
    from doseatlas.ingest import canonical_columns
    from doseatlas.simulate import DatasetConfig, SimulationConfig, simulate

    fields = {"read_times_h": [72.0], "time_zero": True, "cv": cv, "seeding_cv": 0.0, "plate_gain_sd": 0.0}
    fields.update(dataset)
    config = SimulationConfig(
        n_cell_lines=n_cell_lines,
        n_drugs=n_drugs,
        datasets=[DatasetConfig(name=name, readout=readout, **fields)],
    )
    sim = simulate(config, seed=seed)
    return sim, canonical_columns(sim.wells, source="simulated")
