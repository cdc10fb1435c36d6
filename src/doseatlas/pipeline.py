"""The named steps of ``doseatlas run``: tables in, tables out, no file access.

Steps (gDR-style names): ``validate`` -> ``normalize`` -> ``fit`` -> ``metrics``. Each step is a
pure function of the previous step's tables and the options; :func:`run_pipeline` chains
them and returns every table plus a summary whose row accounting is checked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from doseatlas import schemas as S
from doseatlas.errors import ConfigError, DoseatlasError
from doseatlas.metrics import MetricOptions, compute_metrics
from doseatlas.normalize import NormalizationOptions, from_response_table, normalize
from doseatlas.qc import plate_qc
from doseatlas.validate import ValidationResult, validate_responses, validate_wells

STEPS = ("validate", "normalize", "fit", "metrics")


@dataclass(frozen=True)
class FitOptions:
    """Options of the fitting step (the refusal policy; see ``docs/fitting.md``).

    Parameters
    ----------
    selection
        ``ftest`` (sigmoid kept when the F-test against the flat model has p < ``alpha``) or ``aic``.
    alpha
        F-test level.
    ftest_df
        ``standard`` (denominator df n - p) or ``grmetrics`` (n - p + 1, as GRmetrics and gDR).
    robust
        ``None`` (least squares), ``soft_l1`` or ``huber``.
    models
        Model per response scale replacing the default (``ll4`` for relative viability and percent
        growth, ``gr_sigmoid`` for GR), e.g. ``{"relative_viability": "ll3"}`` to fix the top at 1 as
        PharmacoGx and gDR do.
    intervals, n_boot
        ``wald`` (from the Jacobian, default) or ``bootstrap`` (residual bootstrap with ``n_boot``
        refits per curve, percentile intervals) for the parameter intervals in ``curves.parquet``.
    policy, min_curves
        ``refuse`` (default: each curve on its own; flat and poor fits refused) or ``shrink`` (a value for
        every curve: empirical-Bayes pooling of log10 EC50 and ln hill across the cell lines of each drug,
        see :mod:`doseatlas.fit.shrink`; groups with fewer than ``min_curves`` curves keep the refusal fit).
    """

    selection: str = "ftest"
    alpha: float = 0.05
    ftest_df: str = "standard"
    robust: str | None = None
    models: dict[str, str] = field(default_factory=dict)
    intervals: str = "wald"
    n_boot: int = 200
    policy: str = "refuse"
    min_curves: int = 5

    def __post_init__(self) -> None:
        from doseatlas.fit.engine import check_options
        from doseatlas.fit.shrink import ShrinkOptions
        from doseatlas.fit.table import check_policy

        check_options(self.selection, self.ftest_df, self.robust, "auto", self.alpha)
        check_policy(self.policy, self.intervals)
        ShrinkOptions(min_curves=self.min_curves)  # its own checks, whatever the policy
        unknown = set(self.models) - set(S.RESPONSE_SCALES)
        if unknown:
            raise ConfigError(
                f"models: unknown response scale(s) {sorted(unknown)}; use {list(S.RESPONSE_SCALES)}"
            )
        if self.models:
            from doseatlas.fit.models import get_model

            for name in self.models.values():
                get_model(name)

    def as_kwargs(self) -> dict[str, Any]:
        """Options for :func:`doseatlas.fit.fit_curves` (the model is passed per scale)."""
        options = {k: v for k, v in asdict(self).items() if k not in ("models", "n_boot", "min_curves")}
        if self.intervals == "bootstrap":
            options["bootstrap"] = {"n_boot": self.n_boot}
        if self.policy == "shrink":
            from doseatlas.fit.shrink import ShrinkOptions

            options["shrink"] = ShrinkOptions(min_curves=self.min_curves)
        return options


@dataclass(frozen=True)
class RunOptions:
    """Every option of a run; recorded verbatim in the provenance of each output table."""

    normalization: NormalizationOptions = field(default_factory=NormalizationOptions)
    fit: FitOptions = field(default_factory=FitOptions)
    metrics: MetricOptions = field(default_factory=MetricOptions)

    def as_record(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunResult:
    """All tables of a run and its summary."""

    responses: pd.DataFrame
    curves: pd.DataFrame
    metrics: pd.DataFrame
    ledger: pd.DataFrame
    plates: pd.DataFrame
    summary: dict[str, Any]


def text_dtypes(table: pd.DataFrame) -> pd.DataFrame:
    """Object columns that hold only text (and missing values) as pandas' string dtype, in place: one column
    type whatever pandas inferred along the way (the in-memory and the partitioned runs concatenate different
    pieces). Returns ``table``."""
    for column in table.columns[table.dtypes.eq(object)]:
        values = table[column]
        if values.notna().any() and pd.api.types.infer_dtype(values, skipna=True) == "string":
            table[column] = values.astype(pd.StringDtype(na_value=np.nan))
    return table


def result_tables(**tables: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The tables of a run result (owned by the run) with :func:`text_dtypes` applied in place."""
    return {name: text_dtypes(table) for name, table in tables.items()}


def _plates_table(clean: pd.DataFrame, responses: pd.DataFrame) -> pd.DataFrame:
    """Per-plate QC: counts by role and the control summaries used."""
    key = [S.DATASET, S.PLATE, S.CELL_LINE, S.TIME_H, S.READOUT]
    counts = clean.groupby([*key, S.ROLE], dropna=False).size().unstack(S.ROLE, fill_value=0)
    counts = counts.reindex(
        columns=[r.value for r in S.Role], fill_value=0
    )  # every role, whatever is present
    counts.columns = [f"n_{c}" for c in counts.columns]
    counts = counts.reset_index()
    cols = [S.BLANK_SIGNAL, S.VEHICLE_SIGNAL, S.VEHICLE_SPREAD, S.TIME_ZERO_SIGNAL]
    controls = responses[key + cols].drop_duplicates(subset=key)
    plates = counts.merge(controls, on=key, how="left")
    plates["vehicle_cv"] = plates[S.VEHICLE_SPREAD] / plates[S.VEHICLE_SIGNAL]
    return plates.merge(plate_qc(clean), on=key, how="left")


def _summary(
    n_read: int, rows_used: int, datasets: list[str], ledger: pd.DataFrame, responses: pd.DataFrame
) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "rows_read": n_read,
        "rows_used": rows_used,
        "rows_in_ledger": len(ledger),
        "treated_wells": len(responses),
        "datasets": datasets,
        "ledger_reasons": ledger[S.LEDGER_REASON].value_counts().to_dict(),
        "refusals": {
            scale: responses[S.reason_column(scale)].value_counts().to_dict() for scale in S.RESPONSE_SCALES
        },
    }
    if summary["rows_used"] + summary["rows_in_ledger"] != n_read:
        raise DoseatlasError("row accounting failed: rows read != rows used + rows in the ledger")
    summary["warnings"] = run_warnings(n_read, rows_used)
    return summary


def run_warnings(n_read: int, rows_used: int) -> list[str]:
    """What a person must not miss about a run that still succeeded (exit 0): said on the terminal, in
    ``summary.json`` (``warnings``) and at the top of the report."""
    if n_read == 0:
        return ["the input has no rows: nothing was computed"]
    if rows_used == 0:
        return [
            f"every input row ({n_read:,}) was rejected: no responses, curves or metrics were computed; "
            "the reasons are in ledger.parquet"
        ]
    return []


def fit_all_scales(responses: pd.DataFrame, *, options: FitOptions) -> pd.DataFrame:
    """The ``fit`` step: every drug curve on every response scale, one table."""
    from doseatlas.fit import fit_curves

    frames = [
        fit_curves(responses, scale=scale, model=options.models.get(scale), **options.as_kwargs())
        for scale in S.RESPONSE_SCALES
    ]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else fit_curves(responses.iloc[:0], scale=S.GR)


def is_response_table(raw: pd.DataFrame) -> bool:
    """True for a pre-normalized response table (it declares a ``response_scale``)."""
    return S.RESPONSE_SCALE in raw.columns


def _validate_and_normalize(
    raw: pd.DataFrame, *, options: RunOptions, tick: Callable[[str], None]
) -> tuple[ValidationResult, pd.DataFrame]:
    if is_response_table(raw):
        checked = validate_responses(raw)
        tick("normalize")
        return checked, from_response_table(checked.clean)
    checked = validate_wells(raw)
    tick("normalize")
    return checked, normalize(checked.clean, options=options.normalization)


def run_pipeline(
    raw: pd.DataFrame,
    *,
    options: RunOptions | None = None,
    progress: Callable[[str], None] | None = None,
) -> RunResult:
    """Run every step on a raw well table.

    Parameters
    ----------
    raw
        Canonical well table as returned by a reader of :mod:`doseatlas.ingest`.
    options
        :class:`RunOptions`; defaults when omitted.
    progress
        Called with each step's name as it starts (for progress display).
    """
    options = options or RunOptions()
    tick = progress or (lambda _step: None)
    tick("validate")
    checked, responses = _validate_and_normalize(raw, options=options, tick=tick)
    tick("fit")
    curves = fit_all_scales(responses, options=options.fit)
    tick("metrics")
    metrics = compute_metrics(responses, curves, options=options.metrics)
    datasets = sorted(checked.clean[S.DATASET].unique().tolist())
    summary = _summary(checked.n_read, len(checked.clean), datasets, checked.ledger, responses)
    summary["metric_status"] = metrics[S.STATUS].value_counts().to_dict()
    summary["curves"] = len(curves)
    summary["metric_rows"] = len(metrics)
    plates = _plates_table(checked.clean, responses) if S.ROLE in checked.clean else pd.DataFrame()
    tables = result_tables(
        responses=responses, curves=curves, metrics=metrics, ledger=checked.ledger, plates=plates
    )
    return RunResult(**tables, summary=summary)
