"""The named steps of ``doseatlas run``: tables in, tables out, no file access.

Steps (gDR-style names): ``validate`` -> ``normalize`` -> ``fit`` -> ``metrics`` -> ``harmonize``
(canonical cell-line and perturbagen names and ids, :mod:`doseatlas.harmonize`) -> ``consistency``
(``auc_common`` and the comparison of data sets, :mod:`doseatlas.harmonize.consistency`) -> ``time`` (growth,
conversion to target durations, time-dependent drugs). Each step is a
pure function of the previous step's tables and the options; :func:`run_pipeline` chains
them and returns every table plus a summary whose row accounting is checked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from doseatlas import schemas as S
from doseatlas._codes import factorize, per_distinct, text_column
from doseatlas.durations import DurationOptions, apply_nominal, distinct_times, nominal_map
from doseatlas.errors import ConfigError, DoseatlasError
from doseatlas.fit.table import in_response_units
from doseatlas.growth import growth_table
from doseatlas.harmonize import HarmonizeOptions, apply_identities, harmonize
from doseatlas.harmonize.identities import identity_notes, identity_summary
from doseatlas.interference import InterferenceOptions, compound_wells, interference_step
from doseatlas.metrics import MetricOptions, compute_metrics
from doseatlas.metrics.bounds import with_bound_columns
from doseatlas.metrics.convert import ConversionOptions, convert_metrics
from doseatlas.metrics.flags import FlagOptions, flag_counts, flag_metrics
from doseatlas.metrics.time_dependence import time_dependence
from doseatlas.normalize import NormalizationOptions, from_response_table, normalize
from doseatlas.position import check_position_correction, correct_positions
from doseatlas.qc import key_table, plate_coding, plate_qc, run_starts
from doseatlas.readouts import refuse_unsupported, unsupported_rows
from doseatlas.spatial import N_EDGE, N_INTERIOR, plate_edge_effects
from doseatlas.timecourse import N_READS, dip_curves_and_metrics, dip_rates
from doseatlas.validate import ValidationResult, validate_responses, validate_wells

STEPS = ("validate", "normalize", "fit", "metrics", "harmonize", "consistency", "time")


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
    """Every option of a run; recorded verbatim in the provenance of each output table.

    ``pool_series``: False (default) keeps the source's dose series (``series`` column, e.g. a GDSC drug screened
    at two top concentrations, PharmacoGx experiments) as separate curves; True pools them into one curve per
    (dataset, cell line, perturbagen, readout, duration): the ``series`` of every response is emptied.
    ``pool_seeding``: False (default) keeps each seeding density a separate curve; True pools the densities of a
    curve after normalization (each well still normalized by the controls of its own density), as GDSC's own
    fits do: the ``seeding_density`` of every response is emptied.
    """

    normalization: NormalizationOptions = field(default_factory=NormalizationOptions)
    fit: FitOptions = field(default_factory=FitOptions)
    metrics: MetricOptions = field(default_factory=MetricOptions)
    conversion: ConversionOptions = field(default_factory=ConversionOptions)
    durations: DurationOptions = field(default_factory=DurationOptions)
    pool_series: bool = False
    pool_seeding: bool = False
    harmonize: HarmonizeOptions = field(default_factory=HarmonizeOptions)
    flags: FlagOptions = field(default_factory=FlagOptions)
    interference: InterferenceOptions = field(default_factory=InterferenceOptions)
    position_correction: str = "none"  # none, bscore or drop-edge (doseatlas.position, docs/plates.md)

    def __post_init__(self) -> None:
        check_position_correction(self.position_correction)

    def as_record(self) -> dict[str, Any]:
        """The options as a record (the identity table and Cellosaurus records summarized, not copied)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return {name: _record(v) for name, v in values.items()}


def _record(value: Any) -> Any:
    if hasattr(value, "as_record"):
        return value.as_record()
    return asdict(value) if is_dataclass(value) else value


@dataclass
class RunResult:
    """All tables of a run and its summary."""

    responses: pd.DataFrame
    curves: pd.DataFrame
    metrics: pd.DataFrame
    ledger: pd.DataFrame
    plates: pd.DataFrame
    summary: dict[str, Any]
    growth: pd.DataFrame = field(default_factory=pd.DataFrame)
    dip: pd.DataFrame = field(default_factory=pd.DataFrame)
    converted: pd.DataFrame = field(default_factory=pd.DataFrame)
    time_dependence: pd.DataFrame = field(default_factory=pd.DataFrame)
    identities: pd.DataFrame = field(default_factory=pd.DataFrame)
    consistency: pd.DataFrame = field(default_factory=pd.DataFrame)
    interference: pd.DataFrame = field(default_factory=pd.DataFrame)  # doseatlas.interference
    options: RunOptions | None = None  # the options the run used (with the reader's metadata merged in)


def with_reader_metadata(options: RunOptions, attrs: dict[str, Any]) -> RunOptions:
    """``options`` with the metadata a reader found in its source (``attrs`` of its table) merged in.

    Doubling times (``attrs["doubling_times"]``, e.g. gDR's ``ReferenceDivisionTime``, named by
    ``attrs["doubling_time_source"]``) are used for GR where no time-zero read exists. The rule: a doubling time
    given in the options (``--doubling-times``) wins for its cell line; the reader's fill the other cell lines,
    each recorded with its source (``doubling_time_sources``). Applying it twice changes nothing.
    """
    reader = dict(attrs.get("doubling_times") or {})
    norm = options.normalization
    given = dict(norm.doubling_times or {})
    added = {line: float(td) for line, td in reader.items() if line not in given}
    if not added:
        return options
    source = str(attrs.get("doubling_time_source") or "reader")
    sources = {**dict(norm.doubling_time_sources or {}), **dict.fromkeys(added, source)}
    merged = replace(norm, doubling_times={**given, **added}, doubling_time_sources=sources)
    return replace(options, normalization=merged)


def text_dtypes(table: pd.DataFrame) -> pd.DataFrame:
    """Object columns that hold only text (and missing values) as pandas' string dtype, in place: one column
    type whatever pandas inferred along the way (the in-memory and the partitioned runs concatenate different
    pieces). Returns ``table``."""
    for column in table.columns[table.dtypes.eq(object)]:
        text = _as_text(table[column])
        if text is not None:
            table[column] = text
    return table


def _as_text(values: pd.Series) -> pd.Series | None:
    """``values.astype(pd.StringDtype(na_value=np.nan))`` when every value that is not missing is text, else None
    (also when every value is missing). Factorized first (:func:`doseatlas._codes.factorize`: identifier columns
    hold few distinct values, often in runs): the distinct values are tested and converted, then taken to the
    rows (:func:`doseatlas._codes.text_column`, the one builder of a text column from distinct values), instead
    of converting a Python object per row. The missing values (code -1) are tested too: text with a missing
    value ``infer_dtype`` does not skip (e.g. NaT) is not all text."""
    codes, uniques = factorize(values)
    if pd.api.types.infer_dtype(uniques, skipna=True) != "string":  # ("empty" when every value is missing)
        return None
    missing = codes < 0
    if missing.any() and pd.api.types.infer_dtype(values.to_numpy()[missing], skipna=True) != "empty":
        return None
    return pd.Series(text_column(codes, uniques, missing=np.nan), index=values.index, name=values.name)


#: the row order of every output table, the same in both engines: its key, then what makes the order total
#: (responses: ``row_id``; ledger rows of one input row: column, reason, message). Missing values sort last.
TABLE_ORDER: dict[str, tuple[str, ...]] = {
    "responses": (S.SOURCE_FILE, S.SOURCE_LINE, S.ROW_ID),
    "curves": (*S.CURVE_KEY, S.SCALE),
    "metrics": S.METRIC_KEY,
    "ledger": S.LEDGER_COLUMNS,
    "plates": (S.DATASET, S.PLATE, S.CELL_LINE, S.TIME_H, S.READOUT),
    "identities": (S.IDENTITY_KIND, S.DATASET, S.PERTURBATION_TYPE, S.SOURCE_NAME),
    "consistency": (S.DATASET_A, S.DATASET_B, S.STAGE, S.METRIC),
    "growth": (S.DATASET, S.CELL_LINE, S.READOUT, S.SEEDING_DENSITY, S.DURATION_H, "method"),
    "converted": (*S.CURVE_KEY, "source_duration_h", S.METRIC),
    "time_dependence": (*(k for k in S.CURVE_KEY if k != S.DURATION_H), S.METRIC),
    "dip": (S.DATASET, S.PLATE, S.WELL),
    "interference": S.INTERFERENCE_KEY,
}


def sort_table(table: pd.DataFrame, name: str) -> pd.DataFrame:
    """``table`` in the order :data:`TABLE_ORDER` gives for ``name`` (a stable sort; new index)."""
    by = [c for c in TABLE_ORDER[name] if c in table.columns]
    if not by or len(table) < 2:
        return table.reset_index(drop=True)
    order = _sort_order(table, by)
    if order is None:  # a table already in order (often) is not copied
        return table.reset_index(drop=True)
    return table.take(order).reset_index(drop=True)


def _sort_order(table: pd.DataFrame, by: list[str]) -> np.ndarray | None:
    """The row order of ``table.sort_values(by, kind="stable", na_position="last")``, None when that is the order
    of the rows already. A table in order (often) is recognized by comparing neighbouring rows column by column
    (:func:`_neighbours`) until every pair is decided; otherwise ``np.lexsort`` of a sort key per column (numbers
    as they are, NaN last; other values by their sorted codes, ``factorize(sort=True)``, missing last: what
    pandas' own sort orders by), instead of sorting the text columns (pandas' sort where values do not compare)."""
    if _in_order(table, by):
        return None
    keys = [_sort_key(table[column]) for column in by]
    if any(key is None for key in keys):
        order = table[by].reset_index(drop=True).sort_values(by, kind="stable", na_position="last").index
        return None if order.equals(pd.RangeIndex(len(table))) else order.to_numpy()
    return np.lexsort(keys[::-1])


def _in_order(table: pd.DataFrame, by: list[str]) -> bool:
    """True when the rows of ``table`` are in the order of ``by`` already (missing values last); False also when a
    column's values do not compare (then sorted by pandas, which decides)."""
    undecided = np.ones(len(table) - 1, dtype=bool)
    for column in by:
        pairs = _neighbours(table[column])
        if pairs is None:
            return False
        greater, equal = pairs
        if (undecided & greater).any():
            return False
        undecided &= equal
        if not undecided.any():
            return True
    return True


def _neighbours(values: pd.Series) -> tuple[np.ndarray, np.ndarray] | None:
    """(row i sorts after row i + 1, rows i and i + 1 sort equal) of neighbouring rows in the order of
    :func:`_sort_key` (missing values last, equal among themselves). Text of pandas' string dtype is compared by
    pyarrow (code point order, as its sort); other values by their sort key. None: values that do not compare."""
    if isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow":
        import pyarrow.compute as pc

        array = values.array.__arrow_array__()
        missing = array.is_null().to_numpy(zero_copy_only=False)
        before, after = array[:-1], array[1:]
        greater = pc.greater(before, after).fill_null(False).to_numpy(zero_copy_only=False)
        equal = pc.equal(before, after).fill_null(False).to_numpy(zero_copy_only=False)
    else:
        key = _sort_key(values)
        if key is None:
            return None
        missing = np.isnan(key) if key.dtype.kind == "f" else np.zeros(len(key), dtype=bool)
        greater, equal = key[:-1] > key[1:], key[:-1] == key[1:]
    return greater | (missing[:-1] & ~missing[1:]), equal | (missing[:-1] & missing[1:])


def _sort_key(values: pd.Series) -> np.ndarray | None:
    """What :func:`_sort_order` sorts ``values`` by (None: values that do not compare)."""
    if isinstance(values.dtype, np.dtype) and values.dtype.kind in "biuf":
        return values.to_numpy()
    try:
        code, uniques = pd.factorize(values, sort=True, use_na_sentinel=True)
    except TypeError:
        return None
    return np.where(code < 0, len(uniques), code)


def result_tables(**tables: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The tables of a run result with :func:`text_dtypes` applied (in place) and rows in the order of
    :data:`TABLE_ORDER`, so that both engines give the same tables row for row."""
    return {name: sort_table(text_dtypes(table), name) for name, table in tables.items()}


def _plates_table(clean: pd.DataFrame, responses: pd.DataFrame) -> pd.DataFrame:
    """Per-plate QC: counts by role and the control summaries used (rows of response tables have no plate).
    The plates are coded once (:func:`doseatlas.qc.plate_coding`) for the counts, the QC and the edge model."""
    clean = clean[clean[S.ROLE].notna()] if clean[S.ROLE].hasnans else clean
    key = [S.DATASET, S.PLATE, S.CELL_LINE, S.TIME_H, S.READOUT]
    coding = plate_coding(clean)
    roles = [r.value for r in S.Role]
    role, n = coding.role, coding.n_plates  # the role texts coded once, as positions in S.Role
    known = role >= 0
    counts = np.bincount(coding.plate[known] * len(roles) + role[known], minlength=n * len(roles))
    plates = key_table(coding.firsts).assign(
        **{f"n_{r}": counts.reshape(n, len(roles))[:, i] for i, r in enumerate(roles)}
    )  # every role, whatever is present
    cols = [S.BLANK_SIGNAL, S.VEHICLE_SIGNAL, S.VEHICLE_SPREAD, S.TIME_ZERO_SIGNAL]
    controls = responses.iloc[run_starts(responses, key)][key + cols].drop_duplicates(subset=key)
    plates = plates.merge(controls, on=key, how="left")
    plates["vehicle_cv"] = plates[S.VEHICLE_SPREAD] / plates[S.VEHICLE_SIGNAL]
    plates = plates.merge(plate_qc(clean, coding=coding), on=key, how="left")
    edges = plate_edge_effects(clean, coding=coding)  # edge_effects(well_positions(clean)), its columns only
    if len(edges):
        plates = plates.merge(edges, on=key, how="left")
    else:  # no position to use (no well names, or no condition on both sides)
        plates = plates.assign(**{c: np.nan for c in edges.columns if c not in key})
    counts = {c: plates[c].astype("Float64").round().astype("Int64") for c in (N_EDGE, N_INTERIOR)}
    return plates.assign(**counts)  # one dtype whether or not a plate (or a partition) has an estimate


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


def record_accounting(attrs: dict[str, Any], n_read: int) -> dict[str, Any]:
    """The summary's record counts: the records of the source files (``source_records``), from the rows read and
    the reader's counts of records folded into other rows and rows it derived (``attrs``; see
    :data:`doseatlas.schemas.RECORD_COUNT_ATTRS`)."""
    folded = {str(k): int(v) for k, v in (attrs.get(S.RECORDS_FOLDED) or {}).items()}
    synthesized = {str(k): int(v) for k, v in (attrs.get(S.ROWS_SYNTHESIZED) or {}).items()}
    return {
        S.SOURCE_RECORDS: n_read + sum(folded.values()) - sum(synthesized.values()),
        S.RECORDS_FOLDED: folded,
        S.ROWS_SYNTHESIZED: synthesized,
    }


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
    from doseatlas.fit.table import fit_scales

    models = {scale: options.models.get(scale) for scale in S.RESPONSE_SCALES}
    frames = [f for f in fit_scales(responses, models=models, **options.as_kwargs()) if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else fit_curves(responses.iloc[:0], scale=S.GR)


def time_tables(
    responses: pd.DataFrame, curves: pd.DataFrame, metrics: pd.DataFrame, *, options: RunOptions
) -> dict[str, pd.DataFrame]:
    """The ``time`` step: the control's growth, time-dependent drugs and metrics converted to the target
    durations (see :mod:`doseatlas.growth`, :mod:`doseatlas.metrics.time_dependence`,
    :mod:`doseatlas.metrics.convert`)."""
    growth = growth_table(responses)
    dependence = time_dependence(metrics)
    converted = convert_metrics(
        responses,
        curves,
        growth=growth,
        options=options.conversion,
        dependence=dependence,
        metric_options=options.metrics,
    )
    converted = _refuse_unsupported(converted)  # as the metrics they convert (the readout registry)
    return {"growth": growth, "converted": converted, "time_dependence": dependence}


def dip_step(
    dip: pd.DataFrame, curves: pd.DataFrame, metrics: pd.DataFrame, *, options: RunOptions
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Time courses (wells read three or more times after time zero): the DIP dose-response curves and their
    ``dip_*`` metrics appended to the curves and metrics tables (:mod:`doseatlas.timecourse`)."""
    if not len(dip) or not (dip[N_READS] >= 3).any():
        return curves, metrics
    fit_options = {k: v for k, v in options.fit.as_kwargs().items() if k not in ("policy", "shrink")}
    fit_options["model"] = options.fit.models.get(S.DIP_RELATIVE)
    dip_curves, dip_metrics = dip_curves_and_metrics(
        dip, fit_options=fit_options, metric_options=options.metrics
    )
    return (
        pd.concat([f for f in (curves, dip_curves) if len(f)], ignore_index=True)
        if len(dip_curves)
        else curves,
        pd.concat([f for f in (metrics, dip_metrics) if len(f)], ignore_index=True)
        if len(dip_metrics)
        else metrics,
    )


def time_summary(timed: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """What the ``time`` step adds to ``summary.json``."""
    converted = timed["converted"]
    return {
        "converted_rows": len(converted),
        "converted_status": converted[S.STATUS].value_counts().to_dict() if len(converted) else {},
        "time_dependent_pairs": int(timed["time_dependence"]["time_dependent"].astype(bool).sum()),
        "growth_flags": timed["growth"]["flags"]
        .str.split(",")
        .explode()
        .replace("", None)
        .dropna()
        .value_counts()
        .to_dict(),
    }


def _refuse_unsupported(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`doseatlas.readouts.refuse_unsupported`, the readout registry asked once per distinct readout and
    metric: a table without an unsupported row is returned as it is (as that function returns it)."""
    if not per_distinct(table, [S.READOUT, S.METRIC], unsupported_rows).any():
        return table
    return refuse_unsupported(table)


def harmonize_tables(
    responses: pd.DataFrame,
    curves: pd.DataFrame,
    metrics: pd.DataFrame,
    plates: pd.DataFrame,
    *,
    options: HarmonizeOptions,
) -> tuple[pd.DataFrame, ...]:
    """The ``harmonize`` step on a run's tables: (responses, curves, metrics, plates, identities) with the
    canonical names and ids (plates keep their names where no identity was resolved, e.g. control-only lines)."""
    responses, curves, metrics, identities = harmonize(responses, curves, metrics, options=options)
    if len(plates) and S.CELL_LINE in plates:
        plates = apply_identities(plates, identities)
    return responses, curves, metrics, plates, identities


def consistency_step(
    metrics: pd.DataFrame, curves: pd.DataFrame, *, published: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``consistency`` step: ``auc_common`` rows appended to the metrics, and the consistency table.

    Runs on the whole run's metrics (it compares data sets), after the identities step when there is one.
    ``published``: the sources' own published values (e.g. :func:`doseatlas.ingest.pharmacogx.read_published`),
    with the same cell line and perturbagen names as ``metrics`` (canonical ones after the identities step).
    """
    from doseatlas.harmonize.consistency import consistency_table, with_auc_common

    metrics = _refuse_unsupported(with_auc_common(metrics, curves))  # auc_common of a readout too (registry)
    return metrics, consistency_table(metrics, published=published)


def is_response_table(raw: pd.DataFrame) -> bool:
    """True for a pre-normalized response table (it declares a ``response_scale``)."""
    return S.RESPONSE_SCALE in raw.columns


def _validate_and_normalize(
    raw: pd.DataFrame | Sequence[pd.DataFrame],
    *,
    options: RunOptions,
    tick: Callable[[str], None],
    nominal: pd.DataFrame | None = None,
) -> tuple[ValidationResult, pd.DataFrame]:
    """Validate and normalize well tables and pre-normalized response tables (one or both kinds: a list of
    tables read from several sources); the responses of both kinds in one table, wells first. Well read times
    are put on their nominal durations (``nominal``: the mapping of the whole input,
    :func:`doseatlas.durations.nominal_map`; computed here when absent)."""
    wells, tables = _by_kind(raw)
    done = []
    if wells is not None:
        checked = validate_wells(wells)
        datasets = (checked.codes or {}).get(S.DATASET)  # the data set column factorized by validation
        if nominal is None:
            nominal = nominal_map(distinct_times(checked.clean, datasets=datasets), options=options.durations)
        checked = replace(checked, clean=apply_nominal(checked.clean, nominal, datasets=datasets))
        checked = _positioned(checked, options)
        done.append(
            (checked, lambda c=checked: normalize(c.clean, options=options.normalization, codes=c.codes))
        )
    if tables is not None:
        checked = validate_responses(tables)
        done.append((checked, lambda c=checked: from_response_table(c.clean)))
    tick("normalize")
    if len(done) == 1:
        return done[0][0], _pooled(done[0][1](), options)
    (w, w_norm), (r, r_norm) = done
    ledger = pd.concat([w.ledger, r.ledger], ignore_index=True)
    ledger = ledger.sort_values([S.SOURCE_FILE, S.SOURCE_LINE], kind="stable", ignore_index=True)
    checked = ValidationResult(
        clean=pd.concat([w.clean, r.clean], ignore_index=True), ledger=ledger, n_read=w.n_read + r.n_read,
        as_read=None if w.as_read is None else pd.concat([w.as_read, r.clean], ignore_index=True),
    )  # fmt: skip
    return checked, _pooled(pd.concat([w_norm(), r_norm()], ignore_index=True), options)


def _positioned(checked: ValidationResult, options: RunOptions) -> ValidationResult:
    """The position correction of the run (:mod:`doseatlas.position`): the wells it drops join the ledger; the
    wells as read stay for the plate table (``as_read``: the edge estimate and plate QC describe the plate)."""
    if options.position_correction == "none":
        return checked
    moved = correct_positions(checked.clean, method=options.position_correction)
    ledger = pd.concat(
        [f for f in (checked.ledger, moved.ledger) if len(f)] or [checked.ledger], ignore_index=True
    )
    ledger = ledger.sort_values([S.SOURCE_FILE, S.SOURCE_LINE], kind="stable", ignore_index=True)
    # (the codes of validation describe the rows as read)
    return replace(checked, clean=moved.clean, ledger=ledger, as_read=checked.clean, codes=None)


def _pooled(responses: pd.DataFrame, options: RunOptions) -> pd.DataFrame:
    """With ``pool_series`` every source series of a curve is one curve (``series`` emptied)."""
    if options.pool_series and len(responses):
        responses[S.SERIES] = ""
    if options.pool_seeding and len(responses):
        responses[S.SEEDING_DENSITY] = np.nan
    return responses


def _by_kind(raw: pd.DataFrame | Sequence[pd.DataFrame]) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """(well rows, response-table rows) of one table or of a list of tables; each row keeps its position among
    all rows (``row_id``) unless a partitioned run numbered it already. None where a kind is absent."""
    if isinstance(raw, pd.DataFrame):
        return (None, raw) if is_response_table(raw) else (raw, None)
    frames = list(raw)
    if not frames:
        raise DoseatlasError("no input table")
    if S.ROW_ID not in frames[0]:
        starts = np.cumsum([0, *map(len, frames)])
        frames = [
            f.assign(**{S.ROW_ID: np.arange(a, a + len(f))}) for f, a in zip(frames, starts, strict=False)
        ]
    wells = [f for f in frames if not is_response_table(f)]
    tables = [f for f in frames if is_response_table(f)]
    if wells and tables:  # both kinds given: a kind without any row adds nothing
        has_wells, has_tables = any(len(f) for f in wells), any(len(f) for f in tables)
        if not has_tables:
            tables = []  # (and with no row at all: one empty well table)
        elif not has_wells:
            wells = []
    kinds = [[f for f in k if len(f)] or k[:1] for k in (wells, tables)]
    return tuple(pd.concat(k, ignore_index=True) if k else None for k in kinds)


def finish_per_curve(
    curves: pd.DataFrame,
    metrics: pd.DataFrame,
    *,
    responses: pd.DataFrame,
    plates: pd.DataFrame,
    dependence: pd.DataFrame,
    interference: pd.DataFrame,
    options: RunOptions,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The last steps of the per-curve tables, the same for a whole run (:func:`whole_run_steps`) and for one
    bucket of a streamed run (:func:`doseatlas.scale_steps.bucket_steps`): the metrics' flags and bound columns,
    the curves in response units. Returns (curves, metrics)."""
    metrics = flag_metrics(metrics, responses=responses, plates=plates, dependence=dependence, curves=curves,
                           options=options.flags, interference=interference)  # fmt: skip
    metrics = with_bound_columns(metrics)  # ci_lower/ci_upper, bound/bound_side: one meaning per column
    curves = in_response_units(curves)  # percent growth in percent, as in responses (read by no later step)
    return curves, metrics


def whole_run_steps(
    tables: dict[str, pd.DataFrame],
    *,
    options: RunOptions,
    published: pd.DataFrame | None = None,
    tick: Callable[[str], None] = lambda _step: None,
) -> tuple[dict[str, pd.DataFrame], dict[str, Any], list[str]]:
    """The steps that need the whole run's tables, the same in both engines: DIP curves, ``harmonize``,
    ``consistency`` and ``time``. ``tables`` holds responses, curves, metrics, plates and dip (in the order of the
    output tables); returns the tables (with identities, consistency, growth, converted, time_dependence), what
    they add to the summary and the notes to show. The tables are taken out of ``tables`` (the caller's dict does
    not keep the versions the steps replace alive: the per-curve tables are the run's largest)."""
    responses, curves, metrics, plates, dip = (
        tables.pop(k) for k in ("responses", "curves", "metrics", "plates", "dip")
    )
    interference = tables.pop("interference", pd.DataFrame())
    curves, metrics = dip_step(dip, curves, metrics, options=options)
    metrics = _refuse_unsupported(metrics)  # the readout registry: a metric its readout does not support
    # (before the consistency step compares data sets, which refuses the auc_common rows it adds the same way)
    tick("harmonize")
    responses, curves, metrics, plates, identities = harmonize_tables(
        responses, curves, metrics, plates, options=options.harmonize
    )
    dip = apply_identities(dip, identities) if len(dip) else dip
    interference = apply_identities(interference, identities) if len(interference) else interference
    tick("consistency")
    metrics, consistency = consistency_step(metrics, curves, published=published)
    tick("time")
    timed = time_tables(responses, curves, metrics, options=options)  # every duration of a pair at once
    curves, metrics = finish_per_curve(curves, metrics, responses=responses, plates=plates,
                                       dependence=timed["time_dependence"], interference=interference,
                                       options=options)  # fmt: skip
    added = {
        "metric_status": metrics[S.STATUS].value_counts().to_dict(),
        "curves": len(curves),
        "metric_rows": len(metrics),
        "identities": identity_summary(identities),
        "flags": flag_counts(metrics),
        "interfering_compounds": _interfering_count(interference),
        **time_summary(timed),
    }
    out = {"responses": responses, "curves": curves, "metrics": metrics, "plates": plates, "dip": dip,
           "identities": identities, "consistency": consistency, "interference": interference,
           **timed}  # fmt: skip
    return out, added, identity_notes(identities)


def _interfering_count(interference: pd.DataFrame) -> int:
    """Compounds (data set, readout, time, perturbagen) with an interfering concentration."""
    if not len(interference) or S.INTERFERING not in interference:
        return 0
    hit = interference[interference[S.INTERFERING].astype(bool)]
    return len(hit[[S.DATASET, S.READOUT, S.TIME_H, S.PERTURBATION_TYPE, S.PERTURBAGEN]].drop_duplicates())


def _merged_attrs(tables: Sequence[pd.DataFrame]) -> dict[str, Any]:
    from doseatlas.ingest import merged_attrs

    return merged_attrs(t.attrs for t in tables)


def run_pipeline(
    raw: pd.DataFrame | Sequence[pd.DataFrame],
    *,
    options: RunOptions | None = None,
    progress: Callable[[str], None] | None = None,
    published: pd.DataFrame | None = None,
) -> RunResult:
    """Run every step on a raw well table.

    Parameters
    ----------
    raw
        Canonical well table or pre-normalized response table as returned by a reader of
        :mod:`doseatlas.ingest`, or a list of such tables of both kinds (the sources of a study manifest,
        :func:`doseatlas.ingest.manifest.read_manifest`): each kind is validated and normalized as such and
        their responses go into one table; ``row_id`` numbers the rows of every table in list order.
    options
        :class:`RunOptions`; defaults when omitted.
    progress
        Called with each step's name as it starts (for progress display).
    published
        The sources' own published values for the ``published`` stage of the consistency table (see
        :func:`consistency_step`); none by default.
    """
    attrs = raw.attrs if isinstance(raw, pd.DataFrame) else _merged_attrs(raw)
    options = with_reader_metadata(options or RunOptions(), attrs)
    tick = progress or (lambda _step: None)
    tick("validate")
    checked, responses = _validate_and_normalize(raw, options=options, tick=tick)
    responses, interference = interference_step(
        responses, compound_wells(checked.clean), options=options.interference,
        normalization=options.normalization,
    )  # fmt: skip
    tick("fit")
    curves = fit_all_scales(responses, options=options.fit)
    tick("metrics")
    metrics = compute_metrics(responses, curves, options=options.metrics)
    # in the order of the output tables before the steps that work on the whole run (as the partitioned run)
    responses, curves, metrics = (
        sort_table(t, n) for t, n in ((responses, "responses"), (curves, "curves"), (metrics, "metrics"))
    )
    dip = sort_table(dip_rates(checked.clean), "dip")
    plates = _plates_table(checked.plate_rows, responses) if S.ROLE in checked.clean else pd.DataFrame()
    tables = {"responses": responses, "curves": curves, "metrics": metrics, "plates": sort_table(plates, "plates"),
              "dip": dip, "interference": sort_table(interference, "interference")}  # fmt: skip
    # the validated wells and the tables the whole-run steps replace are not kept alive by this frame
    n_read, n_clean, ledger = checked.n_read, len(checked.clean), checked.ledger
    datasets = sorted(checked.clean[S.DATASET].unique().tolist())
    del checked, responses, curves, metrics, dip, plates, interference
    tables, added, notes = whole_run_steps(tables, options=options, published=published, tick=tick)
    summary = _summary(n_read, n_clean, datasets, ledger, tables["responses"])
    summary.update(record_accounting(attrs, n_read))
    summary.update(added)
    if notes:
        summary.setdefault("notes", []).extend(notes)
    tables = result_tables(ledger=ledger, **tables)
    return RunResult(**tables, summary=summary, options=options)
