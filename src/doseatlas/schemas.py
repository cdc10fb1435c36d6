"""The only spelling of every column name and controlled vocabulary in doseatlas.

Every other module imports names from here; no module spells a column name as a bare
string. Tables:

* the **well table** (input): one row per well read, see :data:`WELL_COLUMNS`;
* the **responses table**: one row per treated well with its normalized responses;
* the **curves table**: one row per fitted curve (per response scale);
* the **metrics table**: one row per (curve key, metric);
* the **ledger**: one row per rejected input row.
"""

from __future__ import annotations

from enum import StrEnum

SCHEMA_VERSION = "1.0"

# --------------------------------------------------------------------------- well table
DATASET = "dataset"
PLATE = "plate"
WELL = "well"
CELL_LINE = "cell_line"
ROLE = "role"
PERTURBATION_TYPE = "perturbation_type"
PERTURBAGEN = "perturbagen"
CONCENTRATION = "concentration"  # molar once ingested
CONCENTRATION_UNIT = "concentration_unit"
TIME_H = "time_h"  # the nominal duration once validated (doseatlas.durations); the actual time is READ_TIME_H
READ_TIME_H = "read_time_h"  # the actual read time of the row, as the source gave it
READOUT = "readout"
SIGNAL = "signal"
REPLICATE = "replicate"
SEEDING_DENSITY = "seeding_density"
#: the source's own dose-series / experiment identity (GDSC drug screened at one top concentration, a PharmacoGx
#: experiment id); empty = one series. Part of the curve key: separate series are separate curves unless the run
#: pools them (``RunOptions(pool_series=True)``, ``--pool-series``)
SERIES = "series"

REQUIRED_WELL_COLUMNS: tuple[str, ...] = (
    DATASET,
    PLATE,
    CELL_LINE,
    ROLE,
    PERTURBATION_TYPE,
    PERTURBAGEN,
    CONCENTRATION,
    CONCENTRATION_UNIT,
    TIME_H,
    READOUT,
    SIGNAL,
)
OPTIONAL_WELL_COLUMNS: tuple[str, ...] = (WELL, REPLICATE, SEEDING_DENSITY, SERIES)
WELL_COLUMNS: tuple[str, ...] = REQUIRED_WELL_COLUMNS + OPTIONAL_WELL_COLUMNS

# provenance columns added by ingest
SOURCE_FILE = "source_file"
SOURCE_LINE = "source_line"  # 1-based line in the file (header = line 1) or row number + 1 for Parquet
#: set by the text readers on a line that is not a well-formed record: "" or "<RowReason>: <message>"
#: (``blank_line``, ``wrong_field_count``); validation sends such rows to the ledger with that reason
RECORD_PROBLEM = "record_problem"


class Role(StrEnum):
    """What a well is for."""

    TREATED = "treated"
    VEHICLE = "vehicle"
    UNTREATED = "untreated"
    BLANK = "blank"
    TIME_ZERO = "time_zero"
    POSITIVE_CONTROL = "positive_control"
    #: the drug at its concentrations in cell-free medium (no cells): what the compound itself gives the readout
    #: (doseatlas.interference); carries perturbation_type drug, perturbagen and concentration like a treated well
    COMPOUND_ONLY = "compound_only"


class PerturbationType(StrEnum):
    """Kind of perturbation on a treated well. A knockout is never a drug at infinite dose."""

    DRUG = "drug"
    KNOCKOUT = "knockout"
    KNOCKDOWN = "knockdown"
    OVEREXPRESSION = "overexpression"


GENETIC_PERTURBATIONS = frozenset(
    {PerturbationType.KNOCKOUT, PerturbationType.KNOCKDOWN, PerturbationType.OVEREXPRESSION}
)


class Readout(StrEnum):
    """Assay chemistry used to read the plate."""

    ATP = "atp"
    RESAZURIN = "resazurin"
    SRB = "srb"
    NUCLEI_COUNT = "nuclei_count"
    DNA_DYE = "dna_dye"
    DEAD_CELL_DYE = "dead_cell_dye"  # a cell-impermeant DNA dye on live cultures: counts dead cells
    MTS = "mts"
    OTHER = "other"
    UNKNOWN = "unknown"  # the source does not say (recorded, never guessed)


#: multiply a value in this unit by the factor to get molar
CONCENTRATION_UNITS: dict[str, float] = {
    "M": 1.0,
    "mM": 1e-3,
    "uM": 1e-6,
    "µM": 1e-6,  # micro sign U+00B5
    "μM": 1e-6,  # Greek mu U+03BC
    "nM": 1e-9,
    "pM": 1e-12,
}

# --------------------------------------------------------------------------- responses table
RELATIVE_VIABILITY = "relative_viability"
PERCENT_GROWTH = "percent_growth"
GR = "gr"
RESPONSE_SCALES: tuple[str, ...] = (RELATIVE_VIABILITY, PERCENT_GROWTH, GR)
#: DIP rate of a well over its control's (time courses, doseatlas.timecourse): fitted and reported like a
#: response scale, but per well over a time course rather than per read
DIP_RELATIVE = "dip_relative"
FIT_SCALES: tuple[str, ...] = (*RESPONSE_SCALES, DIP_RELATIVE)
#: a response larger in magnitude than this (or infinite) is not fitted: the curve and its metrics on that scale
#: are refused with ``non_finite_response`` (squared residuals of such values overflow float64)
MAX_ABS_RESPONSE = 1e100


#: the unit of every numeric output column that has one, written as the ``unit`` field metadata of the column
#: in every Parquet table (doseatlas.io.write_table). One unit per quantity in every table: concentrations in
#: molar, durations in hours, percent growth in percent (responses and the fitted levels of percent-growth
#: curves alike), relative viability as a fraction of the vehicle control, GR as a GR value.
COLUMN_UNITS: dict[str, str] = {
    CONCENTRATION: "M",
    TIME_H: "h",
    READ_TIME_H: "h",
    RELATIVE_VIABILITY: "fraction of vehicle",
    PERCENT_GROWTH: "percent",
    GR: "GR value",
    DIP_RELATIVE: "fraction of the control DIP rate",
    "doubling_time_h": "h",
}
#: curves.parquet columns whose unit is that of the row's ``scale`` (the values of the response column named
#: by ``scale``: percent for percent_growth)
SCALE_UNIT_COLUMNS: tuple[str, ...] = (
    "top", "bottom", "top_se", "top_lower", "top_upper", "bottom_se", "bottom_lower", "bottom_upper",
    "flat_value", "replicate_sd",
)  # fmt: skip


def reason_column(scale: str) -> str:
    """Name of the column that holds why ``scale`` is null on a row."""
    return f"{scale}_reason"


BLANK_SIGNAL = "blank_signal"  # background subtracted (null when the plate has no blanks)
VEHICLE_SIGNAL = "vehicle_signal"  # robust vehicle summary, background-subtracted
VEHICLE_SPREAD = "vehicle_spread"  # robust spread (MAD scaled to sigma) of vehicle wells
N_VEHICLE = "n_vehicle"
TIME_ZERO_SIGNAL = "time_zero_signal"  # robust time-zero summary, background-subtracted
N_TIME_ZERO = "n_time_zero"
DOUBLING_TIME_H = "doubling_time_h"  # used for GR when no time-zero read is available
DOUBLING_TIME_SOURCE = "doubling_time_source"
GR_SOURCE = "gr_source"  # "time_zero" or "doubling_time"
ROW_ID = "row_id"  # stable id of a well row within a run

# pre-normalized response tables (sources that publish responses, not raw signals)
RESPONSE = "response"
RESPONSE_SCALE = "response_scale"
REQUIRED_RESPONSE_COLUMNS: tuple[str, ...] = (
    DATASET,
    CELL_LINE,
    PERTURBATION_TYPE,
    PERTURBAGEN,
    CONCENTRATION,
    CONCENTRATION_UNIT,
    TIME_H,
    READOUT,
    RESPONSE,
    RESPONSE_SCALE,
)
RESPONSE_TABLE_COLUMNS: tuple[str, ...] = (
    *REQUIRED_RESPONSE_COLUMNS,
    PLATE,
    WELL,
    REPLICATE,
    SEEDING_DENSITY,
    SERIES,
)

# --------------------------------------------------------------------------- curves table
CURVE_ID = "curve_id"
DURATION_H = "duration_h"
SCALE = "scale"  # which response scale was fitted
#: seeding density (cells per well; null when the source does not say) is part of the key: wells seeded at
#: different densities are never pooled into one curve (nor into one vehicle or time-zero summary)
CURVE_KEY: tuple[str, ...] = (
    DATASET, CELL_LINE, PERTURBATION_TYPE, PERTURBAGEN, READOUT, DURATION_H, SERIES, SEEDING_DENSITY
)  # fmt: skip


def with_series(table):
    """``table`` (a DataFrame) with an empty ``series`` column added when it has none (one series per curve) and
    a null ``seeding_density`` when it has none (unknown density)."""
    if SERIES not in table.columns:
        table = table.assign(**{SERIES: ""})
    if SEEDING_DENSITY not in table.columns:
        table = table.assign(**{SEEDING_DENSITY: float("nan")})
    return table


# --------------------------------------------------------------------------- metrics table
METRIC = "metric"
VALUE = "value"
UNIT = "unit"
STATUS = "status"
LOWER = "lower"
UPPER = "upper"
REASON = "reason"
FIT_MODEL = "fit_model"
FIT_POLICY = "fit_policy"
#: codes raised on a metric row (doseatlas.metrics.flags.FLAGS), sorted and ";"-joined; "" when none
FLAGS = "flags"
METRIC_KEY: tuple[str, ...] = (*CURVE_KEY, METRIC)
# One rule for ``lower`` / ``upper`` on every row: together they are the range the true value lies in, as far as
# the data tell (estimated: its 95% interval; right_censored: [bound, inf); left_censored: [0, bound]; refused:
# null). The four columns below say the same thing without that rule, one meaning per column (docs/metrics.md):
CI_LOWER = "ci_lower"  # estimated rows: lower end of the 95% interval of value; null on every other row
CI_UPPER = "ci_upper"  # estimated rows: upper end of the 95% interval of value; null on every other row
BOUND = "bound"  # censored rows: the censoring bound (the end of the tested range); null on every other row
BOUND_SIDE = "bound_side"  # censored rows: which side of the true value the bound is on (BoundSide)


class BoundSide(StrEnum):
    """Which side of the true value the censoring bound is on."""

    LOWER = "lower"  # right_censored: the true value is above the bound (not reached in the tested range)
    UPPER = "upper"  # left_censored: the true value is below the bound (already past at the lowest dose)


class MetricStatus(StrEnum):
    """Outcome of one metric on one curve."""

    ESTIMATED = "estimated"
    RIGHT_CENSORED = "right_censored"
    LEFT_CENSORED = "left_censored"
    REFUSED = "refused"


# --------------------------------------------------------------------------- identities (harmonize step)
# Up to the metrics step, cell_line and perturbagen hold the names the source used. The harmonize step keeps
# those in *_SOURCE and puts the canonical name in cell_line / perturbagen, with a stable identifier (with
# its namespace) where one is known. Readers whose source carries identifiers fill the *_ID columns.
CELL_LINE_SOURCE = "cell_line_source"
PERTURBAGEN_SOURCE = "perturbagen_source"
CELL_LINE_ID = "cell_line_id"  # e.g. "CVCL_0023" (Cellosaurus), "COSMIC:905949", "DEPMAP:ACH-000681"
PERTURBAGEN_ID = "perturbagen_id"  # e.g. "PUBCHEM:44462760", "GDSC_DRUG:1003" (the source's own id)
IDENTITY_RULE = "identity_rule"  # which evidence gave the canonical name (identities.parquet)

# identities.parquet (the harmonize step's table: one row per source name of a data set)
IDENTITY_KIND = "kind"  # "cell_line" or "perturbagen"
SOURCE_NAME = "source_name"  # the name exactly as the source spelled it
SOURCE_ID = "source_id"  # the identifier the source itself carries for it (namespaced), if any
CANONICAL_NAME = "canonical_name"
CANONICAL_ID = "canonical_id"
IDENTITY_CONFLICT = "conflict"  # null, or why the name was kept apart / listed (IdentityConflict)
IDENTITY_CONFLICT_DETAIL = "conflict_detail"
IDENTITY_COLUMNS: tuple[str, ...] = (
    IDENTITY_KIND,
    DATASET,
    PERTURBATION_TYPE,
    SOURCE_NAME,
    SOURCE_ID,
    CANONICAL_NAME,
    CANONICAL_ID,
    IDENTITY_RULE,
    IDENTITY_CONFLICT,
    IDENTITY_CONFLICT_DETAIL,
)


class IdentityKind(StrEnum):
    """What an identity names."""

    CELL_LINE = "cell_line"
    PERTURBAGEN = "perturbagen"


class IdentityRule(StrEnum):
    """Which evidence gave a source name its identity, in the order the evidence is used."""

    SOURCE_ID = "source_id"
    USER_TABLE = "user_table"
    CELLOSAURUS_ACCESSION = "cellosaurus_accession"
    CELLOSAURUS_NAME = "cellosaurus_name"
    DEPMAP_ID = "depmap_id"
    CCLE_SUFFIX = "ccle_suffix"
    SALT_SUFFIX = "salt_suffix"
    NORMALIZED_NAME = "normalized_name"
    AS_GIVEN = "as_given"


#: one sentence per identity rule (docs/harmonization.md)
IDENTITY_RULE_MEANING: dict[str, str] = {
    IdentityRule.SOURCE_ID: "the source carries an identifier (GDSC COSMIC_ID / DRUG_ID, DepMap ACH-, Cellosaurus)",
    IdentityRule.USER_TABLE: "the user's identity table (--identities) names it",
    IdentityRule.CELLOSAURUS_ACCESSION: "the name is a Cellosaurus accession (CVCL_xxxx)",
    IdentityRule.CELLOSAURUS_NAME: "the name is a Cellosaurus name or synonym (after normalization) of one accession",
    IdentityRule.DEPMAP_ID: "the name is a DepMap id (ACH-nnnnnn)",
    IdentityRule.CCLE_SUFFIX: "a CCLE name: the tissue suffix was removed (A549_LUNG -> A549)",
    IdentityRule.SALT_SUFFIX: "a salt or hydrate suffix was removed (dabrafenib mesylate -> dabrafenib)",
    IdentityRule.NORMALIZED_NAME: "equal to another spelling after case, spaces, hyphens and punctuation are ignored",
    IdentityRule.AS_GIVEN: "no other evidence: the source's name is the canonical name",
}


class IdentityConflict(StrEnum):
    """Why a source name is listed: kept apart rather than merged on a guess."""

    AMBIGUOUS = "ambiguous"
    SAME_DATASET = "same_dataset"
    NEAR_MISS = "near_miss"


IDENTITY_CONFLICT_MEANING: dict[str, str] = {
    IdentityConflict.AMBIGUOUS: "the evidence points to two or more identities: every name involved keeps its own",
    IdentityConflict.SAME_DATASET: (
        "one data set uses several names for this identity: they keep their names (their curves were fitted apart)"
    ),
    IdentityConflict.NEAR_MISS: (
        "a similar name is a different entity (HeLa / HeLa S3, a drug / its enantiomer): listed, never merged"
    ),
}

# --------------------------------------------------------------------------- consistency across sources
# auc_common rows of the metrics table carry the common tested window of their cell line x perturbagen x
# perturbation type (molar; null on every other row). consistency.parquet: one row per pair of data sets, stage
# and metric (see doseatlas.harmonize.consistency).
WINDOW_LOW = "window_low"
WINDOW_HIGH = "window_high"
CONSISTENCY_KEY: tuple[str, ...] = (CELL_LINE, PERTURBAGEN, PERTURBATION_TYPE)  # a "pair" measured by sources
DATASET_A = "dataset_a"
DATASET_B = "dataset_b"
STAGE = "stage"
N_SHARED_PAIRS = "n_shared_pairs"  # pairs with any metric row in both data sets
N_SHARED = "n_shared"  # pairs with a row of this metric in both data sets
N_VALUES = "n_values"  # of those, pairs with a value (estimated) in both
TRANSFORM = "transform"  # what the correlations and differences are computed on: log10 or value
SPEARMAN = "spearman"
PEARSON = "pearson"
MEDIAN_ABS_DIFF = "median_abs_diff"
STATUS_AGREEMENT = "status_agreement"  # share of the n_shared pairs with the same status in both


class ConsistencyStage(StrEnum):
    """Which numbers a consistency row compares."""

    PUBLISHED = "published"  # each source's own published values and definitions (before harmonization)
    HARMONIZED = "harmonized"  # doseatlas' metrics: one definition, auc_common on the common window


# --------------------------------------------------------------------------- ML-ready export (doseatlas export)
# labels.parquet: the metrics rows of every source plus one consensus row per (cell_line, perturbation_type,
# perturbagen, metric); docs/export.md defines every column and the consensus rule.
CONSENSUS_DATASET = "consensus"  # the dataset value of a consensus row
INTERVAL_CENSORED = (
    "interval_censored"  # consensus status: a right bound of one source, a left bound of another
)
LOG10_VALUE = "log10_value"  # concentration labels only: log10 of value (M)
LOG10_LOWER = "log10_lower"  # interval target for censored regression (-inf for a left-censored label)
LOG10_UPPER = "log10_upper"  # (+inf for a right-censored label); null for refused labels
N_SOURCES = "n_sources"  # consensus rows: source rows that contributed (refused ones do not)
N_DISAGREEING = (
    "n_disagreeing"  # consensus rows: contributing source rows that disagree beyond their intervals
)
DISAGREES = "disagrees"  # source rows: this row disagrees with another source row of its consensus group
CONSENSUS_FLAG = "consensus_flag"
CONSENSUS_KEY: tuple[str, ...] = (CELL_LINE, PERTURBATION_TYPE, PERTURBAGEN, METRIC, SCALE)


class ConsensusFlag(StrEnum):
    """How the consensus row of a label came about (docs/export.md)."""

    SINGLE_SOURCE = "single_source"  # one contributing source row: its label is the consensus
    AGREE = "agree"  # two or more, all consistent: combined
    NO_INTERVAL = "no_interval"  # consistent as far as can be told, but an estimate has no 95% interval
    DISAGREE = "disagree"  # sources disagree beyond their intervals: refused (sources_disagree)
    NO_SOURCE = "no_source"  # every source row refused: refused (all_sources_refused)


# --------------------------------------------------------------------------- ledger
LEDGER_COLUMN = "column"
LEDGER_REASON = "reason"
LEDGER_MESSAGE = "message"
LEDGER_COLUMNS: tuple[str, ...] = (SOURCE_FILE, SOURCE_LINE, LEDGER_COLUMN, LEDGER_REASON, LEDGER_MESSAGE)


class RowReason(StrEnum):
    """Why an input row went to the ledger instead of the output."""

    UNKNOWN_ROLE = "unknown_role"
    UNKNOWN_UNIT = "unknown_unit"
    UNKNOWN_READOUT = "unknown_readout"
    UNKNOWN_SCALE = "unknown_response_scale"
    UNKNOWN_PERTURBATION_TYPE = "unknown_perturbation_type"
    MISSING_VALUE = "missing_value"
    NOT_A_NUMBER = "not_a_number"
    NEGATIVE_CONCENTRATION = "negative_concentration"
    NON_FINITE = "non_finite"
    MISSING_SIGNAL = "missing_signal"
    MISSING_CONCENTRATION = "missing_concentration"
    NEGATIVE_TIME = "negative_time"
    DUPLICATE_ROW = "duplicate_row"
    INCONSISTENT_ROLE = "inconsistent_role"
    EXCLUDED_BY_SOURCE = "excluded_by_source"  # the source marks the well as not to be used
    NOT_IN_PLATE_MAP = "not_in_plate_map"  # a plate-reader well that the plate map does not describe
    READ_TIME_NOT_SELECTED = "read_time_not_selected"  # a time-course read other than the one the run uses
    MISSING_TIME = "missing_time"
    CONFLICTING_READS = "conflicting_reads"
    BLANK_LINE = "blank_line"
    WRONG_FIELD_COUNT = "wrong_field_count"
    EDGE_WELL = "edge_well"  # an edge well left out by --position-correction drop-edge


#: one sentence per ledger reason (the table of docs/formats.md and docs/reasons.md; tests check that they agree)
ROW_REASON_MEANING: dict[str, str] = {
    RowReason.UNKNOWN_ROLE: "the role is not one of the roles of the well table",
    RowReason.UNKNOWN_UNIT: "a concentration is given in a unit that is not one of the known units",
    RowReason.UNKNOWN_READOUT: "the readout is not one of the known readouts",
    RowReason.UNKNOWN_SCALE: "the response_scale of a response table is not one of the response scales",
    RowReason.UNKNOWN_PERTURBATION_TYPE: "a treated row's perturbation_type is not one of the known types",
    RowReason.MISSING_VALUE: (
        "an identifier the row needs (dataset, plate, cell_line, a treated row's perturbagen) is empty"
    ),
    RowReason.NOT_A_NUMBER: "a value that must be a number is not one",
    RowReason.NEGATIVE_CONCENTRATION: "the concentration is negative",
    RowReason.NON_FINITE: "a signal, response, concentration or time_h is infinite",
    RowReason.MISSING_SIGNAL: "the signal (response) is missing",
    RowReason.MISSING_CONCENTRATION: "a treated drug row has no concentration",
    RowReason.NEGATIVE_TIME: "time_h is negative",
    RowReason.DUPLICATE_ROW: (
        "an exact repeat of a row of the same well (dataset, plate, well, readout, time): one is kept"
    ),
    RowReason.INCONSISTENT_ROLE: (
        "the values contradict the role (a time-zero read at time_h > 0, a treated drug row at dose 0)"
    ),
    RowReason.EXCLUDED_BY_SOURCE: "the source marks the well as not to be used (e.g. GDSC UN-USED wells)",
    RowReason.NOT_IN_PLATE_MAP: "a plate-reader well that the plate map does not describe",
    RowReason.MISSING_TIME: (
        "a well-table row other than a time-zero read has no time_h (the read time is needed to match it "
        "with its plate's controls)"
    ),
    RowReason.CONFLICTING_READS: (
        "the same well (dataset, plate, well, readout, time) was read more than once with different "
        "values: every read of it goes to the ledger, none is chosen"
    ),
    RowReason.BLANK_LINE: "the line (a Parquet row) holds no value in any column",
    RowReason.READ_TIME_NOT_SELECTED: (
        "a read of a time course other than the read time the run uses (the reader keeps every read; the run "
        "selects one)"
    ),
    RowReason.WRONG_FIELD_COUNT: (
        "the line has more or fewer fields than the header: its values cannot be assigned to columns"
    ),
    RowReason.EDGE_WELL: (
        "a well with cells on the outer rows or columns of its plate, left out because the run was asked to "
        "(--position-correction drop-edge; docs/plates.md)"
    ),
}


#: roles a reader may give to rows that must go to the ledger with the reason of the same name, and the
#: ledger message of each
LEDGER_ROLE_MESSAGE: dict[str, str] = {
    RowReason.EXCLUDED_BY_SOURCE.value: "the source marks this well as excluded by source",
    RowReason.NOT_IN_PLATE_MAP.value: "the source marks this well as not in plate map",
    RowReason.READ_TIME_NOT_SELECTED.value: (
        "a read of a time course at another time than the one this run uses for the plate (the reader's time_h)"
    ),
}
LEDGER_ROLES: frozenset[str] = frozenset(LEDGER_ROLE_MESSAGE)


# --------------------------------------------------------------------------- record accounting (summary.json)
#: ``{reason: count}`` a reader puts in its table's ``attrs`` (summed over files) and the run reports in
#: ``summary.json``: source records that are not rows of the table (folded into another row, or used as a
#: reference value) and rows that are not source records (derived by the reader); with them,
#: ``source_records = rows_read + records_folded - rows_synthesized`` counts the records of the source files.
RECORDS_FOLDED = "records_folded"
ROWS_SYNTHESIZED = "rows_synthesized"
SOURCE_RECORDS = "source_records"
RECORD_COUNT_ATTRS: tuple[str, ...] = (RECORDS_FOLDED, ROWS_SYNTHESIZED)
#: ``attrs`` key of a reader's table: every file it read (as text paths), the named one and its companions (a
#: Thunor CSV export is three files): each is checksummed in the provenance
FILES_READ = "files_read"


class RefusalReason(StrEnum):
    """Why a response or a metric is absent although its rows were used."""

    NO_VEHICLE_CONTROL = "no_vehicle_control"
    NO_TIME_ZERO = "no_time_zero"
    NO_DURATION = "no_duration"
    NON_POSITIVE_SIGNAL = "non_positive_signal"
    NO_GROWTH_IN_CONTROL = "no_growth_in_control"
    TOO_FEW_DOSES = "too_few_doses"
    FLAT_FIT = "flat_fit"
    FIT_FAILED = "fit_failed"
    NON_FINITE_RESPONSE = "non_finite_response"
    NOT_IDENTIFIABLE = "not_identifiable"
    POOR_FIT = "poor_fit"
    WINDOW_NOT_COVERED = "window_not_covered"
    NO_COMMON_WINDOW = "no_common_window"
    NO_RESPONSES = "no_responses"
    NOT_PROVIDED = "not_provided_by_source"
    NO_GROWTH_ESTIMATE = "no_growth_estimate"
    TARGET_DURATION_OUT_OF_RANGE = "target_duration_out_of_range"
    GROWTH_NOT_EXPONENTIAL = "growth_not_exponential"
    TIME_DEPENDENT = "time_dependent"
    NO_TIME_COURSE = "no_time_course"
    SOURCES_DISAGREE = "sources_disagree"  # consensus labels of doseatlas export
    ALL_SOURCES_REFUSED = "all_sources_refused"  # consensus labels of doseatlas export
    REJECTED_IN_REVIEW = "rejected_in_review"  # a reviewer rejected the curve (doseatlas run --reviews)
    READOUT_NOT_SUPPORTED = "readout_not_supported"  # the readout does not measure what the metric reads
    PLATEAU_NOT_REACHED = "plateau_not_reached"  # grinf / dip_einf of a curve still falling (issue 14)


#: one sentence per refusal reason (rendered into docs/metrics.md)
REFUSAL_MEANING: dict[str, str] = {
    RefusalReason.NO_VEHICLE_CONTROL: "the plate has no usable vehicle (or untreated) wells for this read",
    RefusalReason.NO_TIME_ZERO: "the scale needs a time-zero read (or, for GR, a doubling time) and there is none",
    RefusalReason.NO_DURATION: "the scale needs the assay duration and the read time is unknown",
    RefusalReason.NON_POSITIVE_SIGNAL: (
        "a signal the scale divides by or takes the logarithm of (vehicle, time zero, or for GR the well itself) "
        "is zero or negative after background subtraction"
    ),
    RefusalReason.NO_GROWTH_IN_CONTROL: "the vehicle did not grow past time zero, so growth-based scales are undefined",
    RefusalReason.TOO_FEW_DOSES: "fewer distinct usable doses than the metric options' min_doses",
    RefusalReason.FLAT_FIT: "the flat model was selected: there is no midpoint, slope or crossing to report",
    RefusalReason.FIT_FAILED: "the fit did not converge",
    RefusalReason.NON_FINITE_RESPONSE: (
        "a response of the curve on this scale is infinite or larger in magnitude than 1e100 (e.g. from a signal "
        "near 1e308 or a vehicle near 0): the fit's residuals would not be finite numbers, so the curve is not "
        "fitted and none of its metrics on this scale is computed"
    ),
    RefusalReason.NOT_IDENTIFIABLE: (
        "the least-squares fit is singular (e.g. a step between two doses): the fitted values are kept for "
        "censoring statements, but parameters and in-range crossings are not determined by the data"
    ),
    RefusalReason.POOR_FIT: "the sigmoid was selected but its R² is below the metric options' min_r2",
    RefusalReason.WINDOW_NOT_COVERED: "the fixed AUC window is not inside the tested range (no extrapolation)",
    RefusalReason.NO_COMMON_WINDOW: (
        "auc_common: the tested concentration ranges of the data sets that measured this cell line and "
        "perturbagen do not overlap (no extrapolation)"
    ),
    RefusalReason.NO_RESPONSES: "no usable response on this scale for the curve",
    RefusalReason.NOT_PROVIDED: "the source publishes pre-normalized responses without this scale",
    RefusalReason.NO_GROWTH_ESTIMATE: (
        "a conversion to another duration needs the control's growth (time-zero reads or a doubling time) "
        "and there is none"
    ),
    RefusalReason.TARGET_DURATION_OUT_OF_RANGE: (
        "the target duration is too far from the measured one (ratio beyond the conversion's max_ratio)"
    ),
    RefusalReason.GROWTH_NOT_EXPONENTIAL: (
        "the control's growth rate falls over the time course (e.g. confluence): the exponential model "
        "that a duration conversion rests on does not hold"
    ),
    RefusalReason.NO_TIME_COURSE: (
        "a DIP rate needs at least 3 reads of the well after time zero (2 give a line through two points)"
    ),
    RefusalReason.TIME_DEPENDENT: (
        "the drug's effect grows with time beyond the exponential model (its converted short-duration value "
        "disagrees with the measured longer one): short-duration values are not representative and are not "
        "converted"
    ),
    RefusalReason.SOURCES_DISAGREE: (
        "consensus label (doseatlas export): the sources' labels disagree beyond their 95% intervals or "
        "censoring bounds, so no value is made up by averaging them (the source rows keep their labels)"
    ),
    RefusalReason.ALL_SOURCES_REFUSED: (
        "consensus label (doseatlas export): every source refused this label (their reasons are on the source rows)"
    ),
    RefusalReason.REJECTED_IN_REVIEW: (
        "a reviewer rejected the curve in doseatlas review; the run applied the decision (doseatlas run "
        "--reviews): the reviewer's reason is in the review database and the run's provenance"
    ),
    RefusalReason.READOUT_NOT_SUPPORTED: (
        "the readout does not measure what the metric's response scale assumes (e.g. a dead-cell dye read as "
        "viability): the readout registry (docs/readouts.md) lists the metrics each readout supports"
    ),
    RefusalReason.PLATEAU_NOT_REACHED: (
        "grinf or dip_einf: the fitted curve is still falling at the highest tested dose (less than 90% of its transition "
        "done), so its plateau is an extrapolation; the data only say it is at most the response there "
        "(docs/metrics.md, plateau metrics)"
    ),
}

# --------------------------------------------------------------------------- readout interference
# interference.parquet: one row per (dataset, readout, time, perturbagen, concentration) with compound-only wells
# (doseatlas.interference): what the compound gives the readout in cell-free medium, against the vehicle's signal
COMPOUND_SIGNAL = "compound_signal"  # median background-subtracted signal of the compound-only wells
N_COMPOUND_ONLY = "n_compound_only"  # compound-only wells used
INTERFERENCE = "interference"  # compound_signal / vehicle_signal of the treated wells of the same compound
INTERFERING = "interfering"  # |interference| above InterferenceOptions.threshold
INTERFERENCE_SIGNAL = "interference_signal"  # responses: the signal subtracted (--interference-correction)
INTERFERENCE_KEY: tuple[str, ...] = (DATASET, READOUT, TIME_H, PERTURBATION_TYPE, PERTURBAGEN, CONCENTRATION)

#: metrics column written by ``doseatlas run --reviews``: the review decision applied to the row's curve
#: ("accepted", "rejected") or null where no reviewer decided
REVIEWED = "reviewed"
