"""Speed of putting sources together, one function per stage (target: 1,000,000 metric rows in under 10 s).

Usage: ``python benchmarks/harmonize_speed.py [--rows N] [--cell-lines C] [--drugs D] [--seed S]``

Identities: a metrics table of ``--rows`` rows from three data sets that spell the same cell lines and drugs
differently (``A-549`` / ``A549_LUNG`` / ``a549``; ``X mesylate`` / ``X``) goes through
:func:`doseatlas.harmonize.harmonize` (distinct names, resolution, mapping back onto every row). Baseline in the
same run: one pandas left merge of the rows with a table of their distinct names (the bare cost of mapping).
The last line is ``identities_s=<seconds> rows_per_s=<...> ratio_to_merge=<...>``.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from _options import size_options

from doseatlas import schemas as S
from doseatlas.harmonize import harmonize


def metrics_table(rows: int, *, cell_lines: int, drugs: int, seed: int) -> pd.DataFrame:
    """Synthetic metrics rows: three data sets, each with its own spelling of the same names."""
    rng = np.random.default_rng(seed)
    line = rng.integers(0, cell_lines, rows)
    drug = rng.integers(0, drugs, rows)
    dataset = rng.integers(0, 3, rows)
    spell_line = np.array([[f"CL-{i}", f"CL{i}_LUNG", f"cl {i}"] for i in range(cell_lines)], dtype=object)
    spell_drug = np.array(
        [[f"drug{i} mesylate", f"Drug{i}", f"DRUG-{i}"] for i in range(drugs)], dtype=object
    )
    return pd.DataFrame(
        {
            S.DATASET: np.array(["gdsc", "ccle", "lab"], dtype=object)[dataset],
            S.CELL_LINE: spell_line[line, dataset],
            S.PERTURBATION_TYPE: "drug",
            S.PERTURBAGEN: spell_drug[drug, dataset],
            S.METRIC: "ic50",
            S.VALUE: rng.lognormal(size=rows),
        }
    )


def time_identities(metrics: pd.DataFrame) -> tuple[float, pd.DataFrame]:
    """Seconds of the identities stage (names, resolution, mapping onto the rows)."""
    empty = metrics.iloc[:0]
    start = time.perf_counter()
    _, _, harmonized, identities = harmonize(empty, empty, metrics)
    seconds = time.perf_counter() - start
    assert (
        harmonized[S.CELL_LINE].nunique()
        == identities[S.CANONICAL_NAME][identities[S.IDENTITY_KIND] == "cell_line"].nunique()
    )
    return seconds, identities


def time_merge_baseline(metrics: pd.DataFrame) -> float:
    """Seconds of one left merge of the rows with their distinct (dataset, cell line) names."""
    key = [S.DATASET, S.CELL_LINE]
    names = metrics[key].drop_duplicates().assign(canonical=lambda t: t[S.CELL_LINE].str.lower())
    start = time.perf_counter()
    metrics[key].merge(names, on=key, how="left")
    return time.perf_counter() - start


def main() -> None:
    args = size_options(__doc__, rows=1_000_000, cell_lines=1000, drugs=300)
    metrics = metrics_table(args.rows, cell_lines=args.cell_lines, drugs=args.drugs, seed=args.seed)
    seconds, identities = time_identities(metrics)
    merge = time_merge_baseline(metrics)
    kind = identities[S.IDENTITY_KIND]
    print(f"{args.rows:,} metric rows, {len(identities):,} source names -> "
          f"{identities.loc[kind == 'cell_line', S.CANONICAL_NAME].nunique():,} cell lines, "
          f"{identities.loc[kind == 'perturbagen', S.CANONICAL_NAME].nunique():,} drugs")  # fmt: skip
    print(
        f"identities_s={seconds:.2f} rows_per_s={args.rows / seconds:,.0f} ratio_to_merge={seconds / merge:.1f}"
    )


if __name__ == "__main__":
    main()
