"""Review decisions in SQLite.

Two tables: ``decisions`` (the current decision per curve, keyed by the stable curve identity of
:func:`doseatlas.review.apply.review_ids`) and ``audit`` (every change, never updated or deleted). The database
runs in WAL mode and every change is one ``BEGIN IMMEDIATE`` transaction that writes both tables, so concurrent
writers (two browser tabs, two processes) are serialized by SQLite and none of their changes is lost.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from doseatlas.errors import ReviewError

DECISIONS = ("accept", "reject", "note")
#: the metrics ``reviewed`` value of each decision that changes a run (a note changes nothing)
APPLIED = {"accept": "accepted", "reject": "rejected"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    curve_id TEXT PRIMARY KEY,
    curve_key TEXT NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('accept', 'reject', 'note')),
    reason TEXT,
    note TEXT,
    reviewer TEXT NOT NULL,
    decided_utc TEXT NOT NULL,
    run_inputs TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    change INTEGER PRIMARY KEY AUTOINCREMENT,
    curve_id TEXT NOT NULL,
    curve_key TEXT NOT NULL,
    decision TEXT NOT NULL,
    reason TEXT,
    note TEXT,
    reviewer TEXT NOT NULL,
    changed_utc TEXT NOT NULL,
    run_inputs TEXT NOT NULL,
    previous_decision TEXT
);
"""


@dataclass(frozen=True)
class Decision:
    """One review decision (the fields of a ``decisions`` row)."""

    curve_id: str
    curve_key: dict[str, Any]
    decision: str
    reviewer: str
    reason: str | None = None
    note: str | None = None
    run_inputs: tuple[dict[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.decision not in DECISIONS:
            raise ReviewError(f"decision must be one of {', '.join(DECISIONS)}, not {self.decision!r}")
        if self.decision == "reject" and not (self.reason or "").strip():
            raise ReviewError("a rejection needs a reason")
        if not self.reviewer.strip():
            raise ReviewError("a decision needs a reviewer")


class ReviewStore:
    """The review database at ``path`` (created with its tables when missing)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            with self._connect() as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ReviewError(f"{self.path}: not a usable review database ({exc})") from None

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA busy_timeout=30000")
            yield db
        finally:
            db.close()

    def record(self, decision: Decision) -> int:
        """Store ``decision`` as the curve's current decision and append it to the audit; returns the audit
        change number. A note on a curve keeps its accept/reject decision (only the note changes)."""
        now = datetime.now(UTC).isoformat(timespec="microseconds")
        key, inputs = json.dumps(decision.curve_key, sort_keys=True), json.dumps(list(decision.run_inputs))
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                old = db.execute(
                    "SELECT decision FROM decisions WHERE curve_id = ?", (decision.curve_id,)
                ).fetchone()
                previous = old["decision"] if old else None
                current = (
                    previous if decision.decision == "note" and previous in APPLIED else decision.decision
                )
                reason = (
                    decision.reason
                    if decision.decision != "note"
                    else self._kept_reason(db, decision, current)
                )
                db.execute(
                    "INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(curve_id) DO UPDATE SET "
                    "curve_key=excluded.curve_key, decision=excluded.decision, reason=excluded.reason, "
                    "note=excluded.note, reviewer=excluded.reviewer, decided_utc=excluded.decided_utc, "
                    "run_inputs=excluded.run_inputs",
                    (decision.curve_id, key, current, reason, decision.note, decision.reviewer, now, inputs),
                )
                cursor = db.execute(
                    "INSERT INTO audit (curve_id, curve_key, decision, reason, note, reviewer, changed_utc, "
                    "run_inputs, previous_decision) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (decision.curve_id, key, decision.decision, decision.reason, decision.note,
                     decision.reviewer, now, inputs, previous),
                )  # fmt: skip
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return int(cursor.lastrowid)

    @staticmethod
    def _kept_reason(db: sqlite3.Connection, decision: Decision, current: str) -> str | None:
        if current not in APPLIED:
            return None
        row = db.execute("SELECT reason FROM decisions WHERE curve_id = ?", (decision.curve_id,)).fetchone()
        return row["reason"] if row else None

    def decisions(self) -> dict[str, dict[str, Any]]:
        """The current decision of every reviewed curve, by curve identity."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM decisions ORDER BY curve_id").fetchall()
        return {r["curve_id"]: _row(r) for r in rows}

    def audit(self, curve_id: str | None = None) -> list[dict[str, Any]]:
        """Every change (of one curve when ``curve_id`` is given), oldest first."""
        query, args = "SELECT * FROM audit", ()
        if curve_id is not None:
            query, args = query + " WHERE curve_id = ?", (curve_id,)
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY change", args).fetchall()
        return [_row(r) for r in rows]


def _row(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    out["curve_key"] = json.loads(out["curve_key"])
    out["run_inputs"] = json.loads(out["run_inputs"])
    return out


def open_existing(path: str | Path) -> ReviewStore:
    """The review database at ``path``, which must exist (``doseatlas run --reviews``)."""
    path = Path(path)
    if not path.is_file():
        raise ReviewError(f"{path}: no such review database")
    return ReviewStore(path)
