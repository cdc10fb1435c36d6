"""Issue 13 acceptance figures: plate-position (edge effect) detection on simulated plates with known truth.

Prints, per plate format, the share of plates flagged ``edge_effect`` with a planted 20% edge loss (target
>= 95%) and without (target <= 5%), and the median estimated edge effect. ``--quick`` runs a smaller version
(the default test suite runs the same measurement in tests/test_spatial.py). ``--ic50`` prints instead the
IC50 error against the truth with each ``--position-correction`` (target: ``bscore`` within a median 0.05 log10
on plates with a 20% edge loss; tests/test_position.py runs one seed).
"""

from __future__ import annotations

import argparse

import pandas as pd

from doseatlas.ingest import canonical_columns
from doseatlas.metrics.flags import FlagCode, FlagOptions, plate_flags
from doseatlas.qc import PLATE_KEY
from doseatlas.simulate import DatasetConfig, SimulationConfig, simulate
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
    parser.add_argument("--seeds", type=int, default=10, help="simulated data sets per row (default 10)")
    parser.add_argument("--ic50", action="store_true", help="IC50 error per --position-correction instead")
    args = parser.parse_args()
    seeds = range(2) if args.quick else range(args.seeds)
    print(measure_ic50(seeds).to_string() if args.ic50 else measure(seeds).to_string(index=False))


if __name__ == "__main__":
    main()
