"""Issue 13 acceptance figures on simulated plates with known truth.

* ``edge``: per plate format, the share of plates flagged ``edge_effect`` with a planted 20% edge loss (target
  >= 95%) and without (target <= 5%), and the median estimated edge effect;
* ``interference``: drugs with a planted signal of their own on the readout (compound-only wells on cell-free
  plates): the share of planted and of clean drugs flagged ``readout_interference`` (targets 100% and <= 5%), and
  the IC50 of the planted drugs against the truth without and with ``--interference-correction subtract``;
* ``discordance``: ATP and resazurin screens of the same drugs, some lowering ATP per cell without killing: the
  share of IC50 rows flagged ``readout_discordant`` for planted and for clean drugs.

* ``ic50``: the IC50 error against the truth with each ``--position-correction`` (target: ``bscore`` within a
  median 0.05 log10 on plates with a 20% edge loss; tests/test_position.py runs one seed).

``--quick`` runs a smaller version (the default test suite runs the same measurements in tests/test_spatial.py,
tests/test_interference.py and tests/test_position.py); ``--part`` runs one of them, ``--seeds`` sets the number
of simulated data sets per row (default 10).
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from doseatlas import schemas as S
from doseatlas.ingest import canonical_columns
from doseatlas.interference import InterferenceOptions
from doseatlas.metrics.flags import FlagCode, FlagOptions, plate_flags
from doseatlas.pipeline import RunOptions, run_pipeline
from doseatlas.qc import PLATE_KEY
from doseatlas.simulate import DatasetConfig, SimulationConfig, simulate
from doseatlas.simulate.assay import (
    discordance_config,
    discordance_detection,
    ic50_error,
    interference_config,
    interference_detection,
)
from doseatlas.spatial import EDGE_EFFECT, edge_effects, well_positions
from doseatlas.validate import validate_wells


def edge_table(
    *, edge_loss: float, plate_format: int, seed: int, n_lines: int = 6, n_drugs: int = 6
) -> pd.DataFrame:
    """Per simulated plate: the estimated edge effect and whether the run's rule flags it."""
    config = SimulationConfig(
        n_cell_lines=n_lines,
        n_drugs=n_drugs,
        datasets=[DatasetConfig(name="e", plate_format=plate_format, edge_loss=edge_loss)],
    )
    clean = validate_wells(canonical_columns(simulate(config, seed=seed).wells, source="sim")).clean
    plates = edge_effects(well_positions(clean))
    flagged = plate_flags(plates, options=FlagOptions())
    hit = flagged[flagged[FlagCode.EDGE_EFFECT]][PLATE_KEY].assign(_f=True)
    out = plates.merge(hit, on=PLATE_KEY, how="left")
    return out.assign(flagged=out["_f"].eq(True), edge_loss=edge_loss, plate_format=plate_format).drop(
        columns="_f"
    )


def measure(seeds: range) -> pd.DataFrame:
    frames = [
        edge_table(edge_loss=loss, plate_format=fmt, seed=seed)
        for seed in seeds
        for fmt in (96, 384)
        for loss in (0.0, 0.2)
    ]
    table = pd.concat(frames, ignore_index=True)
    return (
        table.groupby(["plate_format", "edge_loss"])
        .agg(
            plates=("flagged", "size"),
            flagged=("flagged", "mean"),
            median_edge_effect=(EDGE_EFFECT, "median"),
        )
        .reset_index()
    )


def interference(seeds: range) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(detection per seed and drug kind, IC50 of the planted drugs without and with the correction)."""
    found, errors = [], []
    subtract = RunOptions(interference=InterferenceOptions(correction="subtract"))
    for seed in seeds:
        sim = simulate(interference_config(n_interfering=3, n_clean=9), seed=seed)
        raw = canonical_columns(sim.wells, source="sim")
        planted = sorted(
            sim.interference.loc[sim.interference[S.COMPOUND_SIGNAL] > 0, S.PERTURBAGEN].unique()
        )
        for correction, options in (("none", RunOptions()), ("subtract", subtract)):
            metrics = run_pipeline(raw, options=options).metrics
            found.append(interference_detection(sim.interference, metrics).assign(correction=correction))
            errors.append(ic50_error(metrics, sim.truth, planted).assign(correction=correction))
    found, errors = pd.concat(found, ignore_index=True), pd.concat(errors, ignore_index=True)
    detection = found.groupby(["correction", "planted"]).agg(
        drugs=("flagged", "size"), flagged=("flagged", "mean")
    )
    errors["same_status"] = errors[S.STATUS] == errors["status_true"]
    errors["abs_log10_error"] = errors["log10_error"].abs()
    accuracy = errors.groupby("correction").agg(
        curves=("same_status", "size"),
        same_status_as_truth=("same_status", "mean"),
        median_abs_log10_error=("abs_log10_error", "median"),
        within_2_fold=("abs_log10_error", lambda e: float(np.mean(e < np.log10(2)))),
    )
    return detection.reset_index(), accuracy.reset_index()


def discordance(seeds: range) -> pd.DataFrame:
    """Share of IC50 rows flagged ``readout_discordant`` for drugs lowering ATP per cell and for clean drugs."""
    frames = []
    for seed in seeds:
        sim = simulate(discordance_config(n_planted=2, n_clean=6), seed=seed)
        metrics = run_pipeline(canonical_columns(sim.wells, source="sim")).metrics
        frames.append(discordance_detection(metrics, ["atpdrop1", "atpdrop2"]))
    table = pd.concat(frames, ignore_index=True)
    return (
        table.groupby(["planted", S.READOUT])
        .agg(rows=("flagged", "size"), flagged=("flagged", "mean"))
        .reset_index()
    )


def ic50_errors(*, edge_loss: float, plate_format: int, seed: int) -> list[dict]:
    """Per position correction: the median absolute and signed log10 error of the IC50s estimated where the
    truth lies inside the tested range (4 cell lines x 6 drugs, 5% noise, 10% seeding noise, 5% plate gain)."""
    import numpy as np

    from doseatlas import schemas as S
    from doseatlas.pipeline import RunOptions, run_pipeline
    from doseatlas.simulate.accuracy import join_truth, scoring_set

    sim, wells = scoring_set(seed=seed, n_cell_lines=4, n_drugs=6, edge_loss=edge_loss, plate_format=plate_format,
                             time_zero=False, seeding_cv=0.1, plate_gain_sd=0.05)  # fmt: skip
    rows = []
    for method in ("none", "bscore", "drop-edge"):
        joined = join_truth(
            run_pipeline(wells, options=RunOptions(position_correction=method)).metrics, sim.truth
        )
        ok = (
            (joined[S.METRIC] == "ic50")
            & (joined["status_true"] == "estimated")
            & (joined[S.STATUS] == "estimated")
        )
        err = np.log10(joined.loc[ok, S.VALUE].astype(float)) - np.log10(
            joined.loc[ok, "value_true"].astype(float)
        )
        rows.append({"plate_format": plate_format, "edge_loss": edge_loss, "correction": method, "curves": len(err),
                     "median_abs": float(np.median(np.abs(err))), "median_signed": float(np.median(err))})  # fmt: skip
    return rows


def measure_ic50(seeds: range) -> pd.DataFrame:
    rows = [r for seed in seeds for fmt in (96, 384) for loss in (0.0, 0.2)
            for r in ic50_errors(edge_loss=loss, plate_format=fmt, seed=seed)]  # fmt: skip
    table = pd.DataFrame(rows)
    return table.groupby(["plate_format", "edge_loss", "correction"])[
        ["curves", "median_abs", "median_signed"]
    ].mean()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--part", choices=("edge", "interference", "discordance", "ic50"), default=None)
    parser.add_argument("--seeds", type=int, default=10, help="simulated data sets per row (default 10)")
    args = parser.parse_args()
    seeds = range(2) if args.quick else range(args.seeds)
    if args.part in (None, "edge"):
        print(measure(seeds).to_string(index=False))
    if args.part in (None, "interference"):
        detection, accuracy = interference(seeds)
        print("\nreadout_interference (3 interfering + 9 clean drugs x 3 cell lines per seed, resazurin)")
        print(detection.to_string(index=False))
        print("\nIC50 of the interfering drugs against the truth")
        print(accuracy.to_string(index=False))
    if args.part in (None, "discordance"):
        print(
            "\nreadout_discordant on IC50 (ATP and resazurin; 2 drugs lowering ATP per cell + 6 clean per seed)"
        )
        print(discordance(seeds).to_string(index=False))
    if args.part in (None, "ic50"):
        print("\nIC50 error against the truth per --position-correction")
        print(measure_ic50(seeds).to_string())


if __name__ == "__main__":
    main()
