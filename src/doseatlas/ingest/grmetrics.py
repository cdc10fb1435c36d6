"""Reader of the GR calculator / GRmetrics input layouts (Hafner et al. 2016, grcalculator.org).

* **case A**: one row per treated well with ``cell_count``, ``cell_count__ctrl`` (the control count of
  its condition) and ``cell_count__time0`` (the count at the time of treatment);
* **case B**: a treated-data file plus separate control and time-0 files joined by ``ctrl_tag`` /
  ``time0_tag`` (options ``ctrl=`` and ``time0=``);
* **case C**: controls (``concentration == 0``) and time-0 reads (``time == 0``) stacked with the
  treated rows.

Grouping columns: ``cell_line`` (alias ``CellLine``), ``agent`` (aliases ``treatment``, ``DrugName``),
``replicate`` (alias ``BiolReplicate``), ``time`` (hours; absent -> option ``time_h`` or unknown) and
an optional ``perturbation``. A perturbation other than ``0``/``-``/empty changes the cells, so it
is recorded in the cell line name (``MCF7 [perturbation=1]``) and controls/time-0 reads are matched
within it. Concentrations are taken as µM (the GR calculator convention; the files do not say).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from doseatlas import schemas as S
from doseatlas.errors import ConfigError, InputFileError
from doseatlas.ingest._common import finish, number_text, pick, require, text_table

CELL_LINE = ("cell_line", "CellLine")
AGENT = ("agent", "treatment", "DrugName")
REPLICATE = ("replicate", "BiolReplicate")
NO_PERTURBATION = {"", "0", "-", "none", "na", "nan"}
CASES = ("auto", "A", "B", "C")


def read(
    path: str | Path,
    *,
    case: str = "auto",
    ctrl: str | Path | None = None,
    time0: str | Path | None = None,
    dataset: str | None = None,
    time_h: float | None = None,
    readout: str = S.Readout.UNKNOWN,
    concentration_unit: str = "uM",
) -> pd.DataFrame:
    """Read a GR calculator input file into the canonical well table.

    Parameters
    ----------
    path
        The (treated-data) file, tab separated (``.tsv``/``.txt``) or comma separated (``.csv``).
    case
        ``"A"``, ``"B"``, ``"C"`` or ``"auto"`` (A when ``cell_count__ctrl`` is a column, B when
        ``ctrl``/``time0`` files are given, else C).
    ctrl, time0
        Case B: the control and time-0 files.
    dataset
        Value of ``dataset`` (default: the file name without suffix).
    time_h
        Duration in hours for files without a ``time`` column (recorded in ``attrs["defaults"]``);
        without it the duration is left empty (validation then reports it as missing).
    readout
        The files do not say how cells were counted: ``unknown`` unless given.
    concentration_unit
        Unit of ``concentration`` (GR calculator convention: µM).
    """
    path = Path(path)
    if case not in CASES:
        raise ConfigError(f"case must be one of {', '.join(CASES)}, got {case!r}")
    table = text_table(path)
    if case == "auto":
        case = "A" if "cell_count__ctrl" in table else "B" if ctrl or time0 else "C"
    defaults = {S.CONCENTRATION_UNIT: concentration_unit, S.READOUT: str(readout)}
    if "time" not in table and time_h is not None:
        defaults[S.TIME_H] = time_h
    context = {
        S.DATASET: dataset or path.stem,
        S.READOUT: str(readout),
        S.CONCENTRATION_UNIT: concentration_unit,
        "time_h": time_h,
    }
    if case == "A":
        out = _case_a(table, path=path, context=context)
    elif case == "B":
        out = _case_b(table, path=path, ctrl=ctrl, time0=time0, context=context)
    else:
        out = _case_c(table, path=path, context=context)
    out.attrs["defaults"] = defaults
    out.attrs["grmetrics_case"] = case
    return out


def _keys(table: pd.DataFrame, *, path: Path, context: dict, agent: bool = True) -> pd.DataFrame:
    """The grouping columns, renamed: cell_line (with perturbation), agent, replicate, time."""
    names = {"cell_line": pick(table, CELL_LINE), "replicate": pick(table, REPLICATE)}
    if agent:
        names["agent"] = pick(table, AGENT)
    missing = [
        f"{k} (or {', '.join(v)})"
        for k, v in (("cell_line", CELL_LINE), ("agent", AGENT))
        if not names.get(k)
    ]
    if missing and (agent or not names["cell_line"]):
        raise InputFileError(
            str(path), f"required column(s) missing: {'; '.join(missing)}", column=missing[0]
        )
    keys = pd.DataFrame(index=table.index)
    keys["cell_line"] = table[names["cell_line"]].str.strip()
    if "perturbation" in table:
        pert = table["perturbation"].str.strip()
        modified = ~pert.str.lower().isin(NO_PERTURBATION)
        keys["cell_line"] = keys["cell_line"].where(
            ~modified, keys["cell_line"] + " [perturbation=" + pert + "]"
        )
    if agent:
        keys["agent"] = table[names["agent"]].str.strip()
    rep = table[names["replicate"]].str.strip() if names["replicate"] else pd.Series("", index=table.index)
    keys["replicate"] = number_text(rep.where(~rep.str.lower().isin({"na", "nan"}), ""))
    given = context["time_h"]
    keys["time"] = table["time"].str.strip() if "time" in table else ("" if given is None else str(given))
    return keys


def _plate_id(keys: pd.DataFrame, columns: list[str]) -> pd.Series:
    parts = [keys[c].astype(str) for c in columns]
    plate = parts[0]
    for part, name in zip(parts[1:], columns[1:], strict=True):
        plate = plate + f"|{name}=" + part
    return plate


def _rows(
    keys: pd.DataFrame, *, role: str, signal: pd.Series, plate: pd.Series, context: dict
) -> pd.DataFrame:
    """Well rows of one role. The layouts have no well positions: ``well`` is a pseudo id naming the
    source line (``line12``; ``line12:ctrl`` for a control synthesized from line 12), so that two
    wells with equal counts are not mistaken for a duplicated row."""
    treated = role == S.Role.TREATED
    suffix = {S.Role.VEHICLE: ":ctrl", S.Role.TIME_ZERO: ":time0"}.get(role, "") if "synth" in context else ""
    well = context.get("well_prefix", "") + "line" + pd.Series(keys.index.to_numpy() + 2).astype(str) + suffix
    return pd.DataFrame(
        {
            S.DATASET: context[S.DATASET],
            S.PLATE: plate.to_numpy(),
            S.CELL_LINE: keys["cell_line"].to_numpy(),
            S.ROLE: role,
            S.PERTURBATION_TYPE: S.PerturbationType.DRUG.value if treated else "",
            S.PERTURBAGEN: keys["agent"].to_numpy() if treated else "",
            S.CONCENTRATION: keys["concentration"].to_numpy() if treated else "",
            S.CONCENTRATION_UNIT: context[S.CONCENTRATION_UNIT],
            S.TIME_H: "0" if role == S.Role.TIME_ZERO else keys["time"].to_numpy(),
            S.READOUT: context[S.READOUT],
            S.SIGNAL: signal.to_numpy(),
            S.REPLICATE: keys["replicate"].to_numpy(),
            S.WELL: well.to_numpy(),
        }
    )


def _case_a(table: pd.DataFrame, *, path: Path, context: dict) -> pd.DataFrame:
    """Treated wells + one vehicle and one time-zero well per (condition, control value, time-0 value)."""
    require(table, ("concentration", "cell_count", "cell_count__ctrl"), path=path, what="GR case A")
    keys = _keys(table, path=path, context=context)
    keys["concentration"] = table["concentration"].str.strip()
    context = {**context, "synth": True}
    group = _plate_id(keys, ["cell_line", "agent", "replicate", "time"])
    t0 = table["cell_count__time0"] if "cell_count__time0" in table else pd.Series("", index=table.index)
    variant = pd.DataFrame({"g": group, "c": table["cell_count__ctrl"], "t": t0})
    rank = variant.groupby("g", sort=False)[["c", "t"]].transform(lambda s: s.factorize()[0]).max(axis=1)
    plate = group.where(
        variant.groupby("g")["c"].transform("nunique").le(1)
        & variant.groupby("g")["t"].transform("nunique").le(1),
        group + "#" + rank.astype(str),
    )
    lines = table.index.to_numpy() + 2
    parts = [_rows(keys, role=S.Role.TREATED, signal=table["cell_count"], plate=plate, context=context)]
    first = ~plate.duplicated()
    parts.append(
        _rows(
            keys[first],
            role=S.Role.VEHICLE,
            signal=table.loc[first, "cell_count__ctrl"],
            plate=plate[first],
            context=context,
        )
    )
    line_parts = [lines, lines[first.to_numpy()]]
    if "cell_count__time0" in table:
        has_t0 = first & (table["cell_count__time0"].str.strip().str.lower().isin({"", "na", "nan"}) == False)  # noqa: E712
        parts.append(
            _rows(
                keys[has_t0], role=S.Role.TIME_ZERO, signal=t0[has_t0], plate=plate[has_t0], context=context
            )
        )
        line_parts.append(lines[has_t0.to_numpy()])
    out = pd.concat(parts, ignore_index=True)
    synthesized = {"case_a_control_wells_from_ctrl_and_time0_columns": len(out) - len(table)}
    attrs = {"synthesized_controls": "case A", S.ROWS_SYNTHESIZED: synthesized}
    return finish(out, path=path, lines=np.concatenate(line_parts), attrs=attrs)


def _case_c(table: pd.DataFrame, *, path: Path, context: dict) -> pd.DataFrame:
    """Stacked layout: time == 0 -> time_zero, concentration == 0 -> vehicle, else treated."""
    require(table, ("concentration", "cell_count", "time"), path=path, what="GR case C")
    keys = _keys(table, path=path, context=context)
    keys["concentration"] = table["concentration"].str.strip()
    time = pd.to_numeric(keys["time"], errors="coerce")
    conc = pd.to_numeric(keys["concentration"], errors="coerce")
    role = np.where(
        time == 0, S.Role.TIME_ZERO.value, np.where(conc == 0, S.Role.VEHICLE.value, S.Role.TREATED.value)
    )
    rep = keys["replicate"].where(keys["replicate"] != "", "NA")
    plate = keys["cell_line"] + "|replicate=" + rep
    parts = [
        _rows(
            keys[role == r],
            role=r,
            signal=table.loc[role == r, "cell_count"],
            plate=plate[role == r],
            context=context,
        )
        for r in (S.Role.TREATED.value, S.Role.VEHICLE.value, S.Role.TIME_ZERO.value)
    ]
    lines = np.concatenate(
        [
            table.index.to_numpy()[role == r] + 2
            for r in (S.Role.TREATED.value, S.Role.VEHICLE.value, S.Role.TIME_ZERO.value)
        ]
    )
    return finish(pd.concat(parts, ignore_index=True), path=path, lines=lines)


def _case_b(table: pd.DataFrame, *, path: Path, ctrl, time0, context: dict) -> pd.DataFrame:
    """Treated file + control file + time-0 file, joined by ``ctrl_tag`` / ``time0_tag``."""
    require(table, ("concentration", "cell_count", "ctrl_tag"), path=path, what="GR case B data")
    if ctrl is None:
        raise ConfigError("case B needs the control file: read(path, ctrl=..., time0=...)")
    keys = _keys(table, path=path, context=context)
    keys["concentration"] = table["concentration"].str.strip()
    plate = "ctrl_tag=" + table["ctrl_tag"].str.strip()
    frames = [_rows(keys, role=S.Role.TREATED, signal=table["cell_count"], plate=plate, context=context)]
    frames[0][S.SOURCE_FILE] = str(path)
    frames[0][S.SOURCE_LINE] = table.index.to_numpy() + 2
    frames.append(_tagged(Path(ctrl), role=S.Role.VEHICLE, tag="ctrl_tag", context=context))
    if time0 is not None:
        t0 = _tagged(Path(time0), role=S.Role.TIME_ZERO, tag="time0_tag", context=context)
        frames.append(_spread_time0(t0, table))
    out = pd.concat(frames, ignore_index=True)
    return finish(out, path=path, lines=out[S.SOURCE_LINE].to_numpy())


def _tagged(path: Path, *, role: str, tag: str, context: dict) -> pd.DataFrame:
    table = text_table(path)
    table = table.drop(columns=[c for c in table.columns if c == "" or c.startswith("Unnamed")])
    require(table, ("cell_count", tag), path=path, what=f"GR case B {role}")
    keys = _keys(table, path=path, context=context, agent=False)
    context = {**context, "well_prefix": f"{tag.removesuffix('_tag')}:"}  # pseudo wells unique across files
    plate = f"{tag}=" + table[tag].str.strip()
    out = _rows(keys, role=role, signal=table["cell_count"], plate=plate, context=context)
    out["_tag"] = table[tag].str.strip().to_numpy()
    out[S.SOURCE_FILE] = str(path)
    out[S.SOURCE_LINE] = table.index.to_numpy() + 2
    return out


def _spread_time0(t0: pd.DataFrame, data: pd.DataFrame) -> pd.DataFrame:
    """Put each time-0 read on the plate of the control tag(s) it serves (first such plate)."""
    if "time0_tag" not in data:
        return t0.drop(columns="_tag")
    pairs = data[["ctrl_tag", "time0_tag"]].apply(lambda c: c.str.strip()).drop_duplicates("time0_tag")
    target = pairs.set_index("time0_tag")["ctrl_tag"]
    plate = t0["_tag"].map(target)
    t0[S.PLATE] = ("ctrl_tag=" + plate).where(plate.notna(), "time0_tag=" + t0["_tag"])
    return t0.drop(columns="_tag")
