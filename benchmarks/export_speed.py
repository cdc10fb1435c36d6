"""Speed of the export: labels + consensus + matrices on 1,000,000 metric rows (target: under 10 s on 2 cores).

Usage: ``python benchmarks/export_speed.py [--cell-lines N] [--drugs M] [--datasets D] [--seed S]``

Generates a metrics table as ``doseatlas run`` writes it (the 16 drug metrics of the registry for every
dataset x cell line x drug; concentration metrics estimated with log-symmetric 95% intervals, right- or
left-censored at the tested range, or refused; each dataset shifted by its own offset so that some sources
disagree), then times :func:`doseatlas.harmonize.export.build_labels` (source labels, consensus, log10 targets)
and :func:`~doseatlas.harmonize.export.matrices`. The baseline, measured in the same run, is writing the same
metrics table to Parquet and reading it back with pyarrow. The last line is
``rows=<n> export_s=<labels+consensus+matrices> baseline_s=<parquet write+read>``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from _options import size_options

from doseatlas import schemas as S
from doseatlas.harmonize.export import ExportOptions, build_labels, matrices
from doseatlas.metrics.registry import METRICS, MOLAR

St = S.MetricStatus


def metrics_table(*, n_cell_lines: int, n_drugs: int, n_datasets: int, seed: int) -> pd.DataFrame:
    """A run's metrics table for every dataset x cell line x drug x drug metric (vectorized)."""
    rng = np.random.default_rng(seed)
    drug_metrics = [m for m in METRICS if S.PerturbationType.DRUG.value in m.perturbations]
    shape = (n_datasets, n_cell_lines, n_drugs, len(drug_metrics))
    d, c, p, m = (a.ravel() for a in np.indices(shape))
    n = d.size
    conc = np.array([x.unit == MOLAR for x in drug_metrics])[m]
    truth = rng.normal(-6.5, 1.0, size=(n_cell_lines, n_drugs))[c, p] + rng.normal(0, 0.3, n_datasets)[d]
    log_value = truth + rng.normal(0.0, 0.15, n)
    half = rng.uniform(0.05, 0.6, n)
    kind = rng.choice(4, size=n, p=[0.6, 0.15, 0.1, 0.15])  # estimated, right, left, refused
    kind = np.where(conc, kind, np.where(kind == 3, 3, 0))
    plain = rng.uniform(0.0, 1.0, n)
    value = np.where(conc, 10.0**log_value, plain)
    lower = np.where(conc, 10.0 ** (log_value - half), plain - half / 4)
    upper = np.where(conc, 10.0 ** (log_value + half), plain + half / 4)
    status = np.array([St.ESTIMATED.value, St.RIGHT_CENSORED.value, St.LEFT_CENSORED.value, St.REFUSED.value])
    table = pd.DataFrame(
        {
            S.DATASET: np.array([f"screen_{i}" for i in range(n_datasets)])[d],
            S.CELL_LINE: np.array([f"CL{i:04d}" for i in range(n_cell_lines)])[c],
            S.PERTURBATION_TYPE: S.PerturbationType.DRUG.value,
            S.PERTURBAGEN: np.array([f"drug{i:04d}" for i in range(n_drugs)])[p],
            S.READOUT: np.array(["atp", "resazurin", "srb"])[d % 3],
            S.DURATION_H: np.array([72.0, 96.0])[d % 2],
            S.METRIC: np.array([x.name for x in drug_metrics])[m],
            S.VALUE: np.select([kind == 0], [value], np.nan),
            S.UNIT: np.array([x.unit for x in drug_metrics])[m],
            S.STATUS: status[kind],
            S.LOWER: np.select([kind == 0, kind == 1, kind == 2], [lower, 1e-5, 0.0], np.nan),
            S.UPPER: np.select([kind == 0, kind == 1, kind == 2], [upper, np.inf, 1e-9], np.nan),
            S.REASON: np.where(kind == 3, S.RefusalReason.POOR_FIT.value, None),
            S.SCALE: np.array([x.scale for x in drug_metrics])[m],
            S.FIT_MODEL: "ll4",
            S.FIT_POLICY: "refuse",
            S.CURVE_ID: np.char.add("c", (d * n_cell_lines * n_drugs + c * n_drugs + p).astype(str)),
        }
    )
    no_interval = (
        ~conc & (kind == 0) & np.isin(m, [i for i, x in enumerate(drug_metrics) if x.kind != "parameter"])
    )
    table.loc[no_interval, [S.LOWER, S.UPPER]] = np.nan  # areas and observed metrics have no interval
    return table


def main() -> None:
    args = size_options(__doc__, cell_lines=250, drugs=84, datasets=3)
    metrics = metrics_table(
        n_cell_lines=args.cell_lines, n_drugs=args.drugs, n_datasets=args.datasets, seed=args.seed
    )
    start = time.perf_counter()
    labels = build_labels(metrics, options=ExportOptions())
    t_labels = time.perf_counter() - start
    start = time.perf_counter()
    tables = matrices(labels)
    t_matrices = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "metrics.parquet"
        start = time.perf_counter()
        pq.write_table(pa.Table.from_pandas(metrics, preserve_index=False), path)
        pq.read_table(path).to_pandas()
        t_base = time.perf_counter() - start
    rows = labels[labels[S.DATASET] == S.CONSENSUS_DATASET]
    print(
        f"metric rows={len(metrics)} label rows={len(labels)} consensus rows={len(rows)} matrices={len(tables)}"
    )
    print(f"consensus status: {rows[S.STATUS].value_counts().to_dict()}")
    print(
        f"labels+consensus: {t_labels:.2f} s; matrices: {t_matrices:.2f} s; parquet write+read baseline: {t_base:.2f} s"
    )
    print(f"ratio export / baseline = {(t_labels + t_matrices) / t_base:.1f}")
    print(f"rows={len(metrics)} export_s={t_labels + t_matrices:.2f} baseline_s={t_base:.2f}")


if __name__ == "__main__":
    main()
