"""Readout interference: what a compound gives the readout by itself, from compound-only wells.

A compound-only well (role ``compound_only``) holds the drug at one of its concentrations in cell-free medium.
Its signal over the plate's blank (:func:`compound_wells`) is what the compound itself adds to the readout
(autofluorescence, luciferase inhibition shows as a negative value, a reducing compound reduces resazurin).
:func:`interference_table` summarizes it per :data:`doseatlas.schemas.INTERFERENCE_KEY` (data set, readout, read
time, perturbagen, concentration): the median over the wells (``compound_signal``, ``n_compound_only``), the
median vehicle signal of the treated wells of the same compound (``vehicle_signal``, background-subtracted) and
their ratio (``interference``: 0.1 = the compound alone reads as 10% of the vehicle's signal). ``interfering``
is ``|interference|`` above :attr:`InterferenceOptions.threshold`; the metrics of such a compound (data set,
readout, duration) carry the ``readout_interference`` flag (:mod:`doseatlas.metrics.flags`).

With ``correction="subtract"`` (``--interference-correction subtract``) :func:`correct_responses` subtracts the
compound's ``compound_signal`` at the well's concentration from every treated well's background-subtracted signal
before its responses are computed (the same formulas as :func:`doseatlas.normalize.normalize`); the amount is
kept in the ``interference_signal`` column of the responses. Wells without a compound-only estimate at their
concentration are left as they are.

Everything is grouped by the data set and the perturbagen (and finer), so the partitioned engine, which keeps
every (data set, perturbagen) whole in one bucket, gives the same table. Pure and vectorized.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from doseatlas import schemas as S
from doseatlas._stats import group_summary
from doseatlas.errors import ConfigError
from doseatlas.normalize import PLATE_KEY, NormalizationOptions, responses_from_signal

CORRECTIONS = ("none", "subtract")
KEY: list[str] = list(S.INTERFERENCE_KEY)
#: the columns of the compound-only wells handed from normalization to the interference step
WELL_COLUMNS: list[str] = [*KEY, S.PLATE, S.COMPOUND_SIGNAL]
COLUMNS: list[str] = [
    *KEY,
    S.COMPOUND_SIGNAL,
    S.N_COMPOUND_ONLY,
    S.VEHICLE_SIGNAL,
    S.INTERFERENCE,
    S.INTERFERING,
]
_DTYPES = {S.CONCENTRATION: float, S.TIME_H: float, S.COMPOUND_SIGNAL: float, S.N_COMPOUND_ONLY: "int64",
           S.VEHICLE_SIGNAL: float, S.INTERFERENCE: float, S.INTERFERING: bool}  # fmt: skip


@dataclass(frozen=True)
class InterferenceOptions:
    """Options of the interference step (recorded in the run's provenance).

    Parameters
    ----------
    correction
        ``none`` (default: estimated and flagged only) or ``subtract`` (the compound's own signal is subtracted
        from treated wells before normalization).
    threshold
        ``interfering`` (and the ``readout_interference`` flag) when the compound alone reads as more than this
        fraction of the vehicle signal (or less than minus it) at any tested concentration.
    """

    correction: str = "none"
    threshold: float = 0.1

    def __post_init__(self) -> None:
        if self.correction not in CORRECTIONS:
            raise ConfigError(
                f"interference correction must be one of {', '.join(CORRECTIONS)}, got {self.correction!r}"
            )
        if not (np.isfinite(self.threshold) and self.threshold > 0):
            raise ConfigError(f"interference threshold must be a positive number, got {self.threshold!r}")


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=_DTYPES.get(c, object)) for c in columns})


def compound_wells(clean: pd.DataFrame) -> pd.DataFrame:
    """The compound-only wells of a validated well table with their signal over their plate's blank mean
    (``compound_signal``; the raw signal where the plate has no blank)."""
    if S.ROLE not in clean:
        return _empty(WELL_COLUMNS)
    is_compound = np.equal(clean[S.ROLE].to_numpy(dtype=object), S.Role.COMPOUND_ONLY.value)
    if not is_compound.any():
        return _empty(WELL_COLUMNS)
    wells = clean[is_compound]
    blanks = group_summary(clean[clean[S.ROLE] == S.Role.BLANK], PLATE_KEY, S.SIGNAL, method="mean")
    blank = wells[PLATE_KEY].merge(blanks.rename("_b").reset_index(), on=PLATE_KEY, how="left")["_b"]
    out = wells[[*KEY, S.PLATE]].reset_index(drop=True)
    out[S.COMPOUND_SIGNAL] = wells[S.SIGNAL].to_numpy(float) - blank.fillna(0.0).to_numpy(float)
    return out.astype({c: t for c, t in _DTYPES.items() if c in out})


def interference_table(
    compound: pd.DataFrame, responses: pd.DataFrame, *, options: InterferenceOptions | None = None
) -> pd.DataFrame:
    """One row per :data:`KEY` with compound-only wells: their median signal, the vehicle signal of the
    compound's treated wells and the ratio (see the module docstring)."""
    options = options or InterferenceOptions()
    if not len(compound):
        return _empty(COLUMNS)
    grouped = compound.groupby(KEY, dropna=False, sort=True)[S.COMPOUND_SIGNAL]
    table = pd.DataFrame(
        {S.COMPOUND_SIGNAL: grouped.median(), S.N_COMPOUND_ONLY: grouped.size()}
    ).reset_index()
    per_compound = [c for c in KEY if c != S.CONCENTRATION]
    if len(responses) and S.VEHICLE_SIGNAL in responses:
        vehicle = (
            responses.groupby(per_compound, dropna=False)[S.VEHICLE_SIGNAL].median().rename(S.VEHICLE_SIGNAL)
        )
        table = table.merge(vehicle.reset_index(), on=per_compound, how="left")
    else:
        table[S.VEHICLE_SIGNAL] = np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = table[S.COMPOUND_SIGNAL].to_numpy(float) / table[S.VEHICLE_SIGNAL].to_numpy(float)
    table[S.INTERFERENCE] = np.where(table[S.VEHICLE_SIGNAL].to_numpy(float) > 0, ratio, np.nan)
    table[S.INTERFERING] = np.abs(table[S.INTERFERENCE].to_numpy(float)) > options.threshold
    return table[COLUMNS].astype({c: t for c, t in _DTYPES.items() if c in COLUMNS})


def correct_responses(
    responses: pd.DataFrame, table: pd.DataFrame, *, normalization: NormalizationOptions | None = None
) -> pd.DataFrame:
    """``responses`` with each treated well's signal less its compound's ``compound_signal`` at its
    concentration (``interference_signal``; null where there is none) and its responses computed again."""
    responses = responses.reset_index(drop=True)
    found = responses[KEY].merge(table[[*KEY, S.COMPOUND_SIGNAL]], on=KEY, how="left", sort=False)
    amount = found[S.COMPOUND_SIGNAL].to_numpy(float)
    use = np.isfinite(amount) & np.isfinite(responses[S.SIGNAL].to_numpy(float))
    out = responses.assign(**{S.INTERFERENCE_SIGNAL: np.where(use, amount, np.nan)})
    if not use.any():
        return out
    rows = out[use].reset_index(drop=True)
    x = rows[S.SIGNAL] - rows[S.BLANK_SIGNAL].fillna(0.0) - rows[S.INTERFERENCE_SIGNAL]
    for column, values in responses_from_signal(x, rows, options=normalization).items():
        column_values = out[column].to_numpy(copy=True)
        if column_values.dtype != object and np.asarray(values).dtype == object:
            column_values = column_values.astype(object)
        column_values[use] = np.asarray(values)
        out[column] = column_values
    return out


def interference_step(
    responses: pd.DataFrame,
    compound: pd.DataFrame,
    *,
    options: InterferenceOptions,
    normalization: NormalizationOptions | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The interference step (before fitting): (responses, corrected when the options say so; the table)."""
    table = interference_table(compound, responses, options=options)
    if options.correction == "subtract" and len(responses):
        responses = correct_responses(responses, table, normalization=normalization)
    return responses, table


def interfering_compounds(table: pd.DataFrame) -> pd.DataFrame:
    """(dataset, readout, duration, perturbation type, perturbagen) with an interfering concentration (the keys
    of the ``readout_interference`` flag)."""
    keys = [S.DATASET, S.READOUT, S.TIME_H, S.PERTURBATION_TYPE, S.PERTURBAGEN]
    if not len(table) or S.INTERFERING not in table:
        return pd.DataFrame(columns=[S.DURATION_H if c == S.TIME_H else c for c in keys])
    hit = table[table[S.INTERFERING].astype(bool)][keys].drop_duplicates()
    return hit.rename(columns={S.TIME_H: S.DURATION_H}).reset_index(drop=True)
