"""Regenerate ``docs/validation.md``: doseatlas against simulator truth and against reference tools.

Usage: ``python scripts/validate.py [--out docs/validation.md] [--skip-simulator] [--only consistency]``

Data sets of ``../shared/data/external/`` that are absent are skipped (the page says so). The comparison
helpers here are also used by ``tests/test_agreement_metrics_*.py`` (imported with importlib), so that the
page and the tests measure the same thing the same way.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
from scipy import stats

from doseatlas import schemas as S
from doseatlas.ingest import read_any
from doseatlas.ingest._common import well_names
from doseatlas.metrics import MetricOptions, compute_metrics
from doseatlas.normalize import NormalizationOptions, from_response_table, normalize
from doseatlas.pipeline import FitOptions, RunOptions, fit_all_scales, is_response_table, run_pipeline
from doseatlas.timecourse import DIP_RATE, DIP_SE
from doseatlas.validate import validate_responses, validate_wells

REPO = Path(__file__).resolve().parents[1]
EXTERNAL = REPO.parent / "shared" / "data" / "external"
UM = 1e-6  # the reference tools report concentrations in µM; doseatlas in M
St = S.MetricStatus


# ------------------------------------------------------------------------------ generic comparison helpers
def log10_agreement(ours, theirs) -> dict:
    """n, median and max |Δlog10| and Spearman rho of two positive arrays (pairs with a NaN dropped)."""
    a, b = np.log10(np.asarray(ours, float)), np.log10(np.asarray(theirs, float))
    return _agreement(a, b)


def linear_agreement(ours, theirs) -> dict:
    """n, median and max |Δ| and Spearman rho of two arrays (pairs with a NaN dropped)."""
    return _agreement(np.asarray(ours, float), np.asarray(theirs, float))


def _agreement(a: np.ndarray, b: np.ndarray) -> dict:
    ok = np.isfinite(a) & np.isfinite(b)
    diff = np.abs(a[ok] - b[ok])
    rho = stats.spearmanr(a[ok], b[ok]).statistic if ok.sum() > 2 else np.nan
    return {
        "n": int(ok.sum()),
        "median_abs_diff": float(np.median(diff)) if len(diff) else np.nan,
        "max_abs_diff": float(diff.max()) if len(diff) else np.nan,
        "spearman": float(rho),
    }


def expected_status(value_um, conc_min_um, conc_max_um) -> np.ndarray:
    """Our status for a reference concentration metric: we never extrapolate.

    +Inf or a value above the tested range -> right_censored, -Inf or below it -> left_censored,
    inside -> estimated, NaN -> NaN (not comparable).
    """
    v = np.asarray(value_um, float)
    lo, hi = np.asarray(conc_min_um, float), np.asarray(conc_max_um, float)
    tol = 1e-9  # relative: a reference value at the range bound by rounding counts as inside
    out = np.where(v > hi * (1 + tol), St.RIGHT_CENSORED.value, St.ESTIMATED.value).astype(object)
    out[v < lo * (1 - tol)] = St.LEFT_CENSORED.value
    out[np.isnan(v)] = np.nan
    return out


def run_metrics(raw: pd.DataFrame, *, options: RunOptions) -> SimpleNamespace:
    """The ``validate -> normalize -> fit -> metrics`` steps of :func:`run_pipeline` (responses, curves, metrics).

    The steps are called one by one rather than through ``run_pipeline`` so that the comparison depends only on
    the steps that produce metrics (not on the plate-QC and summary tables a run also builds).
    """
    if is_response_table(raw):
        responses = from_response_table(validate_responses(raw).clean)
    else:
        responses = normalize(validate_wells(raw).clean, options=options.normalization)
    if options.pool_seeding and len(responses):  # as run_pipeline does (RunOptions.pool_seeding)
        responses[S.SEEDING_DENSITY] = np.nan
    curves = fit_all_scales(responses, options=options.fit)
    metrics = compute_metrics(responses, curves, options=options.metrics)
    return SimpleNamespace(responses=responses, curves=curves, metrics=metrics)


def wide_metrics(result, names: tuple[str, ...], *, scale: str) -> pd.DataFrame:
    """One row per curve: ``<metric>`` value, ``<metric>_status``, plus the curve's selection and range."""
    m = result.metrics[result.metrics[S.METRIC].isin(names)]
    key = list(S.CURVE_KEY)
    values = m.pivot_table(index=key, columns=S.METRIC, values=S.VALUE, aggfunc="first", dropna=False)
    status = m.pivot(index=key, columns=S.METRIC, values=S.STATUS).add_suffix("_status")
    curves = result.curves[result.curves[S.SCALE] == scale].set_index(key)
    info = curves[["selected", "f_pvalue", "r2", "rss", "conc_min", "conc_max", "n_points"]]
    return status.join(values).join(info).reset_index()


def status_agreement(ours: pd.Series, expected: pd.Series) -> tuple[float, int]:
    """Share of curves (with an expected status) whose status equals the expected one, and their count."""
    ok = expected.notna()
    return float((ours[ok] == expected[ok]).mean()) if ok.any() else np.nan, int(ok.sum())


# ------------------------------------------------------------------------------ GRmetrics (toy and Heiser)
GR_NAMES = ("gr50", "gec50", "grmax", "gr_aoc", "grinf", "hill_gr")


@dataclass(frozen=True)
class GRSource:
    """One GRmetrics comparison: input file, reference table and their column names."""

    folder: str
    input: str
    reference: str
    cell_line: str = "cell_line"
    agent: str = "agent"
    replicate: str = "replicate"
    time_h: float | None = None
    read_options: dict = field(default_factory=dict)


GR_TOY = GRSource(
    "gr_metrics_toy",
    "input/toy_example_input1.tsv",
    "output/GRmetricsR1.17_input1_{grouping}_GRmetrics.tsv",
)
GR_HEISER = GRSource(
    "grcalculator_heiser2012_taxol",
    "Heiser_al_GRmetrics_wSubType_Taxol.tsv",
    "reference/GRmetricsR1.17_heiser_taxol_{grouping}_GRmetrics.tsv",
    cell_line="CellLine",
    agent="DrugName",
    replicate="BiolReplicate",
    time_h=72.0,
)
GROUPINGS = ("replicatesAveraged", "perReplicate")


def grmetrics_options() -> RunOptions:
    """GRmetrics' conventions: 50%-trimmed-mean controls, F-test with df n - p + 1, GR fit with top 1."""
    return RunOptions(
        normalization=NormalizationOptions(control_summary="trimmed_mean"),
        fit=FitOptions(ftest_df="grmetrics"),
    )


def _with_replicate_in_dataset(raw: pd.DataFrame) -> pd.DataFrame:
    """Per-replicate curves: the replicate joins the curve key through the dataset name.

    Case A puts each replicate's vehicle and time-0 value on its own pseudo-plate, so normalization is
    unchanged; only the fit stops pooling the replicates.
    """
    return raw.assign(**{S.DATASET: raw[S.DATASET] + "|replicate=" + raw[S.REPLICATE].astype(str)})


def grmetrics_compare(source: GRSource, *, grouping: str = "replicatesAveraged") -> pd.DataFrame:
    """Our GR metrics beside GRmetrics 1.17's, one row per reference curve (concentrations in µM)."""
    folder = EXTERNAL / source.folder
    options = {"time_h": source.time_h} if source.time_h else {}
    raw = read_any(folder / source.input, format="grmetrics", **options)
    per_replicate = grouping == "perReplicate"
    result = run_metrics(
        _with_replicate_in_dataset(raw) if per_replicate else raw, options=grmetrics_options()
    )
    ours = wide_metrics(result, GR_NAMES, scale=S.GR)
    ref = pd.read_csv(folder / source.reference.format(grouping=grouping), sep="\t")
    ref = ref.assign(_line=ref[source.cell_line].astype(str), _agent=ref[source.agent].astype(str))
    if "perturbation" in ref:
        perturbed = ref["perturbation"].astype(str) != "0"
        ref["_line"] = ref["_line"].where(
            ~perturbed, ref["_line"] + " [perturbation=" + ref["perturbation"].astype(str) + "]"
        )
    ref["_time"] = ref["time"].astype(float) if "time" in ref else float(source.time_h)
    ref["_dataset"] = Path(source.input).stem
    if per_replicate:
        ref["_dataset"] = ref["_dataset"] + "|replicate=" + ref[source.replicate].astype(str)
    merged = ref.merge(
        ours,
        left_on=["_dataset", "_line", "_agent", "_time"],
        right_on=[S.DATASET, S.CELL_LINE, S.PERTURBAGEN, S.DURATION_H],
        how="left",
        validate="one_to_one",
    )
    return _grmetrics_expected(merged)


def _grmetrics_expected(merged: pd.DataFrame) -> pd.DataFrame:
    """Add the status each reference value implies for us (µM range) and our values in µM."""
    lo, hi = merged["conc_min"] / UM, merged["conc_max"] / UM
    merged["gr50_expected"] = expected_status(merged["GR50"], lo, hi)
    gec50 = merged["GEC50"].where(merged["fit_GR"] != "flat")
    merged["gec50_expected"] = expected_status(gec50, lo, hi)
    merged.loc[merged["fit_GR"] == "flat", "gec50_expected"] = St.REFUSED.value  # reason flat_fit
    merged["gr50_um"] = merged["gr50"] / UM
    merged["gec50_um"] = merged["gec50"] / UM
    return merged


def grmetrics_rows(merged: pd.DataFrame) -> list[dict]:
    """Agreement rows (metric, n, median / max |Δ|, Spearman, status agreement) of a GRmetrics comparison."""
    both = merged["gr50_status"].eq(St.ESTIMATED) & merged["gr50_expected"].eq(St.ESTIMATED)
    both_ec = merged["gec50_status"].eq(St.ESTIMATED) & merged["gec50_expected"].eq(St.ESTIMATED)
    rows = [
        {"metric": "GR50 (log10 µM)", **log10_agreement(merged["gr50_um"][both], merged["GR50"][both])},
        {
            "metric": "GEC50 (log10 µM)",
            **log10_agreement(merged["gec50_um"][both_ec], merged["GEC50"][both_ec]),
        },
        {"metric": "GRmax", **linear_agreement(merged["grmax"], merged["GRmax"])},
        {"metric": "GR_AOC", **linear_agreement(merged["gr_aoc"], merged["GR_AOC"])},
    ]
    sig = merged["fit_GR"] == "sigmoid"
    rows.append(
        {"metric": "GRinf (sigmoid fits)", **linear_agreement(merged["grinf"][sig], merged["GRinf"][sig])}
    )
    rows.append(
        {"metric": "h_GR (sigmoid fits)", **linear_agreement(merged["hill_gr"][sig], merged["h_GR"][sig])}
    )
    flat_calls = (merged["selected"] == "flat") == (merged["fit_GR"] == "flat")
    rows.append(
        {"metric": "flat / sigmoid call", "n": len(merged), "status_agreement": float(flat_calls.mean())}
    )
    for name in ("gr50", "gec50"):
        share, n = status_agreement(merged[f"{name}_status"], merged[f"{name}_expected"])
        rows.append({"metric": f"{name} status (censoring)", "n": n, "status_agreement": share})
    return rows


# ------------------------------------------------------------------------------ PharmacoGx GDSCsmall
# CoreGx .fitCurve / PharmacoGx logLogisticRegression box: HS in [0, 4], E_inf in [0, 100] %,
# log10 EC50 in [-6, 6] log10 µM (= [-12, 0] log10 M)
PHARMACOGX_BOUNDS = {"hill": (0.0, 4.0), "bottom": (0.0, 1.0), "log10_ec50": (-12.0, 0.0)}


def refit_relative_viability(
    result, *, model: str, bounds: dict, options: RunOptions | None = None
) -> SimpleNamespace:
    """The run's relative-viability curves refitted with other parameter bounds, metrics recomputed."""
    from doseatlas.fit import fit_curves

    options = options or RunOptions()
    rv = fit_curves(
        result.responses, scale=S.RELATIVE_VIABILITY, model=model, bounds=bounds, **options.fit.as_kwargs()
    )
    curves = pd.concat([result.curves[result.curves[S.SCALE] != S.RELATIVE_VIABILITY], rv], ignore_index=True)
    metrics = compute_metrics(result.responses, curves, options=options.metrics)
    return SimpleNamespace(responses=result.responses, curves=curves, metrics=metrics)


def pharmacogx_compare(name: str = "GDSCsmall", *, bounds: bool = True) -> pd.DataFrame:
    """Our ic50 / auc per experiment beside PharmacoGx 3.7.5 (``*_notrunc``; µM and percent).

    PharmacoGx fits every experiment (exp_id) on its own, as we do: the reader gives each experiment its own
    ``series`` (the exp_id), so repeated experiments of one cell line and drug are separate curves.
    """
    folder = EXTERNAL / "pharmacogx_small_psets" / name
    raw = read_any(folder / "raw_long.csv", format="pharmacogx")
    result = run_metrics(raw, options=RunOptions(fit=FitOptions(models={S.RELATIVE_VIABILITY: "ll3"})))
    if bounds:
        result = refit_relative_viability(result, model="ll3", bounds=PHARMACOGX_BOUNDS)
    ours = wide_metrics(result, ("ic50", "auc", "ec50", "einf", "hill"), scale=S.RELATIVE_VIABILITY)
    info = pd.read_csv(folder / "sensitivity_info.csv")
    ref = pd.read_csv(folder / "pgx375_recomputed.csv").merge(info, on="exp_id", validate="one_to_one")
    merged = ref.merge(
        ours,
        left_on=["exp_id", "sampleid", "treatmentid", "duration_h"],
        right_on=[S.SERIES, S.CELL_LINE, S.PERTURBAGEN, S.DURATION_H],
        how="left",
        validate="one_to_one",
    )
    merged["ic50_um"] = merged["ic50"] / UM
    merged["aac_ours"] = 1.0 - merged["auc"]
    merged["aac_ref"] = merged["AAC_fitted_notrunc"] / 100.0
    expected = expected_status(merged["IC50_notrunc"], merged["conc_min"] / UM, merged["conc_max"] / UM)
    # PharmacoGx returns NA when the fitted curve never reaches 50 % (E_inf >= 50): not reached = right-censored
    never = merged["IC50_notrunc"].isna() & (merged["E_inf_notrunc"] >= 50)
    merged["ic50_expected"] = np.where(never, St.RIGHT_CENSORED.value, expected)
    return merged


def pharmacogx_rows(merged: pd.DataFrame) -> list[dict]:
    both = merged["ic50_status"].eq(St.ESTIMATED) & merged["ic50_expected"].eq(St.ESTIMATED)
    sig = merged["selected"].eq("sigmoid")
    share, n = status_agreement(merged["ic50_status"], merged["ic50_expected"])
    return [
        {
            "metric": "IC50 (log10 µM), both inside range",
            **log10_agreement(merged["ic50_um"][both], merged["IC50_notrunc"][both]),
        },
        {"metric": "AAC (fraction), all curves", **linear_agreement(merged["aac_ours"], merged["aac_ref"])},
        {
            "metric": "AAC (fraction), our sigmoid fits",
            **linear_agreement(merged["aac_ours"][sig], merged["aac_ref"][sig]),
        },
        {"metric": "ic50 status (censoring)", "n": n, "status_agreement": share},
    ]


# ------------------------------------------------------------------------------ thunor HTS007
# thunor's LL.3u keeps Einf >= 0 (its reference has Einf exactly 0 on 60 curves); other bounds ours
THUNOR_BOUNDS = {"bottom": (0.0, np.inf)}


def thunor_compare(*, bounds: bool = True) -> pd.DataFrame:
    """Our ic50 / ec50 / auc / hill / einf at 72 h beside thunor 1.0.3 HillCurveLL3u (``ref_*``, M)."""
    folder = EXTERNAL / "thunor_hts007"
    raw = read_any(folder / "data" / "hts007_wells_treated.csv", format="thunor-hts", time_h=72)
    # the reader records each plate's actual read time (68.3-72.9 h); thunor pools a line x drug over its
    # plates (A/B, read 0.1 h apart): give every read used the nominal 72 h so the curve is pooled the same way
    # (the reads at other times stay at their own time, in the ledger as read_time_not_selected)
    raw.loc[~raw[S.ROLE].isin(S.LEDGER_ROLES), S.TIME_H] = "72"
    options = RunOptions(
        normalization=NormalizationOptions(control_summary="mean"),  # thunor: mean of the plate's controls
        fit=FitOptions(models={S.RELATIVE_VIABILITY: "ll3"}),  # LL.3u: top fixed at 1
    )
    result = run_metrics(raw, options=options)
    if bounds:
        result = refit_relative_viability(result, model="ll3", bounds=THUNOR_BOUNDS)
    ours = wide_metrics(result, ("ic50", "ec50", "auc", "hill", "einf", "emax"), scale=S.RELATIVE_VIABILITY)
    ref = pd.read_csv(folder / "reference" / "thunor_fit_params_viability72h_LL3u.csv")
    ref = ref.rename(columns={c: f"ref_{c}" for c in ref.columns if c not in ("cell_line", "drug")})
    merged = ref.merge(
        ours,
        left_on=["cell_line", "drug"],
        right_on=[S.CELL_LINE, S.PERTURBAGEN],
        how="left",
        validate="one_to_one",
    )
    return merged


# ------------------------------------------------------------------------------ consistency: GDSCsmall vs CCLEsmall
CONSISTENCY_SETS = ("GDSCsmall", "CCLEsmall")


def simple_name(names: pd.Series) -> pd.Series:
    """Upper case, letters and digits only ("22Rv1" and "22RV1", "PD-0325901" and "PD0325901" match).

    A stand-in for the identities step in this comparison only: conservative enough for these two PharmacoSets
    (the shared names were checked by eye), not a general rule.
    """
    return names.astype(str).str.upper().str.replace(r"[^A-Z0-9]", "", regex=True)


def pharmacogx_consistency() -> SimpleNamespace:
    """GDSCsmall and CCLEsmall in one run (default options), names matched by :func:`simple_name`.

    Only the cell lines and drugs both measured are fitted (the shared pairs are among them; nothing else can
    be shared). Returns the metrics (with ``auc_common``), the curves, the published values and the
    consistency table (published and harmonized stages).
    """
    from doseatlas.harmonize.consistency import consistency_table
    from doseatlas.ingest.pharmacogx import read_published
    from doseatlas.pipeline import consistency_step

    folder = EXTERNAL / "pharmacogx_small_psets"
    raws, published = [], []
    for name in CONSISTENCY_SETS:
        raw = read_any(folder / name / "raw_long.csv", format="pharmacogx")
        pub = read_published(folder / name / "profiles.csv")
        for table in (raw, pub):
            table[S.CELL_LINE] = simple_name(table[S.CELL_LINE])
            table[S.PERTURBAGEN] = simple_name(table[S.PERTURBAGEN])
        raws.append(raw)
        published.append(pub)
    lines = set(raws[0][S.CELL_LINE]) & set(raws[1][S.CELL_LINE])
    drugs = set(raws[0][S.PERTURBAGEN]) & set(raws[1][S.PERTURBAGEN])
    raw = pd.concat(
        [r[r[S.CELL_LINE].isin(lines) & r[S.PERTURBAGEN].isin(drugs)] for r in raws], ignore_index=True
    )
    result = run_metrics(raw, options=RunOptions())
    metrics, _ = consistency_step(result.metrics, result.curves)
    published = pd.concat(published, ignore_index=True)
    table = consistency_table(metrics, published=published)
    return SimpleNamespace(metrics=metrics, curves=result.curves, published=published, consistency=table)


CONSISTENCY_METRICS = ("ic50", "auc", "auc_common", "ec50", "einf", "emax")
CONSISTENCY_NOTE = """GDSC1 (CGP, Garnett et al. 2012) and CCLE (Barretina et al. 2012) as PharmacoGx ships them
(`GDSCsmall`: 9 cell lines x 139 drugs; `CCLEsmall`: 504 x 24; both 72 h). Names were matched by upper case with
punctuation removed (a stand-in for the identities step: `22Rv1` = `22RV1`, `PD-0325901` = `PD0325901`):
**7 cell lines x 15 drugs, 62 shared (cell line, drug) pairs**. The run uses doseatlas' defaults (ll4, F-test,
refusal policy) on each source's per-dose viabilities. `published`: each consortium's own IC50 and AUC from
`profiles.csv`, as released (no censoring: GDSC's IC50s are extrapolated up to 65,000 µM, CCLE's are capped at 8
µM; both "AUC"s are activity areas, larger = more sensitive: GDSC's on its own x-scale, CCLE's `ActArea / 8`).
`harmonized`: doseatlas' metrics, one definition for both; `auc_common` over the window both tested. Columns as
above, plus `n_values` (pairs with a value in both; a censored or refused metric has none) and Pearson on the same
(log10) values. The published values carry no status (a value is published for every pair), so their
status agreement is 1 by construction.

Reading the numbers:

- **The ranges differ.** GDSC tested 9 doses up to a top dose chosen per drug (here from 0.1 µM for paclitaxel to
  10 µM for PLX4720, median 2 µM), CCLE 8 doses from 2.5 nM to 8 µM for every drug. The common window of a pair is
  therefore mostly GDSC's range (median 7.8 nM to 2 µM). Plain `auc` over each source's own range compares areas
  over different windows (Spearman 0.53, median |difference| 0.105); over the common window the difference shrinks
  (0.092) but the rank correlation does not improve (0.52): the ranges are not what makes these two screens
  disagree.
- **IC50 is mostly not reached.** Only 11 of the 62 pairs have an IC50 inside the tested range in both screens
  (Spearman 0.79 on those); 34 are right-censored in both. The published IC50s hide this: GDSC extrapolates the
  fitted curve beyond the top dose and CCLE caps at 8 µM, so the published IC50s of non-responders are numbers of
  two different conventions, and their Spearman over all 62 pairs (0.52, median |Δlog10| 0.73) mixes them. With
  censoring kept, the statuses agree on 73 % of the pairs. Of the 17 that disagree, 9 reach 50 % inside CCLE's
  range but not inside GDSC's, and in all 9 GDSC's top dose is the lower one (the range, not the cells); 6 reach
  it in GDSC only (4 of them with the lower GDSC top dose: CCLE's cells respond less); 2 are already below 50 % at
  CCLE's lowest dose.
- **The assays differ.** GDSC1 measured viability with Syto60 (a nucleic-acid stain of fixed cells; resazurin for
  suspension lines), CCLE with CellTiter-Glo (ATP), in different laboratories, plates and protocols (Garnett et al.
  2012; Barretina et al. 2012). The median difference in `auc_common` (CCLE - GDSC) per drug goes from -0.26
  (PHA-665752) to +0.22 (PD-0332991): drug-specific shifts, not one offset. This is the disagreement
  Haibe-Kains et al. (Nature 504:389, 2013) reported on the full screens; with 7 cell lines per drug here,
  per-drug correlations would be too noisy, so the table pools the 62 pairs (drug and cell-line effects
  together).
- **What doseatlas adds.** The harmonized rows compare like with like (one curve model, one AUC definition, one
  window) and keep censoring as a status instead of a number, so what remains is the biology and the assays. They
  do not make the screens agree, and nothing here should be averaged away.
"""


def consistency_section() -> str:
    """Section 4 of the page: GDSCsmall vs CCLEsmall before and after harmonization."""
    out = ["## 4. Consistency across sources: GDSCsmall vs CCLEsmall\n"]
    if not (EXTERNAL / "pharmacogx_small_psets").is_dir():
        return out[0] + "\nSkipped: `pharmacogx_small_psets` not found under ../shared/data/external/.\n"
    table = pharmacogx_consistency().consistency
    rows = table[table[S.METRIC].isin(CONSISTENCY_METRICS)].to_dict("records")
    columns = [S.STAGE, S.METRIC, S.TRANSFORM, S.N_SHARED_PAIRS, S.N_SHARED, S.N_VALUES, S.SPEARMAN, S.PEARSON,
               S.MEDIAN_ABS_DIFF, S.STATUS_AGREEMENT]  # fmt: skip
    out.append(markdown_table(rows, columns) + "\n")
    out.append(CONSISTENCY_NOTE)
    return "\n".join(out)


def replace_consistency_section(page: str) -> str:
    """``page`` with section 4 regenerated (the rest untouched): ``--only consistency``."""
    return replace_section(page, "## 4. Consistency across sources", consistency_section())


# ------------------------------------------------------------------------------ interval coverage
COVERAGE_HEADING = "## 5. Interval coverage"
COVERAGE_NOTE = """Share of the 95 % intervals that contain the simulator's exact truth, where both the truth and our
value are `estimated` (`n`); their mean width over the closed intervals (log10 units for concentrations, response
units for the plateaus einf and grinf; a mean, so a few curves whose plateau lies near the level weigh in: ic50
at 8 %, refuse; lc50); the share of open-ended intervals (a crossing near its plateau that no dose mean reaches:
`upper` = inf; at most 0.3 % here, 4 of 59 estimated ic50 on GDSCsmall/CCLEsmall); and the status agreement over
all curves (any status). `scripts/interval_coverage.py --seeds 0 1 2 3 4 5`, the set-up of section 1 (10 cell
lines x 10 drugs, 72 h with time zero, no seeding or plate-gain noise) at 1, 2, 4 and 8 % multiplicative noise,
six seeds, both fit policies: n = 292-582 per cell (binomial standard error about 0.009 at 0.95 and n = 550,
0.013 at n = 290). The intervals carry the plate controls (vehicle and time-zero summaries shared by every curve
of a plate; delta method), a noise model fitted to each curve's replicate wells (multiplicative and additive
noise, so a crossing near the lower plateau is not widened by the noise of the top doses) and the model misfit
where the metric lies (docs/fitting.md "Noise model and model misfit"); a time-zero summary pooled over a cell
line's time-zero plates counts once (not once per treated plate), and one read on other plates carries the plates'
gain variance. A crossing reads the misfit of the doses about it on the dose axis (a Gaussian kernel of one dose
spacing), a dose steeper than the curve at the crossing moving it along the dose axis; curves with one well per
dose read a noise model pooled over their data set, perturbagen, readout and duration. Target of issue 14:
93-97 %. Inside it: 43 of 56 cells; none below it. Above it: lc50 at 0.969-0.986 in 7 cells (all but shrink 8 %;
its crossings within the lowest fifth of the transition cover 0.98-0.99 under every kernel tried, the per-curve
misfit estimated from 3-4 doses being very uneven between curves; docs/fitting.md), gi50 at 0.972-0.977 (1 % both
policies, shrink 2 %), gr50 at 0.971 (shrink 1 %), einf at 0.971-0.972 (refuse 1 %, shrink 8 %). The previous
kernel (in share of the transition) had 46 inside but tgi below the band (0.923, 0.929: the four-parameter
curve's bias at GR = 0, now seen by the misfit where tgi lies: 0.940-0.967). The same fits with the first
intervals (one pooled s^2 times a lack-of-fit factor) had 24 of 56 cells outside: lc50 0.986-1.000 and einf
0.981-0.993 in every cell. einf and grinf are estimated only where the data reach the plateau (docs/fitting.md), so their status agreement with the truth (always a value at infinite dose) is
0.80-0.89: the rest are censored (einf) or refused plateau_not_reached (grinf), never an extrapolation. Asserted
by tests/test_uncertainty.py.
"""


def coverage_section(*, seeds: tuple[int, ...] = (0, 1, 2, 3, 4, 5)) -> str:
    """Section 5 of the page: coverage and mean width of the intervals on simulator truth."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "interval_coverage", REPO / "scripts" / "interval_coverage.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    table = module.coverage_table(seeds=seeds)
    return f"{COVERAGE_HEADING} of the 95 % intervals (simulator truth)\n\n{module.markdown(table)}\n\n{COVERAGE_NOTE}"


# ------------------------------------------------------------------------------ DIP rates (time courses)
DIP_NOTE = """\
The user's path: the `thunor-hts` reader with `time_h = "all"` (every read of the time course), one run; the
per-well DIP rate is the slope of log2 cell count after thunor's first time point (`tyson1`), in doublings per
hour; asserted by tests/test_agreement_dip.py. **Differences of policy in the LL.4 fits:** thunor weights each well
by 1/SE² and leaves the parameters unbounded (its EC50 reaches 1e15 M and its Einf -56 on curves that never level
off), doseatlas fits unweighted within bounds and selects flat or sigmoid by the F-test: EC50 is compared where
thunor's lies inside the tested range, the top relative to the mean control rate (thunor's `d` over that mean).
docs/time.md explains the rule for the first time point and the DIP curves.
"""


def dip_compare() -> SimpleNamespace:
    """Per-well DIP rates and the DIP LL.4 fits of one HTS007 run beside thunor 1.0.3's."""
    folder = EXTERNAL / "thunor_hts007"
    raw = read_any(folder / "data" / "hts007_wells_treated.csv", format="thunor-hts", time_h="all")
    result = run_pipeline(raw)
    rates = {}
    for kind, role in (("treated", "treated"), ("controls", "vehicle")):
        ref = pd.read_csv(folder / "reference" / f"thunor_dip_rates_{kind}.csv")
        if "well_num" not in ref:  # the controls' reference names wells by id: their number is in the data
            ctrl = pd.read_csv(folder / "data" / "hts007_controls.csv", usecols=["well_id", "well_num"])
            ref = ref.merge(ctrl.drop_duplicates("well_id"), on="well_id", how="left")
        ref[S.WELL] = well_names(ref["well_num"].to_numpy(), n_columns=24)
        ref[S.PLATE] = ref[S.PLATE].astype(str)
        ours = result.dip[result.dip[S.ROLE] == role]
        rates[kind] = (ref, ref.merge(ours, on=[S.PLATE, S.WELL], suffixes=("_ref", "")))
    ref = pd.read_csv(folder / "reference" / "thunor_fit_params_dip_LL4.csv")
    ref[["b", "c", "d", "e"]] = ref["popt"].str.split(";", expand=True).astype(float)
    curves = result.curves[result.curves[S.SCALE] == S.DIP_RELATIVE]
    control = result.dip[result.dip[S.ROLE] == "vehicle"].groupby(S.CELL_LINE)[DIP_RATE].mean()
    fits = ref.merge(curves, left_on=["cell_line", "drug"], right_on=[S.CELL_LINE, S.PERTURBAGEN])
    fits["ref_top"] = fits["d"] / fits[S.CELL_LINE].map(control)
    return SimpleNamespace(rates=rates, fits=fits, n_curves=len(curves))


def dip_rows(compared: SimpleNamespace) -> list[dict]:
    rows = []
    for kind, (ref, both) in compared.rates.items():
        rate = np.abs(both[DIP_RATE] - both["dip_rate_ref"])
        se = np.abs(both[DIP_SE] / both["dip_fit_std_err"] - 1)
        rows.append({"quantity": f"DIP rate, {kind} wells (doublings/h)", "n": f"{len(both)} of {len(ref)}",
                     "median_abs_diff": float(np.median(rate)), "max_abs_diff": float(rate.max())})  # fmt: skip
        rows.append({"quantity": f"DIP rate standard error, {kind} wells (relative)", "n": f"{len(both)} of {len(ref)}",
                     "median_abs_diff": float(np.median(se)), "max_abs_diff": float(se.max())})  # fmt: skip
    fits = compared.fits
    both = fits[(fits["fit_model"] == "HillCurveLL4") & (fits["selected"] == "sigmoid")]
    inside = both[(both["e"] >= 10 * both["min_dose_measured"]) & (both["e"] <= both["max_dose_measured"])]
    ec50 = np.abs(inside["log10_ec50"] - np.log10(inside["e"]))
    top = np.abs(inside["top"] - inside["ref_top"])
    n_ll4 = int((fits["fit_model"] == "HillCurveLL4").sum())
    rows.append({"quantity": "curves: LL.4 by thunor / sigmoid by doseatlas / both",
                 "n": f"{n_ll4} / {int((fits['selected'] == 'sigmoid').sum())} / {len(both)} of {compared.n_curves}",
                 "median_abs_diff": None, "max_abs_diff": None})  # fmt: skip
    rows.append({"quantity": "log10 EC50, both sigmoid, thunor's inside the range", "n": str(len(inside)),
                 "median_abs_diff": float(np.median(ec50)), "max_abs_diff": float(ec50.max())})  # fmt: skip
    rows.append({"quantity": "top (DIP rate relative to control), same curves", "n": str(len(inside)),
                 "median_abs_diff": float(np.median(top)), "max_abs_diff": float(top.max())})  # fmt: skip
    return rows


DIP_TITLE = "## 6. Time courses: DIP rates"


def dip_section() -> str:
    """Section 6 of the page: DIP rates and DIP fits against thunor on HTS007."""
    out = [f"{DIP_TITLE} against thunor 1.0.3 on HTS007\n"]
    if not (EXTERNAL / "thunor_hts007").is_dir():
        return out[0] + "\nSkipped: `thunor_hts007` not found under ../shared/data/external/.\n"
    out.append(
        markdown_table(dip_rows(dip_compare()), ["quantity", "n", "median_abs_diff", "max_abs_diff"]) + "\n"
    )
    out.append(DIP_NOTE)
    return "\n".join(out)


def replace_section(page: str, title: str, section: str) -> str:
    """``page`` with the section starting at ``title`` replaced by ``section`` (appended when absent)."""
    head, _, rest = page.partition(title)
    tail = rest.split("\n## ", 1)[1] if "\n## " in rest else None
    body = head.rstrip("\n") + "\n\n" + section
    return body + ("\n## " + tail if tail is not None else "")


# ------------------------------------------------------------------------------ page
def thunor_rows(merged: pd.DataFrame) -> list[dict]:
    """thunor: ic50 where both estimate it inside the range (thunor caps a not-reached ic50 at the top dose)."""
    capped = np.isclose(merged["ref_ic50"], merged["ref_max_dose_measured"])
    est = merged["ic50_status"].eq(St.ESTIMATED) & ~capped & merged["ref_ic50"].notna()
    sig = merged["selected"].eq("sigmoid") & merged["ref_fit_model"].eq("HillCurveLL3u")
    width = np.log10(merged["ref_max_dose_measured"] / merged["ref_min_dose_measured"])
    called = merged["ref_fit_model"].notna() & merged["selected"].notna()
    return [
        {
            "metric": "IC50 (log10 M), both inside range",
            **log10_agreement(merged["ic50"][est], merged["ref_ic50"][est]),
        },
        {
            "metric": "EC50 (log10 M), both sigmoid",
            **log10_agreement(merged["ec50"][sig], merged["ref_ec50"][sig]),
        },
        {
            "metric": "activity area / log10 range vs 1 - auc",
            **linear_agreement((1 - merged["auc"])[sig], (merged["ref_aa"] / width)[sig]),
        },
        {"metric": "Einf, both sigmoid", **linear_agreement(merged["einf"][sig], merged["ref_einf"][sig])},
        {"metric": "hill, both sigmoid", **linear_agreement(merged["hill"][sig], merged["ref_hill"][sig])},
        {
            "metric": "sigmoid fitted by both / by thunor",
            "n": int(called.sum()),
            "status_agreement": float(sig.sum() / merged["ref_fit_model"].eq("HillCurveLL3u").sum()),
        },
    ]


# ------------------------------------------------------------------------------ gDR (gDRtestData)
GDR_SETS = ("synthetic_small_no_noise", "prism_gdc8025")
GDR_SCALES = {"RV": S.RELATIVE_VIABILITY, "GR": S.GR}
# our metric names per gDR normalization type: xc50, ec50, x_inf, hill, observed x_max, area
GDR_NAMES = {
    "RV": ("ic50", "ec50", "einf", "hill", "emax", "auc"),
    "GR": ("gr50", "gec50", "grinf", "hill_gr", "grmax", "gr_aoc"),
}
GDR_FLAT = "DRCConstantFitResult"
GDR_TOO_FEW = "DRCTooFewPointsToFit"


def gdr_options(doubling_times: dict | None) -> RunOptions:
    """gDR's conventions: mean controls, GR by division time without Day0, F-test df n - p + 1, RV top 1.

    gDR has no R² gate: ``min_r2=0`` keeps every sigmoid fit (ours refuses R² < 0.5 as ``poor_fit``).
    """
    return RunOptions(
        normalization=NormalizationOptions(control_summary="mean", doubling_times=doubling_times or None),
        fit=FitOptions(ftest_df="grmetrics", models={S.RELATIVE_VIABILITY: "ll3"}),
        metrics=MetricOptions(min_r2=0.0),
    )


#: gDR's LL.3u box for relative viability (gDRutils ``logisticFit``): hill <= 5, 0 <= x_inf <= 1 and
#: ec50 <= 10 x the top dose (10 µM in both sets: log10 M -4); our defaults are hill <= 10, a bottom within
#: 0.5 of the observed responses and ec50 within 2 log10 of the tested range
GDR_RV_BOUNDS = {"hill": (0.0, 5.0), "bottom": (0.0, 1.0), "log10_ec50": (-12.0, -4.0)}


def gdr_run(name: str, *, bounds: bool = True) -> SimpleNamespace:
    """Our run on one gDRtestData set (``synthetic_small_no_noise`` or ``prism_gdc8025``), RV refitted in gDR's box."""
    table = read_any(EXTERNAL / "gdrtestdata" / name / "RawTreated.csv", format="gdr")
    options = gdr_options(table.attrs.get("doubling_times"))
    result = run_metrics(table, options=options)
    if not bounds:
        return result
    return refit_relative_viability(result, model="ll3", bounds=GDR_RV_BOUNDS, options=options)


def gdr_reference(name: str) -> pd.DataFrame:
    """gDR ``Metrics.csv`` (columns prefixed ``gdr_``) keyed as our curves (cell line name, drug name, duration in hours)."""
    folder = EXTERNAL / "gdrtestdata" / name
    drugs = pd.read_csv(folder / "rowData_drug.csv")[["row_id", "DrugName", "Duration"]]
    lines = pd.read_csv(folder / "colData_celllines.csv")[["col_id", "CellLineName"]]
    ref = pd.read_csv(folder / "Metrics.csv")
    ref = ref.rename(columns={c: f"gdr_{c}" for c in ref.columns if c not in ("row_id", "col_id")})
    ref = ref.merge(drugs, on="row_id").merge(lines, on="col_id")
    return ref.assign(_dataset=name, _duration=ref["Duration"].astype(float))


def _gdr_xmax(result, scale: str) -> pd.DataFrame:
    """gDR's x_max from our replicate means: min of the means at the two highest concentrations."""
    from doseatlas.metrics.compute import dose_means

    means = dose_means(result.responses, scale).sort_values([*S.CURVE_KEY, S.CONCENTRATION], kind="stable")
    top2 = means.groupby(list(S.CURVE_KEY), dropna=False, sort=False).tail(2)
    return top2.groupby(list(S.CURVE_KEY), dropna=False)[scale].min().rename("xmax_gdr_def").reset_index()


def _fitted_aoc(curves: pd.DataFrame) -> pd.Series:
    """1 - mean of the fitted curve over the tested log10 range (the flat value for flat fits), as gDR's x_AOC."""
    from doseatlas.metrics.compute import sigmoid_area

    lo, hi = np.log10(curves["conc_min"].to_numpy(float)), np.log10(curves["conc_max"].to_numpy(float))
    p = [curves[k].to_numpy(float) for k in ("top", "bottom", "log10_ec50", "hill")]
    flat = curves["selected"].eq("flat").to_numpy()
    return pd.Series(1.0 - np.where(flat, curves["flat_value"].to_numpy(float), sigmoid_area(lo, hi, *p)))


def gdr_compare(name: str, kind: str = "RV", *, result=None) -> pd.DataFrame:
    """Our metrics beside gDR's ``Metrics.csv`` (one normalization type), one row per gDR curve (µM)."""
    scale = GDR_SCALES[kind]
    result = result or gdr_run(name)
    ours = wide_metrics(result, GDR_NAMES[kind], scale=scale)
    curves = result.curves[result.curves[S.SCALE] == scale].reset_index(drop=True)
    aoc = curves[list(S.CURVE_KEY)].assign(aoc_fitted=_fitted_aoc(curves))
    ours = ours.merge(aoc, on=list(S.CURVE_KEY), how="left").merge(
        _gdr_xmax(result, scale), on=list(S.CURVE_KEY), how="left"
    )
    ref = gdr_reference(name)
    ref = ref[ref["gdr_normalization_type"] == kind]
    merged = ref.merge(
        ours,
        left_on=["_dataset", "CellLineName", "DrugName", "_duration"],
        right_on=[S.DATASET, S.CELL_LINE, S.PERTURBAGEN, S.DURATION_H],
        how="left",
        validate="one_to_one",
    )
    xc50, ec50 = GDR_NAMES[kind][:2]
    merged["xc50_um"], merged["ec50_um"] = merged[xc50] / UM, merged[ec50] / UM
    merged["xc50_status"] = merged[f"{xc50}_status"]
    merged["xc50_expected"] = expected_status(
        merged["gdr_xc50"], merged["conc_min"] / UM, merged["conc_max"] / UM
    )
    merged.loc[merged["gdr_fit_type"].eq(GDR_TOO_FEW), "xc50_expected"] = np.nan
    return merged


def gdr_rows(merged: pd.DataFrame, kind: str = "RV") -> list[dict]:
    """Agreement rows of a gDR comparison (concentrations in log10 µM)."""
    _, _, inf, hill, emax, area = GDR_NAMES[kind]
    label = {"RV": ("IC50", "Einf", "1 - auc", "emax (top dose)"), "GR": ("GR50", "GRinf", "gr_aoc", "grmax")}
    x50, inf_label, area_label, max_label = label[kind]
    fitted = merged["gdr_fit_type"].ne(GDR_TOO_FEW) & merged["selected"].notna()
    both = merged["xc50_status"].eq(St.ESTIMATED) & merged["xc50_expected"].eq(St.ESTIMATED)
    sig = merged["selected"].eq("sigmoid") & merged["gdr_fit_type"].str.startswith("DRC3pHill")
    ours_area = 1.0 - merged[area] if kind == "RV" else merged[area]
    flat_call = merged["selected"].eq("flat") == merged["gdr_fit_type"].eq(GDR_FLAT)
    # below ~1e-10 a p-value only measures how close to zero a noise-free RSS came
    usable_p = merged["f_pvalue"].gt(1e-10) & merged["gdr_p_value"].gt(1e-10)
    share, n = status_agreement(merged["xc50_status"], merged["xc50_expected"])
    rows = [
        {
            "metric": f"{x50} (log10 µM), both inside range",
            **log10_agreement(merged["xc50_um"][both], merged["gdr_xc50"][both]),
        },
        {
            "metric": "EC50 (log10 µM), both sigmoid",
            **log10_agreement(merged["ec50_um"][sig], merged["gdr_ec50"][sig]),
        },
        {
            "metric": f"x_inf vs {inf_label}",
            **linear_agreement(merged[inf][fitted], merged["gdr_x_inf"][fitted]),
        },
        {"metric": "h, both sigmoid", **linear_agreement(merged[hill][sig], merged["gdr_h"][sig])},
        {
            "metric": "F-test p-value (log10), both sigmoid, both p > 1e-10",
            **log10_agreement(merged["f_pvalue"][sig & usable_p], merged["gdr_p_value"][sig & usable_p]),
        },
        {
            "metric": "x_AOC vs fitted area over the curve",
            **linear_agreement(merged["aoc_fitted"][fitted], merged["gdr_x_AOC"][fitted]),
        },
        {
            "metric": f"x_AOC vs {area_label}",
            **linear_agreement(ours_area[fitted], merged["gdr_x_AOC"][fitted]),
        },
        {
            "metric": "x_max vs min of two top-dose means",
            **linear_agreement(merged["xmax_gdr_def"][fitted], merged["gdr_x_max"][fitted]),
        },
    ]
    if kind == "RV":
        rows.append(
            {
                "metric": f"x_max vs {max_label}",
                **linear_agreement(merged[emax][fitted], merged["gdr_x_max"][fitted]),
            }
        )
    rows.append(
        {
            "metric": "flat / sigmoid call",
            "n": int(fitted.sum()),
            "status_agreement": float(flat_call[fitted].mean()),
        }
    )
    rows.append({"metric": f"{x50} status (censoring, ±Inf)", "n": n, "status_agreement": share})
    differ = (
        fitted
        & merged["gdr_fit_type"].eq(GDR_FLAT)
        & merged["selected"].eq("sigmoid")
        & merged["gdr_rss"].notna()
    )
    if differ.any():  # gDR keeps the sigmoid's RSS in Metrics.csv when it reports the flat model
        lower = merged["rss"][differ] <= merged["gdr_rss"][differ]
        rows.append(
            {
                "metric": "gDR flat, ours sigmoid: our sigmoid RSS <= gDR's",
                "n": int(differ.sum()),
                "status_agreement": float(lower.mean()),
            }
        )
    return rows


# ------------------------------------------------------------------------------ GDSC (gdscIC50 NLME)
GDSC_FOLDER = "gdsc_example_gdscIC50"
#: the vignette's 50-cell-line x 3-drug NLME subset (a small, fast fixture)
GDSC_SUBSET_DRUGS = ("1003_0.1", "1032_2", "1060_0.25")
GDSC_FITS = {
    ("ll4", "refuse"): "our default: ll4 on untrimmed RV, F-test, refusal policy",
    ("ll2", "refuse"): "ll2 (GDSC's curve family: 1 -> 0), refusal policy",
    ("ll2", "shrink"): "ll2 with the shrink policy (a value for every curve, pooled across cell lines)",
}


def gdsc_reference(*, subset: bool = False) -> pd.DataFrame:
    """gdscIC50's NLME per-curve results (full fit, or the 50-cell-line subset fit)."""
    name = "subset50cl_3drugs_nlme_per_curve.csv" if subset else "gdscIC50_nlme_per_curve.csv"
    ref = pd.read_csv(EXTERNAL / GDSC_FOLDER / "reference" / name)
    # a GDSC curve is a drug at one top concentration (drug 1510 has two): our series max_conc_uM=<maxc>
    series = "max_conc_uM=" + ref["maxc"].map(lambda v: f"{v:g}")
    return ref.assign(_drug=ref["DRUG_ID_lib"].astype(str), _series=series.to_numpy())


def gdsc_run(*, subset: bool = False, model: str = "ll4", policy: str = "refuse") -> SimpleNamespace:
    """Our run on the GDSC raw plates (the subset's cell lines and drugs only when ``subset``)."""
    path = EXTERNAL / GDSC_FOLDER / "gdsc_example_raw.parquet"
    if subset:
        raw = pd.read_parquet(path)
        path = _parquet_subset(raw[raw["COSMIC_ID"].isin(gdsc_reference(subset=True)["COSMIC_ID"].unique())])
    table = read_any(path, format="gdsc-raw")
    fit = FitOptions(models={S.RELATIVE_VIABILITY: model} if model != "ll4" else {}, policy=policy)
    # GDSC's own fits pool the seeding densities of a curve (its plates were seeded at several)
    return run_metrics(table, options=RunOptions(fit=fit, pool_seeding=True))


def gdsc_compare(
    *, subset: bool = False, model: str = "ll4", policy: str = "refuse", result=None
) -> pd.DataFrame:
    """Our ic50 / auc per curve beside gdscIC50's NLME IC50 (ln µM) and AUC, one row per GDSC curve."""
    result = result or gdsc_run(subset=subset, model=model, policy=policy)
    ours = wide_metrics(result, ("ic50", "auc"), scale=S.RELATIVE_VIABILITY)
    ref = gdsc_reference(subset=subset)
    merged = ref.merge(
        ours,
        left_on=["CELL_LINE_NAME", "_drug", "_series"],
        right_on=[S.CELL_LINE, S.PERTURBAGEN, S.SERIES],
        how="left",
        validate="one_to_one",
    )
    merged["ic50_ln_um"] = np.log(merged["ic50"] / UM)
    merged["ic50_expected"] = expected_status(
        merged["IC50_uM"], merged["conc_min"] / UM, merged["conc_max"] / UM
    )
    return merged


def gdsc_rows(merged: pd.DataFrame) -> list[dict]:
    """Agreement rows of a GDSC comparison (IC50 in ln µM, GDSC's published unit)."""
    both = merged["ic50_status"].eq(St.ESTIMATED) & merged["ic50_expected"].eq(St.ESTIMATED)
    share, n = status_agreement(merged["ic50_status"], merged["ic50_expected"])
    return [
        {
            "metric": "IC50 (ln µM), both inside range",
            **linear_agreement(merged["ic50_ln_um"][both], merged["IC50_ln_uM"][both]),
        },
        {"metric": "AUC (fraction of the tested range)", **linear_agreement(merged["auc"], merged["AUC"])},
        {"metric": "ic50 status (GDSC value beyond the range = censored)", "n": n, "status_agreement": share},
    ]


# ------------------------------------------------------------------------------ simulator truth
SIMULATED_RUNS = (
    (1, "atp"),
    (2, "atp"),
    (3, "atp"),
    (4, "nuclei_count"),
    (5, "resazurin"),
    (6, "srb"),
    (7, "dna_dye"),
)


def simulator_score(seed: int, readout: str) -> pd.DataFrame:
    """``score()`` of one simulated data set at 5 % noise (the set-up of tests/test_truth_accuracy.py)."""
    from doseatlas.simulate.accuracy import score, scoring_set

    sim, wells = scoring_set(seed=seed, readout=readout)
    result = run_metrics(wells, options=RunOptions())
    return score(result.metrics, sim.truth).assign(seed=seed, readout=readout)


# ------------------------------------------------------------------------------ normalized values
def grmetrics_gr_values_max_diff() -> float:
    """Max |ΔGR| of our GR values vs GRmetrics 1.17 on the toy case A input (as tests/test_agreement_grmetrics)."""
    folder = EXTERNAL / "gr_metrics_toy"
    checked = validate_wells(read_any(folder / "input" / "toy_example_input1.tsv", format="grmetrics"))
    out = normalize(checked.clean, options=NormalizationOptions(control_summary="trimmed_mean"))
    out = out.sort_values(S.SOURCE_LINE).reset_index(drop=True)
    ref = pd.read_csv(folder / "output" / "GRmetricsR1.17_input1_perReplicate_GRvalues.tsv", sep="\t")
    return float(np.abs(out[S.GR].to_numpy() - ref["GRvalue"].to_numpy()).max())


def gdsc_normalized_max_diff(n_plates: int = 25) -> float:
    """Max |ΔRV| vs gdscIC50's untrimmed normalized intensity on the first plates (as tests/test_agreement_gdsc)."""

    folder = EXTERNAL / "gdsc_example_gdscIC50"
    raw = pd.read_parquet(folder / "gdsc_example_raw.parquet")
    barcodes = sorted(raw["BARCODE"].unique())[:n_plates]
    table = read_any(_parquet_subset(raw[raw["BARCODE"].isin(barcodes)]), format="gdsc-raw")
    out = normalize(validate_wells(table).clean, options=NormalizationOptions(control_summary="mean"))
    ref = pd.read_parquet(folder / "reference" / "gdscIC50_normalized_untrimmed.parquet")
    ref = ref[ref["BARCODE"].isin(barcodes)]
    ref = ref.assign(well=well_names(ref["POSITION"].to_numpy() - 1, n_columns=48))
    merged = ref.merge(out, left_on=["BARCODE", "well"], right_on=[S.PLATE, S.WELL], how="left")
    return float(np.abs(merged["normalized_intensity"] - merged[S.RELATIVE_VIABILITY]).max())


def _parquet_subset(frame: pd.DataFrame) -> Path:
    import tempfile

    path = Path(tempfile.mkdtemp()) / "gdsc_subset.parquet"
    frame.reset_index(drop=True).to_parquet(path)
    return path


# ------------------------------------------------------------------------------ page
def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.1e}"
    return str(value)


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


AGREEMENT_COLUMNS = [
    "metric",
    "n",
    "median_abs_diff",
    "max_abs_diff",
    "spearman",
    "status_agreement",
    "verdict",
]


def with_verdicts(rows: list[dict], verdicts: dict[str, str], default: str = "agrees") -> list[dict]:
    """Attach a verdict per metric row (``verdicts`` overrides the default for named metrics)."""
    return [
        {**r, "verdict": "nothing to compare" if r.get("n") == 0 else verdicts.get(r["metric"], default)}
        for r in rows
    ]


SIMULATOR_NOTE = """Targets (asserted for atp seed 1 by tests/test_truth_accuracy.py, seeds 2-4 under `-m slow`): where the
truth lies inside the tested range, >= 90 % of curves within 0.1 log10 and >= 95 % status agreement (estimated /
right / left censored). `within_tol` is the share of all curves whose truth is inside the range (a curve we censor
counts as a miss). srb (fixed protein mass: dead cells keep signal), dna_dye (DNA of dead cells) and resazurin
(metabolic signal that saturates) are harder readouts. The truth is defined on each readout's own expected
signal, so the readout's bias is not counted as an error; but their signal is not proportional to live cells, and
the dose-response of the signal departs from a sigmoid (plateaus where dead cells keep signal, compression at
saturation), so crossings that fall on those flat stretches (tgi, lc50 especially) are poorly determined from noisy
wells. The figures above are what is measured, not targets."""


def simulator_section() -> str:
    tables = [simulator_score(seed, readout) for seed, readout in SIMULATED_RUNS]
    rows = pd.concat(tables, ignore_index=True).to_dict("records")
    columns = [
        "readout",
        "seed",
        "metric",
        "curves",
        "truth_inside_range",
        "within_tol",
        "median_abs_log10_error",
    ]
    columns += ["status_agreement", "refused"]
    head = (
        "## 1. Simulator truth\n\n10 cell lines x 10 drugs, one 72 h read with time zero, 5 % multiplicative noise "
        "(`cv=0.05`), no seeding or plate-gain noise; default run options.\n\n"
    )
    return head + markdown_table(rows, columns) + "\n\n" + SIMULATOR_NOTE + "\n\n" + policy_section()


POLICY_NOTE = """Both policies on the same noisy data (atp, 25 % multiplicative noise, 15 cell lines x 8 drugs, seed 3, one
72 h read with time zero). `refused` counts the curves whose metric was refused (here all `poor_fit`: R² < 0.5). The
shrink policy pools log10 EC50 and ln hill across the 15 cell lines of each drug (docs/fitting.md): it refuses no
curve for a fit reason, and its status agrees with the truth more often. Asserted by tests/test_fit_shrink.py."""


def policy_score(policy: str, *, cv: float = 0.25, seed: int = 3) -> pd.DataFrame:
    """``score()`` of one fit policy on a noisy simulated data set (the set-up of tests/test_fit_shrink.py)."""
    from doseatlas.simulate.accuracy import score, scoring_set

    sim, wells = scoring_set(seed=seed, cv=cv, n_cell_lines=15, n_drugs=8, name="noisy")
    result = run_metrics(wells, options=RunOptions(fit=FitOptions(policy=policy)))
    return score(result.metrics, sim.truth).assign(policy=policy)


def policy_section() -> str:
    rows = pd.concat([policy_score(p) for p in ("refuse", "shrink")], ignore_index=True).to_dict("records")
    columns = ["policy", "metric", "curves", "truth_inside_range", "within_tol", "median_abs_log10_error"]
    columns += ["status_agreement", "refused"]
    head = "### Fit policies at high noise\n\n"
    return head + markdown_table(rows, columns) + "\n\n" + POLICY_NOTE + "\n"


GR_NOTE = """Options: `control_summary="trimmed_mean"` (GRmetrics' 50 % trimmed mean), `FitOptions(ftest_df="grmetrics")`
(GRmetrics' F-test uses the non-standard denominator df n - p + 1), default `gr_sigmoid` (top fixed at 1, GRmetrics'
bounds). Concentrations: GRmetrics µM, ours M (x 1e-6). GRmetrics pools all wells of a group in one fit, as we do, so
its `replicatesAveraged` grouping (no replicate key) is our default run, and its p-values equal ours. For
`perReplicate` the replicate is put into our dataset name (case A gives each replicate its own control and time-0
values, so normalization is unchanged). Censoring: GRmetrics reports GR50 = +Inf / -Inf (never / always below 0,
flat fits included) and extrapolates finite values beyond the tested range; we never extrapolate, so its +Inf or a
value above the range must be our `right_censored`, -Inf or below the range `left_censored`, and a flat fit must give
our `gec50` `refused` (`flat_fit`). GRmax (min of the two top-dose means) and GR_AOC (trapezoid of 1 - mean GR) are
computed from the observed values, identically. GR50/GEC50 are compared where both estimate them inside the range."""

PGX_NOTE = """Options: `FitOptions(models={"relative_viability": "ll3"})` (PharmacoGx fixes the top at 100 %) and,
refitted with PharmacoGx's parameter box (HS in [0, 4], E_inf in [0, 100] %, log10 EC50 in [-6, 6] log10 µM; our
defaults are hill <= 10 and a bottom that may go below 0). Compared with the PharmacoGx 3.7.5 recomputation
`*_notrunc` (no clipping to [0, 100] %, the PSet default). Units: IC50 µM there, M here; AAC percent there (/100), and
AAC = 1 - our `auc` (both over the tested log10 range, from the fitted curve). Each `exp_id` is one curve (repeated
experiments of one line x drug are kept apart through the dataset name). IC50 is the absolute IC50 on both sides
(viability 50 %); PharmacoGx returns NA when the curve never reaches 50 % (our `right_censored`) and extrapolates
beyond the tested range (our censored). **Difference of definition:** PharmacoGx has no model selection; we select
the flat model when the F-test has p >= 0.05 and then report the flat value: the curves PharmacoGx estimates an
IC50 for and we call flat make the status disagreement, and flat curves dominate the AAC differences."""

THUNOR_NOTE = """Options: `control_summary="mean"` (thunor's viability), `ll3` (LL.3u: top fixed at 1), refitted with
Einf >= 0 (thunor's lower bound). Every read is given the nominal 72 h: the reader records each plate's actual read
time, and the A/B plates of a line are read 0.1 h apart, which would split each line x drug into two curves while
thunor pools them. thunor caps a not-reached IC50 at the highest dose (our `right_censored`): IC50 is compared where
both estimate it inside the range. thunor's activity area is the area over the curve in log10 M units; divided by the
log10 range it is our 1 - `auc`. **Differences of policy:** thunor reports the LL.3u fit whenever it converges; we select
the flat model by F-test (p >= 0.05) and refuse fitted metrics when R² < 0.5 (`poor_fit`) — the `sigmoid` share above
counts curves thunor fits that we keep as sigmoid (poor fits included). Large single-curve differences in EC50, Einf
and hill are on curves whose top-dose response does not pin the asymptote."""

HEISER_NOTE = """Same options and conventions as the toy example; `time_h=72` (the file has no time column).
Per replicate, a few poorly determined curves differ beyond rounding (different local optima of the same least
squares); on every one our R² is at least GRmetrics' (asserted by tests/test_agreement_metrics_grmetrics.py). On
HCC1419 (replicate 10019.002) our fit used to stop at hill = 5 (its bound) with R² 0.677 against GRmetrics' 0.724:
the auto multi-start now refits a usable fit whose EC50 or hill ends on a bound, and reaches GRmetrics' optimum."""

GDR_NOTE = """Options: `control_summary="mean"`, `ll3` for relative viability (gDR's `DRC3pHillFitModelFixS0`: top fixed
at 1) refitted in gDR's box (hill <= 5, 0 <= x_inf <= 1, EC50 <= 10 x the top dose; `GDR_RV_BOUNDS`), `gr_sigmoid`
for GR (its default box is gDR's for GR), `FitOptions(ftest_df="grmetrics")` (gDR's F-test denominator df is
n - p + 1), `MetricOptions(min_r2=0)` (gDR has no R² gate). GR for the synthetic set is computed, as gDR does, from
the cell lines' `ReferenceDivisionTime` and the 72 h duration (no Day0 read); PRISM has neither, so its GR is
refused (`no_time_zero`) where gDR reports `DRCTooFewPointsToFit`. Censoring: gDR's ±Inf or a value beyond the tested
range must be our censored status (`expected_status`); curves gDR could not fit are left out of the status share.
gDR's `x_max` is the minimum of the means at the two highest doses (matched exactly by our `grmax` rule; our `emax`
is the mean at the top dose, a different definition). gDR's `x_AOC` is 1 - the mean of the fitted curve at 101
log-spaced doses; ours is the exact integral (hence differences of ~1e-3 on steep curves). **Where single curves
differ:** gDR averages replicate wells per dose before fitting and we fit every well: on a balanced design the
parameters are the same, but R², RSS and the F-test p-value are on different points (the 16-point PRISM curves,
where these rows have their largest differences). One 8-point PRISM curve (YKG1) ends at a worse local optimum in our
default `multistart="auto"` (R² 0.757 vs gDR's 0.804; `multistart="always"` finds gDR's). gDR reports the sigmoid's
RSS and p-value even when it keeps the flat model: on every PRISM curve that gDR calls flat and we call sigmoid, our
sigmoid RSS is below gDR's reported one (gDR's fit stopped higher, so its F-test did not reject the flat model).
In the synthetic set the curves that differ in EC50 and hill are the same kind: ours reach R² 0.9999 on noise-free
data where gDR's stopped at 0.67-0.71; `cellline_EA` x `drug_008` (mean response 0.978) is a real but tiny sigmoid
that gDR reports as flat with an NA p-value."""

GDSC_NOTE = """gdscIC50 0.99.4 fitted, as in its vignette, a nonlinear mixed-effects (NLME) model to all curves at once: a
2-parameter logistic of 1 - viability from 0 to 1 (so every curve is assumed to reach zero viability) with random
effects per cell line and per drug within cell line, on viability trimmed to [0, 1]. Its IC50 (published as ln µM)
is the midpoint of that curve and is extrapolated beyond the tested range. **Differences of definition, not of
accuracy:** (1) shrinkage: each NLME IC50 borrows strength from the other curves, so it depends on the whole data
set (the same NLME fitted on 50 cell lines moves IC50s by a median 0.18 ln units, SOURCE.md); (2) curve family:
our default `ll4` lets the bottom stay above 0, so where the response does not reach 0.5 our absolute IC50 is
`right_censored` while the NLME curve, forced to 0, crosses 0.5 (the larger status and IC50 differences of the
first table); with GDSC's own curve family (`ll2`, second table) the per-curve IC50 is within a median 0.09 ln
units of the NLME's and the remaining gap is the shrinkage; our `ll2` fits with R² < 0.5 are refused (`poor_fit`)
where NLME reports a value. (3) censoring: a GDSC IC50 beyond the tested range is our censored status. The third
table uses our `shrink` policy (docs/fitting.md), which, like the NLME, gives every curve a value: no curve is
refused, the status agrees more often and the AUC is closer; its pooling is across the cell lines of each drug,
where GDSC's pulls a curve towards the same cell line's other drugs, so the in-range IC50s do not move closer.
Drug 1510 (screened at two top concentrations, two GDSC curves) is two curves for us too: our GDSC reader gives each
concentration range its own `series` (`max_conc_uM=2.5`, `max_conc_uM=10`), matched to GDSC's `DRUG_ID_maxc`, so
all 5,152 GDSC curves are compared (before the series were kept, 1510's ranges were pooled into one curve and its
1,472 curves left out)."""

NOT_COMPARED = """Not compared on this page: CurveCurator (compared at the fit level in docs/fitting.md)."""


def _gdsc_block() -> str:
    parts = []
    verdicts = {
        "IC50 (ln µM), both inside range": "differs by definition (NLME shrinkage, curve family)",
        "AUC (fraction of the tested range)": "differs by definition (NLME shrinkage, trimmed responses)",
        "ic50 status (GDSC value beyond the range = censored)": "differs by definition (NLME curves reach 0)",
    }
    for (model, policy), label in GDSC_FITS.items():
        merged = gdsc_compare(model=model, policy=policy)
        rows = with_verdicts(gdsc_rows(merged), verdicts)
        parts.append(f"**{label}** ({len(merged)} curves)\n\n" + markdown_table(rows, AGREEMENT_COLUMNS))
    return "\n\n".join(parts)


def _gdr_block(name: str) -> str:
    result = gdr_run(name)
    parts = []
    for kind in GDR_SCALES:
        merged = gdr_compare(name, kind, result=result)
        if merged["gdr_fit_type"].eq(GDR_TOO_FEW).all():
            reasons = result.metrics.loc[result.metrics[S.METRIC].eq(GDR_NAMES[kind][0]), S.REASON]
            counts = ", ".join(f"`{k}` {v}" for k, v in reasons.value_counts().items())
            parts.append(f"**{kind}**: gDR fits no curve ({GDR_TOO_FEW}); ours are all refused: {counts}.")
            continue
        rows = gdr_rows(merged, kind)
        loose = {r["metric"]: "agrees (median); single curves differ, see the note" for r in rows}
        verdicts = {k: v for k, v in loose.items() if _max_diff(rows, k) > 0.01}
        if "x_max vs emax (top dose)" in verdicts:
            verdicts["x_max vs emax (top dose)"] = "differs by definition (top dose vs min of two top doses)"
        verdicts["flat / sigmoid call"] = "agrees; see the note on the calls that differ"
        rows = with_verdicts(rows, verdicts)
        parts.append(f"**{kind}** ({len(merged)} curves)\n\n" + markdown_table(rows, AGREEMENT_COLUMNS))
    return "\n\n".join(parts)


def _grmetrics_block(source: GRSource) -> str:
    parts = []
    for grouping in GROUPINGS:
        merged = grmetrics_compare(source, grouping=grouping)
        rows = grmetrics_rows(merged)
        loose = {r["metric"]: "agrees (median); single curves at another local optimum" for r in rows}
        rows = with_verdicts(rows, {k: v for k, v in loose.items() if _max_diff(rows, k) > 1e-3})
        parts.append(f"**{grouping}** ({len(merged)} curves)\n\n" + markdown_table(rows, AGREEMENT_COLUMNS))
    return "\n\n".join(parts)


def _pharmacogx_both() -> list[dict]:
    """PharmacoGx rows with its parameter box, plus IC50 with our default ll3 bounds."""
    default = pharmacogx_rows(pharmacogx_compare(bounds=False))[0]
    default = {**default, "metric": "IC50 (log10 µM), both inside range, our default bounds"}
    return [default, *pharmacogx_rows(pharmacogx_compare(bounds=True))]


def _max_diff(rows: list[dict], metric: str) -> float:
    value = next(r for r in rows if r["metric"] == metric).get("max_abs_diff", np.nan)
    return float(value) if value is not None and np.isfinite(value) else 0.0


def reference_sections() -> list[tuple[str, str, Callable[[], str]]]:
    """(title, external folder, builder) of every reference comparison."""
    pgx_verdicts = {
        "AAC (fraction), all curves": "differs by definition (flat model selection)",
        "ic50 status (censoring)": "differs by definition (flat model selection)",
    }
    thunor_verdicts = {
        "EC50 (log10 M), both sigmoid": "agrees (median); single curves differ",
        "Einf, both sigmoid": "agrees (median); single curves differ",
        "hill, both sigmoid": "agrees (median); single curves differ",
        "sigmoid fitted by both / by thunor": "differs by definition (F-test, R² gate)",
    }
    return [
        ("GRmetrics 1.17 toy example (case A, input1)", GR_TOY.folder, lambda: _grmetrics_block(GR_TOY)),
        ("GRmetrics 1.17 on Heiser 2012 Taxol (72 h)", GR_HEISER.folder, lambda: _grmetrics_block(GR_HEISER)),
        (
            "PharmacoGx 3.7.5 on GDSCsmall",
            "pharmacogx_small_psets",
            lambda: markdown_table(with_verdicts(_pharmacogx_both(), pgx_verdicts), AGREEMENT_COLUMNS),
        ),
        (
            "thunor 1.0.3 HillCurveLL3u on HTS007 viability at 72 h",
            "thunor_hts007",
            lambda: markdown_table(
                with_verdicts(thunor_rows(thunor_compare()), thunor_verdicts), AGREEMENT_COLUMNS
            ),
        ),
        ("gdscIC50 0.99.4 NLME on its GDSC example (CellTiter-Glo, 96 h)", GDSC_FOLDER, _gdsc_block),
        (
            "gDR (gDRcore 1.11) on gDRtestData: synthetic noise-free set (72 h)",
            "gdrtestdata",
            lambda: _gdr_block("synthetic_small_no_noise"),
        ),
        (
            "gDR (gDRcore 1.11) on gDRtestData: PRISM GDC-8025 (120 h)",
            "gdrtestdata",
            lambda: _gdr_block("prism_gdc8025"),
        ),
    ]


NOTES = {
    GR_TOY.folder: GR_NOTE,
    GR_HEISER.folder: HEISER_NOTE,
    "pharmacogx_small_psets": PGX_NOTE,
    "thunor_hts007": THUNOR_NOTE,
    "gdrtestdata": GDR_NOTE,
    GDSC_FOLDER: GDSC_NOTE,
}


def normalized_section() -> str:
    rows = []
    if (EXTERNAL / "gr_metrics_toy").is_dir():
        rows.append(
            {
                "data set": "GRmetrics toy, GR values (case A)",
                "max abs difference": grmetrics_gr_values_max_diff(),
            }
        )
    if (EXTERNAL / "gdsc_example_gdscIC50").is_dir():
        rows.append(
            {
                "data set": "gdscIC50, untrimmed normalized intensity (25 plates)",
                "max abs difference": gdsc_normalized_max_diff(),
            }
        )
    text = (
        "## 3. Normalized values\n\nRecomputed here; asserted (with Heiser GR, thunor viability, gDR RV/GR to "
        "4-decimal rounding) by tests/test_agreement_{grmetrics,gdsc,thunor,gdr}.py.\n\n"
    )
    return text + markdown_table(rows, ["data set", "max abs difference"]) + "\n"


def reference_section() -> str:
    out = [
        "## 2. Reference tools\n",
        "Columns: `median_abs_diff` / `max_abs_diff` in log10 units for concentrations, "
        "else in the metric's unit; `spearman` rank correlation; `status_agreement`: share of curves with the same "
        "call (censoring status or flat / sigmoid).\n",
    ]
    sections = reference_sections()
    for i, (title, folder, build) in enumerate(sections):
        out.append(f"### {title}\n")
        if not (EXTERNAL / folder).is_dir():
            out.append(f"Skipped: `{folder}` not found under ../shared/data/external/.\n")
            continue
        out.append(build() + "\n")
        if i + 1 == len(sections) or sections[i + 1][1] != folder:  # one note after the sections of a folder
            out.append(NOTES[folder] + "\n")
    out.append(NOT_COMPARED + "\n")
    return "\n".join(out)


def render(*, simulator: bool = True) -> str:
    head = (
        "# Validation\n\n<!-- generated by `python scripts/validate.py`; do not edit -->\n\n"
        "How close doseatlas' metrics are to the truth (simulated data) and to the reference tools on their own "
        "data, and where a difference is one of definition rather than of accuracy.\n\n"
    )
    sim = simulator_section() if simulator else "## 1. Simulator truth\n\nSkipped (`--skip-simulator`).\n"
    page = (
        head + sim + "\n" + reference_section() + "\n" + normalized_section() + "\n" + consistency_section()
    )
    page = page + "\n" + coverage_section() if simulator else page
    return page + "\n" + dip_section()


def missing_reference_data() -> list[str]:
    """The folders of ../shared/data/external/ that the page compares against and that are absent."""
    folders = dict.fromkeys([*(folder for _, folder, _ in reference_sections()), "pharmacogx_small_psets"])
    return [f for f in folders if not (EXTERNAL / f).is_dir()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "validation.md")
    parser.add_argument("--skip-simulator", action="store_true")
    parser.add_argument(
        "--only",
        choices=["consistency", "coverage", "dip"],
        help="regenerate one section of the existing page",
    )
    parser.add_argument(
        "--allow-skipped",
        action="store_true",
        help="write the page over an existing one even when reference data sets are absent (their sections say "
        "'Skipped')",
    )
    args = parser.parse_args(argv)
    missing = missing_reference_data()
    if missing and args.out.exists() and not args.allow_skipped:
        print(
            f"not written: {args.out} exists and the reference data {', '.join(missing)} are not under {EXTERNAL}, "
            "so their sections would say 'Skipped' (see README, 'Reference data'); use --out for another file or "
            "--allow-skipped",
            file=sys.stderr,
        )
        return 2
    started = time.perf_counter()
    if args.only == "consistency":
        page = replace_consistency_section(args.out.read_text(encoding="utf-8"))
    elif args.only == "coverage":
        page = replace_section(args.out.read_text(encoding="utf-8"), COVERAGE_HEADING, coverage_section())
    elif args.only == "dip":
        page = replace_section(args.out.read_text(encoding="utf-8"), DIP_TITLE, dip_section())
    else:
        page = render(simulator=not args.skip_simulator)
    args.out.write_text(page, encoding="utf-8")
    print(f"wrote {args.out} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
