"""Coverage of the 95 % intervals against simulator truth (issue 14), per metric, fit policy and noise level.

For every concentration metric (and the plateau metrics einf, grinf) whose true and reported status are both
``estimated``: the share of intervals that contain the truth, the mean interval width (log10 units for
concentrations, response units for plateaus) over the closed intervals and the share of open-ended intervals
(an infinite side: a crossing near its plateau, docs/metrics.md). Printed as a markdown table; ``--seeds`` sets
the repeats. Beside it, the status agreement: the share of all curves (any status) whose reported status
(estimated / right_censored / left_censored / refused) equals the truth's.

    PYTHONPATH=src python scripts/interval_coverage.py [--seeds 0 1] [--cvs 0.01 0.02 0.04 0.08]

The simulated set-up is the one of ``doseatlas.simulate.accuracy.scoring_set`` (10 cell lines x 10 drugs, 9 doses,
3 replicates, no seeding or plate-gain noise); ``--n-doses``, ``--replicates``, ``--n-cell-lines``,
``--seeding-cv`` and ``--plate-gain-sd`` change it (``--seeding-cv 0.1 --plate-gain-sd 0.05 --n-cell-lines 12``
is the simulator's default data set). ``--n-doses`` keeps the tested range (10 uM down 4 decades) and spaces
the doses evenly on it (dilution factor ``10^(4 / (n_doses - 1))``) unless ``--dilution-factor`` is given.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd

from doseatlas import schemas as S
from doseatlas.metrics.compute import compute_metrics
from doseatlas.normalize import normalize
from doseatlas.pipeline import FitOptions, fit_all_scales
from doseatlas.simulate.accuracy import join_truth, scoring_set
from doseatlas.validate import validate_wells

CONCENTRATIONS = ("ic50", "gi50", "tgi", "lc50", "gr50")
PLATEAUS = ("einf", "grinf")
NOISE_LEVELS = (0.01, 0.02, 0.04, 0.08)
POLICIES = ("refuse", "shrink")
RANGE_DECADES = 4.0  # the tested range of the default set-up: 9 doses, dilution factor sqrt(10)


def run(wells: pd.DataFrame, policy: str) -> pd.DataFrame:
    """Metrics of one simulated well table under one fit policy (validate -> normalize -> fit -> metrics)."""
    responses = normalize(validate_wells(wells).clean)
    curves = fit_all_scales(responses, options=FitOptions(policy=policy))
    return compute_metrics(responses, curves)


def coverage_rows(metrics: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Per metric: compared intervals, coverage of the truth and mean width (see module docstring)."""
    joined = join_truth(metrics, truth)
    est = S.MetricStatus.ESTIMATED.value
    both = joined[(joined[S.STATUS] == est) & (joined["status_true"] == est)]
    rows = []
    for name in (*CONCENTRATIONS, *PLATEAUS):
        every = joined[joined[S.METRIC] == name]
        block = both[both[S.METRIC] == name]
        lo, hi, truth_value = (block[c].to_numpy(float) for c in (S.LOWER, S.UPPER, "value_true"))
        inside = (lo <= truth_value) & (truth_value <= hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            width = np.log10(hi) - np.log10(lo) if name in CONCENTRATIONS else hi - lo
        rows.append(
            {
                "metric": name,
                "n": len(block),
                "covered": int(inside.sum()),
                "width_sum": float(np.nansum(np.where(np.isfinite(width), width, np.nan))),
                "n_finite_width": int(np.isfinite(width).sum()),
                "n_all": len(every),
                "n_agree": int((every[S.STATUS] == every["status_true"]).sum()),
                "n_open": int((np.isinf(lo) | np.isinf(hi) | ((lo == 0) & (name in CONCENTRATIONS))).sum()),
            }
        )
    return pd.DataFrame(rows)


def coverage_table(
    *, seeds=(0, 1), cvs=NOISE_LEVELS, policies=POLICIES, n_cell_lines: int = 10, **setup
) -> pd.DataFrame:
    """Coverage and mean width per (policy, noise, metric), pooled over ``seeds``; ``setup``: fields of the
    simulated data set (:class:`doseatlas.simulate.DatasetConfig`, e.g. ``n_doses``, ``replicates``)."""
    parts = []
    for cv in cvs:
        for seed in seeds:
            sim, wells = scoring_set(seed=seed, cv=cv, n_cell_lines=n_cell_lines, n_drugs=10, **setup)
            for policy in policies:
                rows = coverage_rows(run(wells, policy), sim.truth)
                parts.append(rows.assign(policy=policy, noise=cv))
    table = pd.concat(parts).groupby(["policy", "noise", "metric"], sort=False).sum(numeric_only=True)
    out = pd.DataFrame(
        {
            "n": table["n"],
            "coverage": table["covered"] / table["n"],
            "mean_width": table["width_sum"] / table["n_finite_width"],
            "open": table["n_open"] / table["n"],
            "status_agreement": table["n_agree"] / table["n_all"],
        }
    )
    return out.reset_index()


def markdown(table: pd.DataFrame) -> str:
    lines = [
        "| policy | noise | metric | n | coverage | mean width | open-ended | status agreement |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in table.itertuples(index=False):
        lines.append(
            f"| {r.policy} | {r.noise:.0%} | {r.metric} | {r.n} | {r.coverage:.3f} | {r.mean_width:.3f} "
            f"| {r.open:.3f} | {r.status_agreement:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--cvs", type=float, nargs="+", default=list(NOISE_LEVELS))
    parser.add_argument("--policies", nargs="+", default=list(POLICIES))
    parser.add_argument("--n-cell-lines", type=int, default=10)
    parser.add_argument("--n-doses", type=int, default=None, help="doses per curve (default 9)")
    parser.add_argument("--dilution-factor", type=float, default=None, help="default: keeps the range")
    parser.add_argument("--replicates", type=int, default=None, help="wells per dose (default 3)")
    parser.add_argument("--seeding-cv", type=float, default=None, help="well seeding CV (default 0)")
    parser.add_argument("--plate-gain-sd", type=float, default=None, help="plate gain SD (default 0)")
    args = parser.parse_args(argv)
    names = ("n_doses", "dilution_factor", "replicates", "seeding_cv", "plate_gain_sd")
    setup = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    if args.n_doses is not None and args.dilution_factor is None and args.n_doses > 1:
        setup["dilution_factor"] = 10.0 ** (RANGE_DECADES / (args.n_doses - 1))
    table = coverage_table(
        seeds=tuple(args.seeds),
        cvs=tuple(args.cvs),
        policies=tuple(args.policies),
        n_cell_lines=args.n_cell_lines,
        **setup,
    )
    print(markdown(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
