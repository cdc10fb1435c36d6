"""Validation of the canonical well table: every problem collected in one pass.

A row with a problem goes to the *ledger* (file, line, column, reason code, message) and
the run goes on with the other rows; the invariant ``rows read = rows used + rows in the
ledger`` holds by construction and is checked by :func:`validate_wells`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from doseatlas import schemas as S
from doseatlas._canon import stripped_text, text_codes
from doseatlas._codes import combine
from doseatlas._text import clip
from doseatlas.errors import DoseatlasError
from doseatlas.readouts import canonical_readouts

R = S.RowReason

_ROLES = {r.value for r in S.Role}
_READOUTS = {r.value for r in S.Readout}
_PTYPES = {p.value for p in S.PerturbationType}
_GENETIC = {p.value for p in S.GENETIC_PERTURBATIONS}
#: roles whose rows carry a perturbation and its concentration (a compound-only well: the drug without cells)
_DOSED = {S.Role.TREATED.value, S.Role.COMPOUND_ONLY.value}


@dataclass(frozen=True)
class ValidationResult:
    """Clean, typed rows and the ledger of rejected rows."""

    clean: pd.DataFrame
    ledger: pd.DataFrame
    n_read: int
    as_read: pd.DataFrame | None = None  # the clean rows before a position correction (docs/plates.md)
    #: some text columns of ``clean`` factorized (column -> (code per row, distinct texts)), for the steps that
    #: group or compare them (normalization), so that they need not factorize the text again; None if unknown
    codes: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None

    @property
    def plate_rows(self) -> pd.DataFrame:
        """The rows the plate table describes: the wells as read (before a position correction)."""
        return self.clean if self.as_read is None else self.as_read

    @property
    def n_used(self) -> int:
        return len(self.clean)

    @property
    def n_rejected(self) -> int:
        return len(self.ledger)


def _number(text: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Parse text as float: (values, is_missing, is_unparsable)."""
    missing = text == ""
    values = pd.to_numeric(text.where(~missing, None), errors="coerce").astype(float)
    unparsable = values.isna() & ~missing & ~text.str.lower().isin({"nan", "na"})
    missing = missing | (values.isna() & ~unparsable)
    return values, missing, unparsable


class _Text(Mapping[str, pd.Series]):
    """The ``columns`` of ``raw`` as canonical text (:func:`stripped_text`), each made when first read (a
    column of ``optional`` the table lacks reads as empty text; another missing column raises ``KeyError`` at
    once). A column is kept factorized (:meth:`coded`: a code per row and its distinct texts), so that a
    check compares each distinct text once (:meth:`eq`, :meth:`isin`) and the text of every row is made only
    when a step needs it. A float column read as a number (:meth:`number`) or tested for blanks
    (:meth:`blank`) needs no text: its text would only be parsed back to the same float
    (:func:`doseatlas._canon.float_text` round-trips)."""

    def __init__(
        self, raw: pd.DataFrame, columns: tuple[str, ...], *, optional: set[str], empty_dtype: object = None
    ):
        self.raw, self.columns, self.empty_dtype = raw, list(columns), empty_dtype
        for column in self.columns:
            if column not in raw and column not in optional:
                raw[column]  # the KeyError of a required column, as the eager text raised it
        self._text: dict[str, pd.Series] = {}
        self._codes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._given: set[str] = set()  # columns set by a step (not the text of ``raw``)

    def coded(self, column: str) -> tuple[np.ndarray, np.ndarray]:
        """(code per row, distinct texts) of the column's text (:func:`doseatlas._canon.text_codes`)."""
        if column not in self._codes:
            raw = self.raw
            self._codes[column] = (
                text_codes(raw[column])
                if column in raw
                else (np.zeros(len(raw), dtype=np.intp), np.array([""], dtype=object))
            )
        return self._codes[column]

    def __getitem__(self, column: str) -> pd.Series:
        if column not in self._text:
            raw = self.raw
            if column in raw or column in self._given:
                codes, uniques = self.coded(column)
                self._text[column] = pd.Series(uniques[codes], index=raw.index, dtype=object)
            else:
                self._text[column] = pd.Series("", index=raw.index, dtype=self.empty_dtype)
        return self._text[column]

    def __setitem__(self, column: str, values: pd.Series) -> None:
        if column not in self.columns:
            self.columns.append(column)
        self._text[column] = values
        self._given.add(column)
        codes, uniques = pd.factorize(values.to_numpy(dtype=object))
        self._codes[column] = (codes, np.asarray(uniques, dtype=object))

    def recode(self, column: str, function: Callable[[pd.Series], pd.Series]) -> None:
        """Replace the column's text by ``function`` of it (an elementwise map, applied to each distinct text)."""
        if column not in self.columns:
            self.columns.append(column)
        codes, uniques = self.coded(column)
        mapped = function(pd.Series(uniques, dtype=object)).to_numpy(dtype=object)
        inner, distinct = pd.factorize(mapped)
        self._codes[column] = (inner[codes], np.asarray(distinct, dtype=object))
        self._text.pop(column, None)
        self._given.add(column)

    def __iter__(self) -> Iterator[str]:
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)

    def eq(self, column: str, value: str) -> np.ndarray:
        """Where the column's text is ``value``."""
        codes, uniques = self.coded(column)
        return (uniques == value)[codes] if len(uniques) else np.zeros(len(codes), dtype=bool)

    def isin(self, column: str, values: set[str] | frozenset[str]) -> np.ndarray:
        """Where the column's text is one of ``values``."""
        codes, uniques = self.coded(column)
        return np.array([u in values for u in uniques], dtype=bool)[codes]

    def where(self, column: str, keep: np.ndarray) -> pd.Series:
        """The column's text where ``keep``, else empty text (an object Series, as ``Series.where``)."""
        codes, uniques = self.coded(column)
        texts = np.append(uniques, np.array([""], dtype=object))
        return pd.Series(texts[np.where(keep, codes, len(uniques))], index=self.raw.index, dtype=object)

    def lookup(self, column: str, table: Mapping[str, float]) -> np.ndarray:
        """The column's text mapped through ``table`` (NaN where it has no entry), as a float array."""
        codes, uniques = self.coded(column)
        return pd.Series(uniques, dtype=object).map(table).astype(float).to_numpy()[codes]

    def _floats(self, column: str) -> pd.Series | None:
        values = self.raw[column] if column in self.raw and column not in self._given else None
        return values if values is not None and values.dtype.kind == "f" else None

    def number(self, column: str) -> tuple[pd.Series, pd.Series, pd.Series]:
        """:func:`_number` of the column's text (a float column as read: -0.0 as 0.0, as its text reads)."""
        given = self._floats(column)
        if given is None:
            return _number(self[column])
        values = pd.Series(given.to_numpy(dtype=float, na_value=np.nan) + 0.0, index=given.index)
        return values, values.isna(), pd.Series(False, index=given.index)

    def blank(self, column: str) -> np.ndarray:
        """Where the column's text is empty."""
        given = self._floats(column)
        return self.eq(column, "") if given is None else given.isna().to_numpy()


#: longest value quoted in a ledger message (a longer one is cut and its length given)
QUOTE_LIMIT = 200


def _clipped(values: pd.Series) -> pd.Series:
    """``values`` cut to :data:`QUOTE_LIMIT` characters, a cut one followed by its full length (the one form of a
    cut text: :func:`doseatlas._text.clip`)."""
    long = values.str.len() > QUOTE_LIMIT
    if not long.any():
        return values
    return values.where(~long, values[long].map(lambda v: clip(v, limit=QUOTE_LIMIT)))  # only the long ones


def _quoted(
    prefix: str, text: Mapping[str, pd.Series], column: str, suffix: str
) -> Callable[[pd.Series], pd.Series]:
    """A message quoting each row's value of ``text[column]`` (clipped: a 150 MB junk cell must not become a
    150 MB ledger), built only for the rows a check flags (not for the whole column)."""
    return lambda mask: prefix + _clipped(text[column][mask]) + suffix


class _Problems:
    """Accumulates (row mask, column, reason, message) findings."""

    def __init__(self, index: pd.Index):
        self.index = index
        self.items: list[pd.DataFrame] = []
        self.flagged = np.zeros(len(index), dtype=bool)  # rows with at least one finding
        self.exclusive = np.zeros(len(index), dtype=bool)  # rows whose only message is their record's

    def add(
        self,
        mask: pd.Series | np.ndarray,
        column: str,
        reason: S.RowReason,
        message: str | Callable[[pd.Series], pd.Series],
        *,
        exclusive: bool = False,
    ) -> None:
        """Record a finding on the rows of ``mask``; ``exclusive``: the row is not a record whose values can
        be checked (a blank line, a line with the wrong number of fields), so no other finding is reported."""
        if isinstance(mask, pd.Series):
            mask = mask.fillna(False).astype(bool).to_numpy()
        positions = np.asarray(mask, dtype=bool)
        if not positions.any():
            return
        msg = message(pd.Series(positions, index=self.index)) if callable(message) else message
        self.items.append(
            pd.DataFrame(
                {
                    "row": self.index[positions],
                    S.LEDGER_COLUMN: column,
                    S.LEDGER_REASON: reason.value,
                    "msg": msg,
                }
            )
        )
        self.flagged |= positions
        self.exclusive |= positions if exclusive else False

    def per_row(self) -> pd.DataFrame:
        """One entry per rejected row: first reason, all messages joined."""
        if not self.items:
            return pd.DataFrame(columns=["row", S.LEDGER_COLUMN, S.LEDGER_REASON, S.LEDGER_MESSAGE])
        found = pd.concat(self.items, ignore_index=True).sort_values("row", kind="stable")
        if self.exclusive.any():  # the first finding of such a row is its record's: keep only that one
            found = found[~(self.exclusive[found["row"].to_numpy()] & found["row"].duplicated())]
        several = found["row"].duplicated(
            keep=False
        )  # only rows with several findings need their messages joined
        first = found.drop_duplicates("row", keep="first").set_index("row")
        first[S.LEDGER_MESSAGE] = first["msg"]
        if several.any():
            joined = found[several].groupby("row", sort=False)["msg"].agg("; ".join)
            first.loc[joined.index, S.LEDGER_MESSAGE] = joined
        return first.drop(columns="msg").reset_index()


def _check_record(raw: pd.DataFrame, t: _Text, p: _Problems) -> None:
    """Lines that are not well-formed records (noted by the text readers) and rows without any value."""
    noted = np.zeros(len(raw), dtype=bool)
    if S.RECORD_PROBLEM in raw:
        codes, uniques = text_codes(raw[S.RECORD_PROBLEM])
        noted = (uniques != "")[codes] if len(uniques) else noted
    if noted.any():  # "<reason>: <message>"
        note = stripped_text(raw[S.RECORD_PROBLEM])
        parts = note.str.partition(":")
        reason, message = parts[0].str.strip(), parts[2].str.strip()
        for code in (R.BLANK_LINE, R.WRONG_FIELD_COUNT):
            p.add(reason == code, "*", code, lambda mask: message[mask], exclusive=True)
    empty = np.logical_and.reduce([t.blank(c) for c in t if c in raw]) & ~noted
    p.add(empty, "*", R.BLANK_LINE, "no value in any column", exclusive=True)


def _check_identifiers(t: _Text, p: _Problems) -> None:
    for column in (S.DATASET, S.PLATE, S.CELL_LINE):
        p.add(t.eq(column, ""), column, R.MISSING_VALUE, f"{column} is empty")
    for reason, message in S.LEDGER_ROLE_MESSAGE.items():
        p.add(t.eq(S.ROLE, reason), S.ROLE, R(reason), message)
    unknown = ~t.isin(S.ROLE, _ROLES | S.LEDGER_ROLES)
    p.add(unknown, S.ROLE, R.UNKNOWN_ROLE, _quoted("unknown role '", t, S.ROLE, "'"))
    unknown = ~t.isin(S.READOUT, _READOUTS)
    p.add(unknown, S.READOUT, R.UNKNOWN_READOUT, _quoted("unknown readout '", t, S.READOUT, "'"))


def _check_signal_time(t: _Text, p: _Problems) -> tuple[pd.Series, pd.Series]:
    signal, s_missing, s_bad = t.number(S.SIGNAL)
    p.add(s_missing, S.SIGNAL, R.MISSING_SIGNAL, "signal is missing")
    if s_bad.any():  # (the text is read only to quote it)
        p.add(s_bad, S.SIGNAL, R.NOT_A_NUMBER, _quoted("signal '", t, S.SIGNAL, "' is not a number"))
    p.add(np.isinf(signal), S.SIGNAL, R.NON_FINITE, "signal is infinite")
    t0 = t.eq(S.ROLE, S.Role.TIME_ZERO)
    time, t_missing = _check_time(t, p)
    time = time.where(~(t0 & t_missing), 0.0)  # a time-zero read is at time 0 by definition
    p.add(
        t_missing & ~t0,
        S.TIME_H,
        R.MISSING_TIME,
        "time_h is missing (the read time is needed to match the well with its plate's controls)",
    )
    p.add(t0 & (time > 0), S.TIME_H, R.INCONSISTENT_ROLE, "a time_zero read must have time_h 0")
    return signal, time


def _check_time(t: _Text, p: _Problems) -> tuple[pd.Series, pd.Series]:
    """Read time in hours (NaN when missing) and where it is missing; bad values to the ledger."""
    time, t_missing, t_bad = t.number(S.TIME_H)
    if t_bad.any():
        p.add(t_bad, S.TIME_H, R.NOT_A_NUMBER, _quoted("time_h '", t, S.TIME_H, "' is not a number"))
    p.add(np.isinf(time), S.TIME_H, R.NON_FINITE, "time_h is infinite")
    p.add((time < 0) & ~np.isinf(time), S.TIME_H, R.NEGATIVE_TIME, "time_h is negative")
    return time, t_missing


def _check_treatment(t: _Text, p: _Problems) -> pd.Series:
    """Perturbation type, perturbagen, concentration and unit; returns concentration in molar."""
    treated = t.isin(S.ROLE, _DOSED)
    vehicle = t.eq(S.ROLE, S.Role.VEHICLE)
    compound_only = t.eq(S.ROLE, S.Role.COMPOUND_ONLY)
    p.add(
        compound_only & t.isin(S.PERTURBATION_TYPE, _GENETIC),
        S.PERTURBATION_TYPE,
        R.INCONSISTENT_ROLE,
        "a compound_only well holds a drug in cell-free medium, not a genetic perturbation",
    )
    p.add(
        treated & ~t.isin(S.PERTURBATION_TYPE, _PTYPES),
        S.PERTURBATION_TYPE,
        R.UNKNOWN_PERTURBATION_TYPE,
        _quoted("unknown perturbation_type '", t, S.PERTURBATION_TYPE, "' on a treated row"),
    )
    p.add(
        treated & t.eq(S.PERTURBAGEN, ""), S.PERTURBAGEN, R.MISSING_VALUE, "treated row without perturbagen"
    )
    conc, c_missing, c_bad = t.number(S.CONCENTRATION)
    factor = pd.Series(t.lookup(S.CONCENTRATION_UNIT, S.CONCENTRATION_UNITS), index=conc.index)
    needs_dose = treated & t.eq(S.PERTURBATION_TYPE, S.PerturbationType.DRUG)
    p.add(
        needs_dose & c_missing,
        S.CONCENTRATION,
        R.MISSING_CONCENTRATION,
        "treated drug row has no concentration",
    )
    if c_bad.any():
        p.add(
            c_bad,
            S.CONCENTRATION,
            R.NOT_A_NUMBER,
            _quoted("concentration '", t, S.CONCENTRATION, "' is not a number"),
        )
    p.add(needs_dose & np.isinf(conc), S.CONCENTRATION, R.NON_FINITE, "concentration is infinite")
    p.add(conc < 0, S.CONCENTRATION, R.NEGATIVE_CONCENTRATION, "concentration is negative")
    p.add(
        needs_dose & (conc == 0),
        S.CONCENTRATION,
        R.INCONSISTENT_ROLE,
        "treated drug row at concentration 0 (mark it as vehicle)",
    )
    has_conc = ~c_missing & ~c_bad
    p.add(
        has_conc & (conc != 0) & factor.isna(),
        S.CONCENTRATION_UNIT,
        R.UNKNOWN_UNIT,
        _quoted(
            "unknown concentration_unit '", t, S.CONCENTRATION_UNIT,
            f"' (use one of {', '.join(S.CONCENTRATION_UNITS)})",
        ),
    )  # fmt: skip
    molar = conc * factor.where(conc != 0, 1.0)
    molar = molar.where(needs_dose | vehicle, np.nan)
    return molar.where(~(vehicle & molar.isna()), 0.0)


def _check_reads(
    content: pd.DataFrame,
    key: list[str],
    *,
    where: pd.DataFrame,
    p: _Problems,
    codes: Mapping[str, np.ndarray] | None = None,
    has_well: np.ndarray | None = None,
) -> None:
    """Reads of one well (``key``: a non-empty ``well`` and where and when it was read), among the rows that
    passed every other check. Decided by the values alone, never by the order of the rows:

    * all reads of the well have the same values: one is kept (the one earliest in the files: first file
      name, then first line), the others go to the ledger as ``duplicate_row``;
    * the reads differ in any value: every read goes to the ledger as ``conflicting_reads`` (none is chosen).

    Rows without a well are not compared: equal values are legitimate replicate wells. ``codes``: a code per
    row of some ``key`` columns of ``content`` (equal codes where the values are equal), used instead of
    factorizing those columns again; ``has_well``: where ``well`` is not empty (when already known).
    """
    codes = codes or {}
    candidate = ~p.flagged & (has_well if has_well is not None else (content[S.WELL] != "").to_numpy())
    candidate[candidate] = _repeated(content, key, codes, rows=candidate)  # only repeated wells
    if not candidate.any():
        return
    reads = content[candidate]
    well = reads.groupby(key, sort=False, dropna=False).ngroup()
    values = reads.groupby(list(reads.columns), sort=False, dropna=False).ngroup()
    n_values = values.groupby(well).transform("nunique")
    n_reads = well.map(well.value_counts())
    files, lines = (
        where[S.SOURCE_FILE][candidate].astype(str),
        where[S.SOURCE_LINE][candidate].astype("int64"),
    )
    first_line = lines.groupby(well.to_numpy()).transform("min")
    earliest = np.lexsort((lines.to_numpy(), files.to_numpy()))  # the place in the files, not the row order
    later = pd.Series(values.iloc[earliest].duplicated().to_numpy(), index=values.index[earliest])
    kept_line = lines.iloc[earliest].groupby(values.iloc[earliest].to_numpy()).transform("first")
    conflict, repeat = (pd.Series(False, index=content.index) for _ in range(2))
    conflict[candidate] = (n_values > 1).to_numpy()
    repeat[candidate] = ((n_values == 1) & later.reindex(values.index)).to_numpy()
    message = pd.Series("", index=content.index, dtype=object)
    message[candidate] = np.where(
        n_values > 1,
        "well read " + n_reads.astype(str) + " times at this time with different values (first read at line "
        + first_line.astype(str) + "): none of the reads is used",
        "exact repeat of the read of this well at line " + kept_line.reindex(values.index).astype(str),
    )  # fmt: skip
    p.add(conflict, S.WELL, R.CONFLICTING_READS, lambda mask: message[mask])
    p.add(repeat, "*", R.DUPLICATE_ROW, lambda mask: message[mask])


def _repeated(
    content: pd.DataFrame, key: list[str], codes: Mapping[str, np.ndarray], *, rows: np.ndarray
) -> np.ndarray:
    """Which of the ``rows`` have ``key`` values another of them has too (``content[rows].duplicated(key,
    keep=False)``), on integer codes (a column's ``codes``, else the column factorized) combined into one
    number per row (:func:`doseatlas._codes.combine`)."""

    def coded(column: str) -> tuple[np.ndarray, int]:
        if column in codes:
            code = np.asarray(codes[column])[rows]
        else:
            code = pd.factorize(content[column].to_numpy()[rows], use_na_sentinel=False)[0]
        return code, int(code.max(initial=0)) + 1

    group, _ = combine((coded(c) for c in key), int(rows.sum()))  # (one column at a time in memory)
    return np.bincount(group, minlength=1)[group] > 1


def validate_wells(raw: pd.DataFrame) -> ValidationResult:
    """Validate a canonical well table and split it into clean rows and the ledger.

    Parameters
    ----------
    raw
        Output of an :mod:`doseatlas.ingest` reader (values as read, with source columns).

    Returns
    -------
    ValidationResult
        ``clean`` has typed columns (concentration in molar, time in hours, signal float,
        controls with empty perturbation fields) and a ``row_id``; ``ledger`` has one row
        per rejected input row with ``source_file, source_line, column, reason, message``.
    """
    raw = raw.reset_index(drop=True)
    text = _Text(raw, S.WELL_COLUMNS, optional=set(S.OPTIONAL_WELL_COLUMNS), empty_dtype=object)
    text.recode(S.READOUT, canonical_readouts)  # a source's alias (CellTiter-Glo) is its readout
    problems = _Problems(raw.index)
    _check_record(raw, text, problems)
    _check_identifiers(text, problems)
    signal, time = _check_signal_time(text, problems)
    molar = _check_treatment(text, problems)
    typed = _typed(raw, text, signal=signal, time=time, molar=molar)
    codes = {c: text.coded(c)[0] for c in _WELL_READ if c != S.TIME_H}
    codes[S.TIME_H] = pd.factorize(typed[S.TIME_H].to_numpy(), use_na_sentinel=False)[0]
    has_well = ~text.eq(S.WELL, "")
    _check_reads(typed[_READ_VALUES], _WELL_READ, where=typed, p=problems, codes=codes, has_well=has_well)
    return _result(raw, typed, problems, text)


#: the text columns of a well table whose codes a validation hands on (:attr:`ValidationResult.codes`)
CODED_COLUMNS: tuple[str, ...] = (S.DATASET, S.PLATE, S.CELL_LINE, S.ROLE, S.READOUT)


#: a read of a well: where and when (the identity of a well-table row when ``well`` is given)
_WELL_READ = [S.DATASET, S.PLATE, S.WELL, S.READOUT, S.TIME_H]
#: the values of a read compared between reads of one well
_READ_VALUES = [c for c in S.WELL_COLUMNS if c != S.CONCENTRATION_UNIT]  # concentrations compared in molar


def _result(
    raw: pd.DataFrame, typed: pd.DataFrame, problems: _Problems, text: _Text | None = None
) -> ValidationResult:
    """Clean rows and the ledger (and the codes of :data:`CODED_COLUMNS` of ``text``); checks rows read = rows
    used + rows in the ledger."""
    rejected = problems.per_row()
    bad = np.zeros(len(raw), dtype=bool)
    bad[rejected["row"].to_numpy(dtype=int)] = True
    clean = (typed[~bad] if bad.any() else typed).reset_index(drop=True)  # no copy when every row is used
    codes = None
    if text is not None:
        coded = {c: text.coded(c) for c in CODED_COLUMNS}
        codes = {c: (v[~bad] if bad.any() else v, u) for c, (v, u) in coded.items()}
    result = ValidationResult(clean=clean, ledger=_ledger(raw, rejected), n_read=len(raw), codes=codes)
    if result.n_used + result.n_rejected != result.n_read:  # pragma: no cover - invariant guard
        raise DoseatlasError("validation lost rows: read != used + rejected")
    return result


def _typed(raw: pd.DataFrame, text: _Text, **numbers: pd.Series) -> pd.DataFrame:
    treated = text.isin(S.ROLE, _DOSED)
    out = pd.DataFrame({c: text[c] for c in (S.DATASET, S.PLATE, S.WELL, S.CELL_LINE, S.ROLE, S.READOUT)})
    out[S.PERTURBATION_TYPE] = text.where(S.PERTURBATION_TYPE, treated)
    out[S.PERTURBAGEN] = text.where(S.PERTURBAGEN, treated)
    out[S.CONCENTRATION] = numbers["molar"].to_numpy()
    out[S.TIME_H] = numbers["time"].to_numpy()
    out[S.SIGNAL] = numbers["signal"].to_numpy()
    out[S.REPLICATE] = text[S.REPLICATE]
    out[S.SERIES] = text[S.SERIES]
    seeding, _, _ = text.number(S.SEEDING_DENSITY)
    out[S.SEEDING_DENSITY] = seeding.to_numpy()
    out[S.SOURCE_FILE] = _source_files(raw[S.SOURCE_FILE])
    out[S.SOURCE_LINE] = raw[S.SOURCE_LINE].astype("int64").to_numpy()
    out[S.ROW_ID] = _row_ids(raw)
    return _with_ids(out, raw)


#: pandas' default text dtype (what a column of Python strings becomes)
_STR = pd.StringDtype("pyarrow", na_value=np.nan)


def _source_files(files: pd.Series) -> np.ndarray | pd.api.extensions.ExtensionArray:
    """The source file names as text (``astype(str)``, as a column of ``str`` objects becomes), without a
    round trip through Python strings when they are pandas' text already (one column of them, no missing)."""
    if files.dtype == _STR and len(files) and not files.hasnans:
        return files.array
    return files.astype(str).to_numpy()


#: optional identifier columns a reader may fill (namespaced text); kept as given, empty -> null
IDENTIFIER_COLUMNS: tuple[str, ...] = (S.CELL_LINE_ID, S.PERTURBAGEN_ID)


def _with_ids(out: pd.DataFrame, raw: pd.DataFrame) -> pd.DataFrame:
    """``out`` with the identifier columns ``raw`` has (stripped text, empty -> null)."""
    for column in IDENTIFIER_COLUMNS:
        if column in raw:
            text = stripped_text(raw[column])
            out[column] = text.where(text != "", None).to_numpy()
    return out


def _row_ids(raw: pd.DataFrame) -> np.ndarray:
    """The row's position among the rows read: given by a partitioned run (which sees a bucket of the
    rows), else the position in ``raw``."""
    if S.ROW_ID in raw:
        return raw[S.ROW_ID].to_numpy(dtype=np.int64)
    return np.arange(len(raw), dtype=np.int64)


def _ledger(raw: pd.DataFrame, rejected: pd.DataFrame) -> pd.DataFrame:
    rows = rejected["row"].to_numpy(dtype=int)
    ledger = pd.DataFrame(
        {
            S.SOURCE_FILE: raw[S.SOURCE_FILE].iloc[rows].astype(str).to_numpy(),
            S.SOURCE_LINE: raw[S.SOURCE_LINE].iloc[rows].astype("int64").to_numpy(),
            S.LEDGER_COLUMN: rejected[S.LEDGER_COLUMN].astype(str).to_numpy(),
            S.LEDGER_REASON: rejected[S.LEDGER_REASON].astype(str).to_numpy(),
            S.LEDGER_MESSAGE: rejected[S.LEDGER_MESSAGE].astype(str).to_numpy(),
        }
    )
    return ledger.sort_values([S.SOURCE_FILE, S.SOURCE_LINE], kind="stable").reset_index(drop=True)


def validate_responses(raw: pd.DataFrame) -> ValidationResult:
    """Validate a pre-normalized response table (sources that publish responses, not signals).

    The duration may be unknown (empty ``time_h``): it is kept as NaN and every metric that
    needs it is refused later. ``response_scale`` names the scale the ``response`` is on.

    Returns
    -------
    ValidationResult
        ``clean`` has one typed row per usable input row (``response`` float, concentration in
        molar); ``ledger`` as for :func:`validate_wells`.
    """
    raw = raw.reset_index(drop=True)
    text = _Text(raw, S.RESPONSE_TABLE_COLUMNS, optional=set(S.RESPONSE_TABLE_COLUMNS))
    text[S.ROLE] = pd.Series(S.Role.TREATED.value, index=raw.index, dtype=object)
    text.recode(S.READOUT, canonical_readouts)
    problems = _Problems(raw.index)
    _check_record(raw, text, problems)
    for column in (S.DATASET, S.CELL_LINE):
        problems.add(text.eq(column, ""), column, R.MISSING_VALUE, f"{column} is empty")
    unknown = ~text.isin(S.READOUT, _READOUTS)
    problems.add(unknown, S.READOUT, R.UNKNOWN_READOUT, _quoted("unknown readout '", text, S.READOUT, "'"))
    unknown = ~text.isin(S.RESPONSE_SCALE, set(S.RESPONSE_SCALES))
    problems.add(
        unknown, S.RESPONSE_SCALE, R.UNKNOWN_SCALE, _quoted("unknown scale '", text, S.RESPONSE_SCALE, "'")
    )
    response, r_missing, r_bad = text.number(S.RESPONSE)
    problems.add(r_missing, S.RESPONSE, R.MISSING_SIGNAL, "response is missing")
    if r_bad.any():
        problems.add(
            r_bad, S.RESPONSE, R.NOT_A_NUMBER, _quoted("response '", text, S.RESPONSE, "' is not a number")
        )
    problems.add(np.isinf(response), S.RESPONSE, R.NON_FINITE, "response is infinite")
    time, _ = _check_time(text, problems)
    molar = _check_treatment(text, problems)
    clean = pd.DataFrame({c: text[c] for c in (S.DATASET, S.PLATE, S.WELL, S.CELL_LINE, S.READOUT)})
    clean[S.PERTURBATION_TYPE] = text[S.PERTURBATION_TYPE]
    clean[S.PERTURBAGEN] = text[S.PERTURBAGEN]
    clean[S.CONCENTRATION] = molar.to_numpy()
    clean[S.TIME_H] = time.to_numpy()
    clean[S.REPLICATE] = text[S.REPLICATE]
    clean[S.SERIES] = text[S.SERIES]
    clean[S.SEEDING_DENSITY] = text.number(S.SEEDING_DENSITY)[0].to_numpy()
    clean[S.RESPONSE] = response.to_numpy()
    clean[S.RESPONSE_SCALE] = text[S.RESPONSE_SCALE]
    clean[S.SOURCE_FILE] = raw[S.SOURCE_FILE].astype(str).to_numpy()
    clean[S.SOURCE_LINE] = raw[S.SOURCE_LINE].astype("int64").to_numpy()
    clean[S.ROW_ID] = _row_ids(raw)
    clean = _with_ids(clean, raw)
    key = [*_WELL_READ, S.CELL_LINE, S.RESPONSE_SCALE]  # plates are optional in response tables
    values = [c for c in S.RESPONSE_TABLE_COLUMNS if c != S.CONCENTRATION_UNIT]
    _check_reads(clean[values], key, where=clean, p=problems)
    return _result(raw, clean, problems)
