"""Speed of the simulator: wells per second (target: at least 100,000 wells/s).

Usage: ``python benchmarks/simulate_speed.py [--cell-lines N] [--drugs M] [--replicates R] [--seed S]``

Times the well table alone (layout, population model, noise, DataFrame) and the whole
:func:`doseatlas.simulate.simulate` (wells + exact truth by brentq), on a 384-well screen read at 72 h and
96 h with time-zero plates. Both are compared in the same run with a baseline: a plain numpy
``exp`` over the same number of wells. The last line is ``wells_per_s=<wells table> total_wells_per_s=<...>``.
"""

from __future__ import annotations

import time

import numpy as np
from _options import size_options

from doseatlas.simulate import DatasetConfig, SimulationConfig, simulate
from doseatlas.simulate.plates import dataset_wells
from doseatlas.simulate.pool import plan_dataset, resolve


def main() -> None:
    args = size_options(__doc__, cell_lines=40, drugs=40, replicates=3)
    dataset = DatasetConfig(
        name="bench", plate_format=384, read_times_h=[72.0, 96.0], time_zero=True, replicates=args.replicates
    )
    config = SimulationConfig(n_cell_lines=args.cell_lines, n_drugs=args.drugs, datasets=[dataset])
    plan = plan_dataset(dataset, resolve(config, seed=args.seed))
    start = time.perf_counter()
    wells = dataset_wells(plan, rng=np.random.default_rng(args.seed))
    t_wells = time.perf_counter() - start
    start = time.perf_counter()
    result = simulate(config, seed=args.seed)
    t_total = time.perf_counter() - start
    start = time.perf_counter()
    np.exp(np.random.default_rng(0).normal(size=len(wells)))
    t_base = time.perf_counter() - start
    n = len(wells)
    print(f"wells={n} curves_in_truth={len(result.truth) // 7}")
    print(
        f"well table: {t_wells:.3f} s; simulate() incl. truth: {t_total:.3f} s; numpy exp baseline: {t_base:.4f} s"
    )
    print(f"ratio well table / baseline = {t_wells / t_base:.0f}")
    print(f"wells_per_s={n / t_wells:.0f} total_wells_per_s={n / t_total:.0f}")


if __name__ == "__main__":
    main()
