"""Peak memory and time of the partitioned (Dask) run against the in-memory run, on the same simulated screen.

Usage: ``python benchmarks/scale_memory.py [--cell-lines N] [--drugs M] [--files F] [--partitions P] [--workers W]
[--stream]``

Simulates a 384-well screen (two read times, time-zero plates), writes its well table as a hive-partitioned
Parquet data set of ``F`` files (rows shuffled, so plates span files), then runs, each in a fresh process (so
that peak RSS is that run's alone): the in-memory pipeline (the baseline) and ``doseatlas.scale`` with
``P`` buckets and ``W`` workers. Checks that the metrics tables are identical. ``--stream``: both runs also
write every output table (as ``doseatlas run``), the partitioned one streamed (``stream=True``: responses,
curves and metrics kept on disk per bucket and merged into the files), and the written metrics files are
compared. The last line is
``peak_mb_ratio=<partitioned / in-memory> time_ratio=<partitioned / in-memory>``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def _write_input(root: Path, *, cell_lines: int, drugs: int, files: int, seed: int) -> int:
    from doseatlas.simulate import DatasetConfig, SimulationConfig, simulate

    dataset = DatasetConfig(name="bench", plate_format=384, read_times_h=[72.0, 96.0], time_zero=True)
    wells = simulate(
        SimulationConfig(n_cell_lines=cell_lines, n_drugs=drugs, datasets=[dataset]), seed=seed
    ).wells
    wells = wells.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    folder = root / "dataset=bench"
    folder.mkdir(parents=True)
    for i, rows in enumerate(np.array_split(np.arange(len(wells)), files)):
        wells.iloc[rows].drop(columns=["dataset"]).to_parquet(folder / f"part{i:03d}.parquet")
    return len(wells)


def _child(args: argparse.Namespace) -> None:
    """One run in this process; prints its time and peak RSS as JSON and writes its metrics."""
    from doseatlas.ingest.partitioned import list_parts, read_part
    from doseatlas.pipeline import run_pipeline
    from doseatlas.scale import run_partitioned

    parts = list_parts([args.input])
    start = time.perf_counter()
    if args.child == "memory":
        result = run_pipeline(pd.concat([read_part(p) for p in parts], ignore_index=True))
    else:
        result = run_partitioned(
            parts, read=read_part, n_partitions=args.partitions, workers=args.workers, stream=args.stream
        )
    if args.stream:  # the output tables written, as doseatlas run writes them (timed)
        from doseatlas import io

        out = Path(args.input).parent / f"out_{args.child}"
        out.mkdir()
        io.write_run(result, out, meta={})
        seconds = time.perf_counter() - start
        (out / "metrics.parquet").rename(Path(args.input).parent / f"metrics_{args.child}.parquet")
    else:
        seconds = time.perf_counter() - start
        result.metrics.to_parquet(Path(args.input).parent / f"metrics_{args.child}.parquet")
    peak = (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    )
    print(json.dumps({"seconds": seconds, "peak_mb": peak / 1024}))


def _run(kind: str, args: argparse.Namespace, root: Path) -> dict:
    command = [sys.executable, __file__, "--child", kind, "--input", str(root / "in")]
    command += ["--partitions", str(args.partitions), "--workers", str(args.workers)]
    command += ["--stream"] if args.stream else []
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell-lines", type=int, default=120)
    parser.add_argument("--drugs", type=int, default=60)
    parser.add_argument("--files", type=int, default=12)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stream", action="store_true", help="write the output tables, streamed")
    parser.add_argument("--child", choices=["memory", "dask"], help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        n = _write_input(
            root / "in", cell_lines=args.cell_lines, drugs=args.drugs, files=args.files, seed=args.seed
        )
        memory, partitioned = _run("memory", args, root), _run("dask", args, root)
        a = pd.read_parquet(root / "metrics_memory.parquet")
        b = pd.read_parquet(root / "metrics_dask.parquet")
        key = [
            "dataset",
            "cell_line",
            "perturbation_type",
            "perturbagen",
            "readout",
            "duration_h",
            "scale",
            "metric",
        ]
        a, b = a.sort_values(key).reset_index(drop=True), b[a.columns].sort_values(key).reset_index(drop=True)
        identical = a.equals(b)
    print(
        f"wells={n} files={args.files} partitions={args.partitions} workers={args.workers} stream={args.stream}"
    )
    print(f"in-memory: {memory['seconds']:.1f} s, peak {memory['peak_mb']:.0f} MB")
    print(
        f"partitioned: {partitioned['seconds']:.1f} s, peak {partitioned['peak_mb']:.0f} MB (all processes)"
    )
    print(f"metrics identical: {identical}")
    ratio_mb = partitioned["peak_mb"] / memory["peak_mb"]
    print(f"peak_mb_ratio={ratio_mb:.2f} time_ratio={partitioned['seconds'] / memory['seconds']:.2f}")


if __name__ == "__main__":
    main()
