"""Plate layout and noisy well reads of one data set, vectorized over wells (no loop per well).

Layout: every (cell line, read time, replicate) gets the same set of treated plates; each plate
holds an even share of the treated conditions (every perturbation x dose) plus the control wells
(vehicle, untreated, blank), at random positions. With ``time_zero`` every (cell line, replicate)
also gets one time-zero plate (``time_zero`` wells + blanks, ``time_h`` 0, no drug).
"""

from __future__ import annotations

from dataclasses import dataclass
from string import ascii_uppercase

import numpy as np
import pandas as pd

from doseatlas import schemas as S
from doseatlas.simulate.model import LN2, hill, population
from doseatlas.simulate.pool import DatasetPlan

ROLES = np.array(
    [
        S.Role.TREATED.value,
        S.Role.VEHICLE.value,
        S.Role.UNTREATED.value,
        S.Role.BLANK.value,
        S.Role.TIME_ZERO.value,
        S.Role.COMPOUND_ONLY.value,
    ],
    dtype=object,
)
TREATED, VEHICLE, UNTREATED, BLANK, TIME_ZERO, COMPOUND_ONLY = range(6)
#: cell line of the cell-free plates of compound-only wells
CELL_FREE = "cell_free"
SHAPES = {96: (8, 12), 384: (16, 24)}


def well_names(plate_format: int) -> np.ndarray:
    """Well names in row-major order (``A01``, ``A02``, ...)."""
    rows, cols = SHAPES[plate_format]
    return np.array(
        [f"{ascii_uppercase[r]}{c + 1:02d}" for r in range(rows) for c in range(cols)], dtype=object
    )


def is_edge(plate_format: int) -> np.ndarray:
    """True for the outer ring of wells, in row-major order."""
    rows, cols = SHAPES[plate_format]
    r, c = np.divmod(np.arange(rows * cols), cols)
    return (r == 0) | (r == rows - 1) | (c == 0) | (c == cols - 1)


@dataclass
class Conditions:
    """Treated conditions of a data set (same for every cell line), with a control sentinel at index -1."""

    ptype: np.ndarray
    name: np.ndarray
    conc: np.ndarray  # in the data set unit; NaN for genetic perturbations and controls
    unit: np.ndarray
    inhibition: np.ndarray  # (n_lines, n_conditions + 1)
    death: np.ndarray
    atp: np.ndarray
    lag: np.ndarray  # (n_lines, n_conditions + 1): hours before the effects start (cell lag + drug onset)
    interference: np.ndarray  # (n_conditions + 1,): the compound's own signal on the data set's readout

    @property
    def n(self) -> int:
        return len(self.ptype) - 1


def conditions(plan: DatasetPlan) -> Conditions:
    """Every (perturbation, dose) of the plan with per-cell-line effects."""
    doses = np.asarray(plan.config.dose_series(), dtype=float)
    unit = plan.config.concentration_unit
    keys = [(S.PerturbationType.DRUG.value, d.name) for d in plan.drugs]
    ptype = [k[0] for k in keys for _ in doses] + [g.perturbation_type for g in plan.genetic] + [""]
    name = [k[1] for k in keys for _ in doses] + [g.name for g in plan.genetic] + [None]
    conc = np.concatenate([np.tile(doses, len(keys)), np.full(len(plan.genetic) + 1, np.nan)])
    units = [unit] * (len(keys) * len(doses)) + [""] * (len(plan.genetic) + 1)
    keys += [(g.perturbation_type, g.name) for g in plan.genetic]
    molar = np.concatenate(
        [np.tile(doses * plan.factor, len(plan.drugs)), np.full(len(plan.genetic), np.inf)]
    )
    per_key = np.repeat(np.arange(len(keys)), [len(doses)] * len(plan.drugs) + [1] * len(plan.genetic))
    effects = np.zeros((3, len(plan.lines), len(ptype)))
    effects[2] = 1.0
    lag = np.repeat(np.array([line.lag_h for line in plan.lines], dtype=float)[:, None], len(ptype), axis=1)
    for i, line in enumerate(plan.lines):
        for j, key in enumerate(keys):
            sel = np.flatnonzero(per_key == j)
            curve = plan.curves[(line.name, *key)]
            effects[:, i, sel] = curve.effects(molar[sel])
            lag[i, sel] = curve.lag_h
    return Conditions(
        interference=_interference(plan, molar),
        ptype=np.array(ptype, dtype=object),
        name=np.array(name, dtype=object),
        conc=conc,
        unit=np.array(units, dtype=object),
        inhibition=effects[0],
        death=effects[1],
        atp=effects[2],
        lag=lag,
    )


def _interference(plan: DatasetPlan, molar: np.ndarray) -> np.ndarray:
    """The planted signal of each condition's compound on the data set's readout (0 for genetic and controls)."""
    readout = str(plan.config.readout)
    n_doses = len(plan.config.dose_series())
    amax = np.repeat([d.interference.get(readout, 0.0) for d in plan.drugs], n_doses)
    ec50 = np.repeat([d.interference_ec50_m for d in plan.drugs], n_doses)
    slope = np.repeat([d.interference_hill for d in plan.drugs], n_doses)
    drugs = amax * hill(molar[: len(amax)], ec50, slope) if len(amax) else np.zeros(0)
    return np.concatenate([drugs, np.zeros(len(molar) - len(amax) + 1)])


def interference_truth(plan: DatasetPlan) -> pd.DataFrame:
    """The planted interference of every drug x dose of a data set (noise- and gain-free signal units)."""
    cond = conditions(plan)
    drug = cond.ptype == S.PerturbationType.DRUG.value
    return pd.DataFrame(
        {
            S.DATASET: plan.config.name,
            S.READOUT: str(plan.config.readout),
            S.PERTURBAGEN: cond.name[drug],
            S.CONCENTRATION: cond.conc[drug] * plan.factor,
            S.COMPOUND_SIGNAL: cond.interference[drug],
        }
    )


def _slots(plate: np.ndarray) -> np.ndarray:
    """Position of each row within its plate (0, 1, ...), for rows in any order."""
    order = np.argsort(plate, kind="stable")
    counts = np.bincount(plate)
    starts = np.cumsum(counts) - counts
    slot = np.empty_like(plate)
    slot[order] = np.arange(len(plate)) - np.repeat(starts, counts)
    return slot


def treated_template(n_conditions: int, control_roles: np.ndarray, capacity: int) -> dict[str, np.ndarray]:
    """One (cell line, read time, replicate) block: condition, role and plate of each well."""
    n_plates = -(-n_conditions // capacity)
    plate_of = (np.arange(n_conditions) * n_plates) // n_conditions
    n_ctrl = len(control_roles)
    return {
        "cond": np.concatenate([np.arange(n_conditions), np.full(n_plates * n_ctrl, -1)]),
        "role": np.concatenate([np.full(n_conditions, TREATED), np.tile(control_roles, n_plates)]),
        "plate": np.concatenate([plate_of, np.repeat(np.arange(n_plates), n_ctrl)]),
        "n_plates": np.array(n_plates),
    }


def _blocks(template: dict[str, np.ndarray], n_blocks: int) -> dict[str, np.ndarray]:
    """Tile a template over blocks; ``plate`` becomes a global plate index."""
    width = len(template["cond"])
    block = np.repeat(np.arange(n_blocks), width)
    return {
        "block": block,
        "cond": np.tile(template["cond"], n_blocks),
        "role": np.tile(template["role"], n_blocks).astype(np.int64),
        "plate": np.tile(template["plate"], n_blocks) + block * int(template["n_plates"]),
    }


def _layout(plan: DatasetPlan, n_conditions: int) -> tuple[dict[str, np.ndarray], list[str]]:
    """Every well of the data set: line, time, replicate, role, condition and global plate; plate names."""
    ds = plan.config
    n_lines, times, reps = len(plan.lines), np.asarray(ds.read_times_h, dtype=float), ds.replicates
    controls = np.array(
        [VEHICLE] * (ds.n_vehicle * ds.vehicle)
        + [UNTREATED] * (ds.n_untreated * ds.untreated)
        + [BLANK] * (ds.n_blank * ds.blanks),
        dtype=np.int64,
    )
    tmpl = treated_template(n_conditions, controls, ds.plate_format - len(controls))
    if ds.time_course:
        wells, names = _time_course_layout(plan, tmpl, times)
    else:
        n_pp = int(tmpl["n_plates"])
        wells = _blocks(tmpl, n_lines * len(times) * reps)
        line, tix, rep = np.unravel_index(wells.pop("block"), (n_lines, len(times), reps))
        wells.update(line=line, time=times[tix], rep=rep, uid=np.arange(len(line)))
        names = [
            f"{ds.name}-{plan.lines[li].name}-{times[ti]:g}h-r{r + 1}-p{k + 1}"
            for li in range(n_lines)
            for ti in range(len(times))
            for r in range(reps)
            for k in range(n_pp)
        ]
    if ds.compound_only and plan.drugs:
        wells, names = _with_cell_free(plan, wells, names, times)
    if ds.time_zero:
        roles = np.array([TIME_ZERO] * ds.n_time_zero + [BLANK] * (ds.n_blank * ds.blanks), dtype=np.int64)
        t0 = {
            "cond": np.full(len(roles), -1),
            "role": roles,
            "plate": np.zeros(len(roles), np.int64),
            "n_plates": np.array(1),
        }
        zero = _blocks(t0, n_lines * reps)
        line0, rep0 = np.unravel_index(zero.pop("block"), (n_lines, reps))
        uid0 = wells["uid"].max() + 1 + np.arange(len(line0))
        zero.update(
            line=line0, time=np.zeros(len(line0)), rep=rep0, plate=zero["plate"] + len(names), uid=uid0
        )
        names += [
            f"{ds.name}-{plan.lines[li].name}-t0-r{r + 1}" for li in range(n_lines) for r in range(reps)
        ]
        wells = {k: np.concatenate([wells[k], zero[k]]) for k in wells}
    return wells, names


def _with_cell_free(plan: DatasetPlan, wells: dict, names: list[str], times: np.ndarray) -> tuple[dict, list]:
    """Cell-free plates per (read time, replicate): every drug x dose as a compound-only well, and blanks."""
    ds = plan.config
    n_drug = len(plan.drugs) * len(ds.dose_series())
    blanks = np.array([BLANK] * (ds.n_blank * ds.blanks), dtype=np.int64)
    tmpl = treated_template(n_drug, blanks, ds.plate_format - len(blanks))
    tmpl["role"] = np.where(tmpl["role"] == TREATED, COMPOUND_ONLY, tmpl["role"])
    free = _blocks(tmpl, len(times) * ds.replicates)
    tix, rep = np.unravel_index(free.pop("block"), (len(times), ds.replicates))
    free.update(line=np.full(len(tix), -1), time=times[tix], rep=rep, plate=free["plate"] + len(names),
                uid=wells["uid"].max() + 1 + np.arange(len(tix)))  # fmt: skip
    n_pp = int(tmpl["n_plates"])
    names = names + [f"{ds.name}-{CELL_FREE}-{times[ti]:g}h-r{r + 1}-p{k + 1}" for ti in range(len(times))
                     for r in range(ds.replicates) for k in range(n_pp)]  # fmt: skip
    return {k: np.concatenate([wells[k], free[k]]) for k in wells}, names


def _time_course_layout(plan: DatasetPlan, tmpl: dict, times: np.ndarray) -> tuple[dict, list[str]]:
    """Plates read at every read time (imaging, non-destructive): one set of plates per (cell line, replicate),
    the same wells (``uid``) at every time."""
    ds, n_lines, reps = plan.config, len(plan.lines), plan.config.replicates
    n_pp = int(tmpl["n_plates"])
    once = _blocks(tmpl, n_lines * reps)
    line, rep = np.unravel_index(once.pop("block"), (n_lines, reps))
    once.update(line=line, rep=rep, uid=np.arange(len(line)))
    wells = {k: np.tile(v, len(times)) for k, v in once.items()}
    wells["time"] = np.repeat(times, len(line))
    names = [f"{ds.name}-{plan.lines[li].name}-r{r + 1}-p{k + 1}" for li in range(n_lines) for r in range(reps)
             for k in range(n_pp)]  # fmt: skip
    return wells, names


def _noise(plan: DatasetPlan, wells: dict[str, np.ndarray], n_plates: int, rng: np.random.Generator) -> dict:
    """Random factors: plate gain, well position, seeding (per well: shared by the reads of a time course),
    multiplicative and additive noise (per read)."""
    ds, n = plan.config, len(wells["cond"])
    quiet = ds.noiseless
    n_wells = ds.plate_format
    perm = rng.permuted(np.tile(np.arange(n_wells), (n_plates, 1)), axis=1)
    uid, first = np.unique(wells["uid"], return_index=True)
    slot = np.empty(len(uid), dtype=np.int64)
    slot[np.argsort(uid)] = _slots(wells["plate"][first])
    position = perm[wells["plate"], slot[np.searchsorted(uid, wells["uid"])]]
    _, _, additive_sd = ds.readout_defaults()
    gain = np.exp(rng.normal(0.0, 0.0 if quiet else ds.plate_gain_sd, n_plates))[wells["plate"]]
    seeding = np.exp(
        rng.normal(0.0, 0.0 if quiet else ds.seeding_cv, len(uid))
    )  # after the gain: same stream
    return {
        "position": position,
        "gain": gain,
        "edge": np.where(is_edge(n_wells)[position], 1.0 - (0.0 if quiet else ds.edge_loss), 1.0),
        "seeding": seeding[np.searchsorted(uid, wells["uid"])],
        "mult": np.exp(rng.normal(0.0, 0.0 if quiet else ds.cv, n)),
        "add": rng.normal(0.0, 0.0 if quiet else additive_sd, n),
    }


def _signals(
    plan: DatasetPlan, cond: Conditions, wells: dict, noise: dict, rng: np.random.Generator
) -> tuple:
    """Observed signal and nominal seeding density of every well."""
    ds = plan.config
    _, background, _ = ds.readout_defaults()
    has_cells = (wells["role"] != BLANK) & (wells["line"] >= 0)
    nominal = np.array([c.seeding_density for c in plan.lines]) * ds.seeding_scale
    seeding = np.where(has_cells, nominal[wells["line"]], 0.0)
    li, ci = np.maximum(wells["line"], 0), wells["cond"]  # cell-free wells (line -1): no cells seeded
    k0 = np.array([LN2 / c.doubling_time_h for c in plan.lines])[li]
    lag = cond.lag[li, ci]
    live, dead = population(
        n0=seeding * noise["seeding"],
        k0=k0,
        lag_h=lag,
        inhibition=cond.inhibition[li, ci],
        death_per_h=cond.death[li, ci],
        time_h=wells["time"],
        capacity=np.array([c.capacity_cells or np.inf for c in plan.lines])[li],
    )
    mean = plan.readout.signal(live, dead, cond.atp[li, ci]) * noise["gain"] * noise["edge"] * noise["mult"]
    mean = mean + background + cond.interference[ci] * noise["gain"]  # the compound's own signal
    if ds.readout == S.Readout.NUCLEI_COUNT and ds.counting_noise and not ds.noiseless:
        mean = rng.poisson(mean).astype(float)
    return mean + noise["add"], seeding


def dataset_wells(plan: DatasetPlan, *, rng: np.random.Generator) -> pd.DataFrame:
    """The canonical well table of one data set (columns :data:`doseatlas.schemas.WELL_COLUMNS`)."""
    ds = plan.config
    cond = conditions(plan)
    wells, plate_names = _layout(plan, cond.n)
    noise = _noise(plan, wells, len(plate_names), rng)
    signal, seeding = _signals(plan, cond, wells, noise, rng)
    role, ci = wells["role"], wells["cond"]
    vehicle = role == VEHICLE
    vehicle_unit = ds.concentration_unit if plan.drugs else ""
    n = len(role)
    return pd.DataFrame(
        {
            S.DATASET: np.full(n, ds.name, dtype=object),
            S.PLATE: np.array(plate_names, dtype=object)[wells["plate"]],
            S.WELL: well_names(ds.plate_format)[noise["position"]],
            S.CELL_LINE: np.array([*(c.name for c in plan.lines), CELL_FREE], dtype=object)[wells["line"]],
            S.ROLE: ROLES[role],
            S.PERTURBATION_TYPE: cond.ptype[ci],
            S.PERTURBAGEN: cond.name[ci],
            S.CONCENTRATION: np.where(vehicle, 0.0, cond.conc[ci]),
            S.CONCENTRATION_UNIT: np.where(vehicle, vehicle_unit, cond.unit[ci]).astype(object),
            S.TIME_H: wells["time"].astype(float),
            S.READOUT: np.full(n, str(ds.readout), dtype=object),
            S.SIGNAL: signal,
            S.REPLICATE: (wells["rep"] + 1).astype(np.int64),
            S.SEEDING_DENSITY: seeding,
        },
        columns=list(S.WELL_COLUMNS),
    )
