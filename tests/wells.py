"""Small hand-made well tables for unit tests (the simulator makes the big ones)."""

from __future__ import annotations

import pandas as pd

from doseatlas import schemas as S

BASE = {
    S.DATASET: "d1",
    S.PLATE: "p1",
    S.WELL: "",
    S.CELL_LINE: "A",
    S.ROLE: "treated",
    S.PERTURBATION_TYPE: "drug",
    S.PERTURBAGEN: "x",
    S.CONCENTRATION: "1",
    S.CONCENTRATION_UNIT: "uM",
    S.TIME_H: "72",
    S.READOUT: "atp",
    S.SIGNAL: "50",
    S.REPLICATE: "1",
    S.SEEDING_DENSITY: "",
}
CONTROL = {S.PERTURBATION_TYPE: "", S.PERTURBAGEN: "", S.CONCENTRATION: ""}


def row(**changes: object) -> dict[str, str]:
    """One well row as text, with ``changes`` applied."""
    out = dict(BASE)
    out.update({k: str(v) for k, v in changes.items()})
    return out


def plate(
    *,
    vehicle: list[float] = (100.0, 102.0, 98.0),
    blank: list[float] = (10.0, 10.0),
    treated: dict[float, float] | None = None,
    time_zero: list[float] = (),
    plate_id: str = "p1",
    **common: object,
) -> list[dict[str, str]]:
    """Rows of one plate: vehicle, blank and treated wells (+ a separate time-zero plate)."""
    treated = treated if treated is not None else {0.1: 90.0, 1.0: 55.0, 10.0: 20.0}
    rows: list[dict[str, str]] = []
    n = 0

    def add(**kw: object) -> None:
        nonlocal n
        n += 1
        rows.append(row(**{S.PLATE: plate_id, S.WELL: f"A{n:02d}", **common, **kw}))

    for v in vehicle:
        add(role="vehicle", signal=v, **{**CONTROL, S.CONCENTRATION: "0"})
    for v in blank:
        add(role="blank", signal=v, **CONTROL)
    for conc, v in treated.items():
        add(concentration=conc, signal=v)
    for v in time_zero:
        add(role="time_zero", signal=v, time_h=0, plate=f"{plate_id}_t0", **CONTROL)
    return rows


def frame(rows: list[dict[str, str]], *, source: str = "test.csv") -> pd.DataFrame:
    """Rows as a raw table with source columns, as a reader would return them."""
    table = pd.DataFrame(rows, columns=list(S.WELL_COLUMNS))
    table[S.SOURCE_FILE] = source
    table[S.SOURCE_LINE] = range(2, len(table) + 2)
    return table
