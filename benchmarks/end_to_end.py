"""A whole run from raw file to every output table: time and peak memory of each stage.

Usage: ``python benchmarks/end_to_end.py --wells N [--engine memory|dask] [--partitions P] [--workers W]
[--cluster C]``

Simulates a 384-well screen of about ``N`` wells (two read times, time-zero plates; the number of cell lines is
chosen to reach ``N``), writes it as a Parquet data set (not timed), then, in a fresh process (so that peak RSS is
the run's alone), runs what ``doseatlas run`` runs: read, validate/normalize, fit, metrics, the whole-run steps,
the report and the output tables (the dask engine as ``doseatlas run`` runs it: responses streamed to
Parquet; ``--workers W``: in W worker processes; ``--cluster C``: on a local Dask distributed cluster of C
worker processes, given by address). Each stage's time and peak RSS are printed (the peak of a stage is read from
the kernel's high-water mark, reset at the start of each stage: this process's alone; the dask engine is timed as
one stage ``run``), and the peak of all processes at once (this one and its workers: their summed RSS, sampled
every 50 ms).
The floor: reading the same input and writing a table of its size with pyarrow, in the same process. The last
line is ``wells_per_s=X peak_mb=Y io_ratio=Z`` (``peak_mb``: the largest of the peaks above; ``io_ratio`` = run
time / floor time).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _write_input(root: Path, *, wells: int, files: int, seed: int) -> int:
    from doseatlas.simulate import DatasetConfig, SimulationConfig, simulate

    dataset = DatasetConfig(name="bench", plate_format=384, read_times_h=[72.0, 96.0], time_zero=True)

    def make(cell_lines: int):
        return simulate(
            SimulationConfig(n_cell_lines=cell_lines, n_drugs=60, datasets=[dataset]), seed=seed
        ).wells

    per_line = len(make(2)) / 2
    table = make(max(1, math.ceil(wells / per_line)))
    folder = root / "dataset=bench"
    folder.mkdir(parents=True)
    for i, rows in enumerate(np.array_split(np.arange(len(table)), files)):
        table.iloc[rows].drop(columns=["dataset"]).to_parquet(folder / f"part{i:03d}.parquet")
    return len(table)


class _Stages:
    """Wall time and peak RSS per stage (high-water mark reset through /proc/self/clear_refs)."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, float, float]] = []
        self._name, self._start = None, time.perf_counter()

    @staticmethod
    def _hwm_mb() -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def __call__(self, name: str | None) -> None:
        now = time.perf_counter()
        if self._name is not None:
            self.rows.append((self._name, now - self._start, self._hwm_mb()))
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass
        self._name, self._start = name, now


def _tree_rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` and all its descendants (e.g. Dask worker processes), from /proc."""
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
            for task in Path(f"/proc/{current}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue  # the process ended meanwhile
    return total


class _TreePeak:
    """The largest summed RSS of this process and its children, sampled every ``every`` seconds in a thread
    (the peak of all processes at once, which the per-process high-water marks do not give)."""

    def __init__(self, every: float = 0.05) -> None:
        import os
        import threading

        self.peak_mb, self._every, self._pid = 0.0, every, os.getpid()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.wait(self._every):
            self.peak_mb = max(self.peak_mb, _tree_rss_mb(self._pid))

    def stop(self) -> float:
        self._done.set()
        self._thread.join()
        return self.peak_mb


def _run(args: argparse.Namespace, root: Path) -> dict:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from doseatlas import io, report
    from doseatlas.ingest.partitioned import list_parts, read_part
    from doseatlas.pipeline import run_pipeline
    from doseatlas.scale import run_partitioned

    parts = list_parts([str(root / "in")])
    tree = _TreePeak()
    stages = _Stages()
    start = time.perf_counter()
    if args.engine == "memory":
        stages("read")
        raw = pd.concat([read_part(p) for p in parts], ignore_index=True)
        result = run_pipeline(raw, progress=stages)
        del raw
    else:
        stages("run")
        cluster = None
        if args.cluster:  # a local Dask distributed cluster of worker processes, given to the run by address
            from distributed import LocalCluster

            cluster = LocalCluster(n_workers=args.cluster, threads_per_worker=1, processes=True,
                                   dashboard_address=None)  # fmt: skip
        # as doseatlas run: the responses stay on disk and are written row group by row group
        result = run_partitioned(parts, read=read_part, n_partitions=args.partitions, workers=args.workers,
                                 scheduler=cluster.scheduler_address if cluster else None, stream=True)  # fmt: skip
        if cluster is not None:
            cluster.close()
    meta = io.provenance(inputs=[p.path for p in parts], parameters={"engine": args.engine})
    out = root / "out"
    out.mkdir()
    stages("report")
    report.write_report(result, out / "report.html", meta=meta)
    stages("write")
    io.write_run(result, out, meta=meta)
    stages(None)
    seconds = time.perf_counter() - start
    tree_mb = tree.stop()
    floor_start = time.perf_counter()
    table = pa.concat_tables([pq.read_table(p.path) for p in parts])
    pq.write_table(table, root / "floor.parquet")
    floor = time.perf_counter() - floor_start
    peak = (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    )
    # clear_refs also resets ru_maxrss of this process: the run's peak is the largest stage peak
    peak_mb = max([peak / 1024, tree_mb, *(row[2] for row in stages.rows)])
    return {"seconds": seconds, "floor": floor, "peak_mb": peak_mb, "stages": stages.rows, "tree_mb": tree_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wells", type=int, default=200_000)
    parser.add_argument("--engine", choices=["memory", "dask"], default="memory")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--cluster", type=int, default=0, help="run on a local Dask cluster of N workers")
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_run(args, Path(args.child))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        n = _write_input(Path(tmp) / "in", wells=args.wells, files=args.files, seed=args.seed)
        command = [sys.executable, __file__, *sys.argv[1:], "--child", tmp]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            sys.exit(done.stderr)
        figures = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"wells={n} engine={args.engine}"
        + (
            f" partitions={args.partitions} workers={args.workers} cluster={args.cluster}"
            if args.engine == "dask"
            else ""
        )
    )
    for name, seconds, peak in figures["stages"]:
        print(f"  {name:<12} {seconds:8.2f} s   peak {peak:7.0f} MB")
    print(
        f"  {'total':<12} {figures['seconds']:8.2f} s   floor (pyarrow read+write) {figures['floor']:.2f} s"
    )
    print(f"  all processes at once (run, workers; sampled): peak {figures['tree_mb']:.0f} MB")
    ratio = figures["seconds"] / figures["floor"]
    print(f"wells_per_s={n / figures['seconds']:.0f} peak_mb={figures['peak_mb']:.0f} io_ratio={ratio:.1f}")


if __name__ == "__main__":
    main()
