"""Explicit interval and censoring-bound columns of a metrics table.

``lower`` / ``upper`` follow one rule on every row (the range the true value lies in: the 95% interval of an
estimated value, ``[bound, inf)`` for a right-censored one, ``[0, bound]`` for a left-censored one). A reader who
wants one meaning per column uses the columns added here instead: ``ci_lower`` / ``ci_upper`` (estimated rows
only) and ``bound`` with its ``bound_side`` (censored rows only).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from doseatlas import schemas as S

St = S.MetricStatus


def with_bound_columns(metrics: pd.DataFrame) -> pd.DataFrame:
    """``metrics`` with ``ci_lower``, ``ci_upper``, ``bound`` and ``bound_side`` (re)computed from ``status``,
    ``lower`` and ``upper``; a table without those columns is returned unchanged."""
    if not {S.STATUS, S.LOWER, S.UPPER} <= set(metrics.columns):
        return metrics
    codes, statuses = pd.factorize(metrics[S.STATUS])  # compared once per distinct status (missing: -1)
    statuses = np.asarray(statuses, dtype=object).astype(str)
    lower = metrics[S.LOWER].to_numpy(dtype=float, na_value=np.nan)
    upper = metrics[S.UPPER].to_numpy(dtype=float, na_value=np.nan)
    est, right, left = (
        np.append(statuses == s.value, False)[codes]
        for s in (St.ESTIMATED, St.RIGHT_CENSORED, St.LEFT_CENSORED)
    )
    side = np.where(right, S.BoundSide.LOWER.value, np.where(left, S.BoundSide.UPPER.value, None))
    return metrics.assign(
        **{
            S.CI_LOWER: np.where(est, lower, np.nan),
            S.CI_UPPER: np.where(est, upper, np.nan),
            S.BOUND: np.where(right, lower, np.where(left, upper, np.nan)),
            S.BOUND_SIDE: pd.Series(side, index=metrics.index, dtype=object),
        }
    )
