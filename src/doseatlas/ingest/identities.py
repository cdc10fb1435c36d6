"""Readers of identity evidence: the user's identity table and a Cellosaurus flat file (``cellosaurus.txt``).

Both return plain records for :class:`doseatlas.harmonize.HarmonizeOptions`; a file that cannot be used stops
the run with an :class:`~doseatlas.errors.InputFileError` naming the file, line and column.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from doseatlas import schemas as S
from doseatlas.errors import InputFileError
from doseatlas.harmonize.identities import CellosaurusRecord, UserIdentity

#: columns of the user's identity table (``id`` optional)
IDENTITY_TABLE_COLUMNS: tuple[str, ...] = ("kind", "name", "canonical", "id")
#: Cellosaurus ``DR`` databases kept as cross-references, with the namespace they get
CELLOSAURUS_XREFS: dict[str, str] = {"Cosmic-CLP": "COSMIC", "DepMap": "DEPMAP"}
_LINE = re.compile(r"^([A-Z]{2})   (.*)$")


def _text_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
        lines = [line.removesuffix("\r") for line in text.split("\n")]  # only \n ends a line
        return lines[:-1] if lines and lines[-1] == "" else lines
    except FileNotFoundError:
        raise InputFileError(str(path), "file not found") from None
    except IsADirectoryError:
        raise InputFileError(str(path), "is a directory, not a file") from None
    except UnicodeDecodeError as exc:
        raise InputFileError(str(path), f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise InputFileError(str(path), f"cannot be read ({exc.strerror})") from None


def read_identity_table(path: str | Path) -> tuple[UserIdentity, ...]:
    """Read the user's identity table: a CSV with columns ``kind`` (``cell_line`` or ``perturbagen``),
    ``name`` (as a source spells it), ``canonical`` and optionally ``id`` (namespaced, e.g. ``CVCL_0023``,
    ``PUBCHEM:44462760``). One name may appear once per kind."""
    path = Path(path)
    _text_lines(path)  # the file's own errors first (missing, not text)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputFileError(str(path), f"not a CSV table ({str(exc).strip()})") from None
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in IDENTITY_TABLE_COLUMNS[:3] if c not in table.columns]
    if missing:
        raise InputFileError(str(path), f"needs columns kind, name, canonical (and optionally id); missing "
                             f"{', '.join(missing)}", column=missing[0])  # fmt: skip
    table = table.apply(lambda column: column.str.strip()) if len(table) else table
    _check_identity_rows(table, path)
    ids = table["id"] if "id" in table else pd.Series("", index=table.index)
    return tuple(
        UserIdentity(kind=k, name=n, canonical=c, id=i or None)
        for k, n, c, i in zip(table["kind"], table["name"], table["canonical"], ids, strict=True)
    )


def _check_identity_rows(table: pd.DataFrame, path: Path) -> None:
    """Unknown kinds, empty names, and a name given twice for one kind: errors naming the line (header = 1)."""
    kinds = {k.value for k in S.IdentityKind}
    checks = [
        (~table["kind"].isin(kinds), "kind", f"kind must be one of {', '.join(sorted(kinds))}"),
        (table["name"] == "", "name", "name is empty"),
        (table["canonical"] == "", "canonical", "canonical is empty"),
        (
            table.duplicated(["kind", "name"], keep="first"),
            "name",
            "this name is already given for this kind",
        ),
    ]
    for bad, column, message in checks:
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            value = table[column].iloc[row]
            raise InputFileError(str(path), f"{message} (got {value!r})", column=column, line=row + 2)


def read_cellosaurus(path: str | Path) -> tuple[CellosaurusRecord, ...]:
    """Read a Cellosaurus flat file (``cellosaurus.txt``): entries of ``XX   value`` lines ended by ``//``;
    ``ID`` (recommended name), ``AC`` (accession), ``SY`` (synonyms, ``; `` separated) and the ``DR`` lines of
    Cosmic-CLP and DepMap are kept. Lines before the first ``ID`` line (the file's header) are skipped."""
    path = Path(path)
    records: list[CellosaurusRecord] = []
    entry: dict[str, list[str]] | None = None
    start = 0
    for number, line in enumerate(_text_lines(path), start=1):
        if entry is None:
            if line.startswith("ID   "):
                entry, start = {"ID": [line[5:].strip()]}, number
            continue
        if line.strip() == "//":
            records.append(_record(entry, path=path, line=start))
            entry = None
            continue
        match = _LINE.match(line)
        if match is None:
            raise InputFileError(
                str(path), f"not a Cellosaurus line 'XX   value': {line[:60]!r}", line=number
            )
        entry.setdefault(match.group(1), []).append(match.group(2).strip())
    if entry is not None:
        raise InputFileError(str(path), "the last entry is not closed by '//'", line=start)
    return tuple(records)


def _record(entry: dict[str, list[str]], *, path: Path, line: int) -> CellosaurusRecord:
    name = entry["ID"][0]
    accessions = entry.get("AC", [])
    if not name or len(accessions) != 1 or not accessions[0]:
        raise InputFileError(str(path), f"entry {name!r} needs a name and exactly one AC line", line=line)
    synonyms = tuple(s.strip() for value in entry.get("SY", []) for s in value.split(";") if s.strip())
    xrefs = []
    for value in entry.get("DR", []):
        database, _, ident = (part.strip() for part in value.partition(";"))
        if database in CELLOSAURUS_XREFS and ident:
            xrefs.append(f"{CELLOSAURUS_XREFS[database]}:{ident}")
    return CellosaurusRecord(accession=accessions[0], name=name, synonyms=synonyms, xrefs=tuple(xrefs))
