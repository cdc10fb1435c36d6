"""Write the bundled example data: ``src/doseatlas/data/example_wells.parquet`` and ``example_truth.parquet``.

Usage: ``python scripts/make_example.py [--seed 0] [--out src/doseatlas/data]``

The tables come from :func:`doseatlas.simulate.simulate` with :func:`doseatlas.simulate.example_config`
(lab_a: 72 h ATP, vehicle only, µM; lab_b: 72 + 96 h resazurin, time-zero plates, strong edge effects, nM;
crispr_ko: knockouts read by nuclei counting). Rerunning with the same seed rewrites identical tables.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from doseatlas.simulate import example_config, simulate

DATA = Path(__file__).resolve().parents[1] / "src" / "doseatlas" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DATA)
    args = parser.parse_args()
    result = simulate(example_config(), seed=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, table in (("example_wells", result.wells), ("example_truth", result.truth)):
        path = args.out / f"{name}.parquet"
        table.to_parquet(path, index=False, compression="zstd")
        print(f"{path}: {len(table)} rows, {path.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
