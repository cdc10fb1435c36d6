"""The stable curve identity of review decisions and their application to a run (pure table functions).

A review decision belongs to a curve: the values of :data:`doseatlas.schemas.CURVE_KEY` (data set, cell line,
perturbation type, perturbagen, readout, duration, series, seeding density), never a row number, so it survives reruns that
reorder or add rows. Its identity is the first 16 hex digits of the SHA-256 of the JSON of those values.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import pandas as pd

from doseatlas import schemas as S
from doseatlas.review.store import APPLIED

REVIEW_ID = "review_id"


def curve_key(values: dict[str, Any]) -> dict[str, Any]:
    """The curve key of a row as plain JSON values (``duration_h`` a float, ``series`` '' when missing; a
    missing ``seeding_density`` is left out, so curves without a density keep the identity they had before
    densities were part of the key)."""
    out = {}
    for name in S.CURVE_KEY:
        value = values.get(name)
        if name == S.SEEDING_DENSITY:
            if value is not None and not pd.isna(value):
                out[name] = float(value)
        elif name == S.DURATION_H:
            out[name] = None if value is None or pd.isna(value) else float(value)
        else:
            out[name] = "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)
    return out


def review_id(key: dict[str, Any]) -> str:
    """The identity of the curve with key ``key`` (:func:`curve_key`)."""
    text = json.dumps(curve_key(key), sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def review_ids(table: pd.DataFrame) -> pd.Series:
    """The review identity of every row of ``table`` (hashed once per distinct curve, then mapped)."""
    table = S.with_series(table)
    keys = list(S.CURVE_KEY)
    codes, uniques = pd.MultiIndex.from_frame(
        table[keys].astype(object).where(table[keys].notna(), None)
    ).factorize()
    ids = np.array([review_id(dict(zip(keys, u, strict=True))) for u in uniques], dtype=object)
    return pd.Series(ids[codes] if len(codes) else [], index=table.index, dtype=object, name=REVIEW_ID)


def apply_reviews(metrics: pd.DataFrame, decisions: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """``metrics`` with the review decisions applied: the rows of a rejected curve are ``refused`` with reason
    ``rejected_in_review`` (value and interval emptied); column ``reviewed`` holds ``accepted``/``rejected`` for
    every row of a decided curve (null elsewhere). Notes change nothing."""
    out = metrics.copy()
    applied = {k: APPLIED[d["decision"]] for k, d in decisions.items() if d["decision"] in APPLIED}
    reviewed = review_ids(out).map(applied) if len(out) else pd.Series([], dtype=object)
    out[S.REVIEWED] = reviewed.astype(pd.StringDtype(na_value=np.nan)) if len(out) else reviewed
    rejected = out[S.REVIEWED].eq("rejected").fillna(False).to_numpy(dtype=bool)
    out.loc[rejected, S.STATUS] = S.MetricStatus.REFUSED.value
    out.loc[rejected, [S.VALUE, S.LOWER, S.UPPER]] = np.nan
    out.loc[rejected, S.REASON] = S.RefusalReason.REJECTED_IN_REVIEW.value
    return out


def review_record(metrics: pd.DataFrame, decisions: dict[str, dict[str, Any]], *, database: str) -> dict:
    """What the provenance records of an applied review database: its path, and per decided curve present in
    the run its key, decision, reason, reviewer and time."""
    present = set(review_ids(metrics)) if len(metrics) else set()
    curves = [
        {"review_id": k, "curve_key": d["curve_key"], "decision": d["decision"], "reason": d["reason"],
         "reviewer": d["reviewer"], "decided_utc": d["decided_utc"]}
        for k, d in sorted(decisions.items()) if k in present and d["decision"] in APPLIED
    ]  # fmt: skip
    return {"database": database, "applied": curves, "not_in_run": sum(k not in present for k in decisions)}
