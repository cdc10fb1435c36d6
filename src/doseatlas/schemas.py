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
TIME_H = "time_h"
READOUT = "readout"
SIGNAL = "signal"
REPLICATE = "replicate"
SEEDING_DENSITY = "seeding_density"

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
OPTIONAL_WELL_COLUMNS: tuple[str, ...] = (WELL, REPLICATE, SEEDING_DENSITY)
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
)

# --------------------------------------------------------------------------- curves table
CURVE_ID = "curve_id"
DURATION_H = "duration_h"
SCALE = "scale"  # which response scale was fitted
CURVE_KEY: tuple[str, ...] = (DATASET, CELL_LINE, PERTURBATION_TYPE, PERTURBAGEN, READOUT, DURATION_H)

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
METRIC_KEY: tuple[str, ...] = (*CURVE_KEY, METRIC)


class MetricStatus(StrEnum):
    """Outcome of one metric on one curve."""

    ESTIMATED = "estimated"
    RIGHT_CENSORED = "right_censored"
    LEFT_CENSORED = "left_censored"
    REFUSED = "refused"


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
    MISSING_TIME = "missing_time"
    CONFLICTING_READS = "conflicting_reads"
    BLANK_LINE = "blank_line"
    WRONG_FIELD_COUNT = "wrong_field_count"


#: one sentence per ledger reason (the table of docs/formats.md; a test checks that they agree)
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
    RowReason.WRONG_FIELD_COUNT: (
        "the line has more or fewer fields than the header: its values cannot be assigned to columns"
    ),
}


#: roles a reader may give to rows that must go to the ledger with the reason of the same name
LEDGER_ROLES: frozenset[str] = frozenset(
    {RowReason.EXCLUDED_BY_SOURCE.value, RowReason.NOT_IN_PLATE_MAP.value}
)


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
    NOT_IDENTIFIABLE = "not_identifiable"
    POOR_FIT = "poor_fit"
    WINDOW_NOT_COVERED = "window_not_covered"
    NO_RESPONSES = "no_responses"
    NOT_PROVIDED = "not_provided_by_source"


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
    RefusalReason.FIT_FAILED: "the fit did not converge or the input was not finite",
    RefusalReason.NOT_IDENTIFIABLE: (
        "the least-squares fit is singular (e.g. a step between two doses): the fitted values are kept for "
        "censoring statements, but parameters and in-range crossings are not determined by the data"
    ),
    RefusalReason.POOR_FIT: "the sigmoid was selected but its R² is below the metric options' min_r2",
    RefusalReason.WINDOW_NOT_COVERED: "the fixed AUC window is not inside the tested range (no extrapolation)",
    RefusalReason.NO_RESPONSES: "no usable response on this scale for the curve",
    RefusalReason.NOT_PROVIDED: "the source publishes pre-normalized responses without this scale",
}
