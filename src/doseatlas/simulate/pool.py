"""Random biology from the seed, resolution of a config into explicit pools, per-data-set plans."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from doseatlas import schemas as S
from doseatlas.errors import SimulationError
from doseatlas.simulate.config import (
    CellLine,
    DatasetConfig,
    Drug,
    GeneticPerturbation,
    SimulationConfig,
)
from doseatlas.simulate.model import LN2, Curve, ReadoutModel


def random_cell_lines(n: int, rng: np.random.Generator) -> list[CellLine]:
    """Cell lines ``CL01..`` with doubling time 18-60 h, seeding ~2000 cells, lag 0-6 h."""
    td = np.exp(rng.uniform(np.log(18.0), np.log(60.0), n))
    seeding = np.round(np.exp(rng.normal(np.log(2000.0), 0.3, n)), -1)
    lag = np.round(rng.uniform(0.0, 6.0, n) * 2.0) / 2.0
    width = max(2, len(str(n)))
    return [
        CellLine(
            name=f"CL{i + 1:0{width}d}",
            doubling_time_h=float(td[i]),
            seeding_density=float(seeding[i]),
            lag_h=float(lag[i]),
        )
        for i in range(n)
    ]


def _random_drug(name: str, lines: list[str], rng: np.random.Generator) -> Drug:
    kind = rng.integers(3)  # 0 cytostatic, 1 cytotoxic, 2 mixed
    ec50 = 10.0 ** rng.uniform(-8.5, -5.5)
    hill = float(np.clip(np.exp(rng.normal(0.2, 0.3)), 0.5, 4.0))
    emax = (rng.uniform(0.7, 1.0), rng.uniform(0.2, 0.8), rng.uniform(0.6, 1.0))[kind]
    death = (0.0, rng.uniform(0.03, 0.12), rng.uniform(0.01, 0.05))[kind]
    shift = (0.0, rng.uniform(0.0, 1.0), rng.uniform(0.3, 1.5))[kind]
    sensitivity = dict(zip(lines, np.round(rng.normal(0.0, 0.6, len(lines)), 3).tolist(), strict=True))
    return Drug(
        name=name,
        emax_div=float(emax),
        ec50_div_m=float(ec50),
        hill=hill,
        death_max_per_h=float(death),
        ec50_death_m=float(ec50 * 10.0**shift),
        sensitivity=sensitivity,
    )


def random_drugs(n: int, lines: list[str], rng: np.random.Generator) -> list[Drug]:
    """Drugs ``drug01..``: a mix of cytostatic, cytotoxic and mixed drugs, EC50 3 nM - 3 µM."""
    width = max(2, len(str(n)))
    return [_random_drug(f"drug{i + 1:0{width}d}", lines, rng) for i in range(n)]


def random_genetic(n: int, lines: list[str], rng: np.random.Generator) -> list[GeneticPerturbation]:
    """Knockouts ``GENE01..`` with random division inhibition, death and per-line effect scales."""
    width = max(2, len(str(n)))
    out = []
    for i in range(n):
        scales = np.round(np.exp(rng.normal(0.0, 0.4, len(lines))), 3).tolist()
        out.append(
            GeneticPerturbation(
                name=f"GENE{i + 1:0{width}d}",
                division_inhibition=float(rng.uniform(0.0, 0.9)),
                death_rate_per_h=float(rng.uniform(0.0, 0.03) * (rng.random() < 0.5)),
                effect_scale=dict(zip(lines, scales, strict=True)),
            )
        )
    return out


def resolve(config: SimulationConfig, *, seed: int) -> SimulationConfig:
    """The config with every pool explicit (random ones drawn from ``seed``) and datasets set."""
    rng = np.random.default_rng([seed, 0])
    lines = (
        config.cell_lines if config.cell_lines is not None else random_cell_lines(config.n_cell_lines, rng)
    )
    names = [c.name for c in lines]
    drugs = config.drugs if config.drugs is not None else random_drugs(config.n_drugs, names, rng)
    genetic = config.genetic if config.genetic is not None else random_genetic(config.n_genetic, names, rng)
    datasets = config.datasets if config.datasets is not None else [DatasetConfig(name="sim", time_zero=True)]
    return SimulationConfig(
        cell_lines=lines,
        drugs=drugs,
        genetic=genetic,
        n_cell_lines=len(lines),
        n_drugs=len(drugs),
        n_genetic=len(genetic),
        datasets=datasets,
    )


def _pick(wanted: list[str] | None, pool: dict, label: str, dataset: str) -> list:
    if wanted is None:
        return list(pool.values())
    unknown = [w for w in wanted if w not in pool]
    if unknown:
        raise SimulationError(f"dataset {dataset!r}: unknown {label}(s): {', '.join(unknown)}")
    return [pool[w] for w in dict.fromkeys(wanted)]


@dataclass(frozen=True)
class DatasetPlan:
    """What one data set screens, with one noise-free :class:`Curve` per (cell line, perturbation)."""

    config: DatasetConfig
    lines: list[CellLine]
    drugs: list[Drug]
    genetic: list[GeneticPerturbation]
    readout: ReadoutModel
    curves: dict[tuple[str, str, str], Curve]  # (cell_line, perturbation_type, perturbagen) -> curve

    @property
    def factor(self) -> float:
        """Multiply a dose in the data set's unit by this to get molar."""
        return S.CONCENTRATION_UNITS[self.config.concentration_unit]


def _drug_curve(drug: Drug, line: CellLine, readout: ReadoutModel, n0: float) -> Curve:
    shift = 10.0 ** drug.sensitivity.get(line.name, 0.0)
    return Curve(
        readout=readout,
        n0=n0,
        k0=LN2 / line.doubling_time_h,
        lag_h=line.lag_h + drug.onset_h,
        emax_div=drug.emax_div,
        ec50_div_m=drug.ec50_div_m * shift,
        hill=drug.hill,
        death_max=drug.death_max_per_h,
        ec50_death_m=(drug.ec50_death_m or drug.ec50_div_m) * shift,
        hill_death=drug.hill_death or drug.hill,
        atp_max=drug.atp_interference if readout.readout == S.Readout.ATP else 0.0,
        atp_ec50_m=(drug.atp_ec50_m or drug.ec50_div_m) * shift,
        capacity=line.capacity_cells or np.inf,
    )


def _genetic_curve(gene: GeneticPerturbation, line: CellLine, readout: ReadoutModel, n0: float) -> Curve:
    scale = gene.effect_scale.get(line.name, 1.0)
    return Curve(
        readout=readout,
        n0=n0,
        k0=LN2 / line.doubling_time_h,
        lag_h=line.lag_h,
        emax_div=min(1.0, gene.division_inhibition * scale),
        ec50_div_m=1.0,
        hill=1.0,
        death_max=gene.death_rate_per_h * scale,
        ec50_death_m=1.0,
        hill_death=1.0,
        capacity=line.capacity_cells or np.inf,
    )


def plan_dataset(ds: DatasetConfig, pool: SimulationConfig) -> DatasetPlan:
    """Select the data set's cell lines and perturbations from the pool and build its curves."""
    lines = _pick(ds.cell_lines, {c.name: c for c in pool.cell_lines or []}, "cell line", ds.name)
    drugs = _pick(ds.drugs, {d.name: d for d in pool.drugs or []}, "drug", ds.name)
    genetic = _pick(ds.genetic, {g.name: g for g in pool.genetic or []}, "genetic perturbation", ds.name)
    if not lines or not (drugs or genetic):
        raise SimulationError(f"dataset {ds.name!r}: needs at least one cell line and one perturbation")
    overlap = {d.name for d in drugs} & {g.name for g in genetic}
    if overlap:
        raise SimulationError(
            f"dataset {ds.name!r}: a drug and a gene share the name(s) {', '.join(sorted(overlap))}"
        )
    scale, _, _ = ds.readout_defaults()
    readout = ReadoutModel(
        readout=str(ds.readout),
        scale=scale,
        saturation_cells=ds.saturation_cells,
        dead_signal_fraction=ds.dead_signal_fraction,
        live_stain_fraction=ds.live_stain_fraction,
    )
    curves: dict[tuple[str, str, str], Curve] = {}
    for line in lines:
        n0 = line.seeding_density * ds.seeding_scale
        for drug in drugs:
            curves[(line.name, S.PerturbationType.DRUG.value, drug.name)] = _drug_curve(
                drug, line, readout, n0
            )
        for gene in genetic:
            curves[(line.name, gene.perturbation_type, gene.name)] = _genetic_curve(gene, line, readout, n0)
    if not all(math.isfinite(c.k0) for c in curves.values()):  # pragma: no cover - config validates
        raise SimulationError(f"dataset {ds.name!r}: non-finite growth rate")
    return DatasetPlan(config=ds, lines=lines, drugs=drugs, genetic=genetic, readout=readout, curves=curves)
