"""The bundled example: two drug-screening labs that disagree for ordinary reasons, and a knockout set.

* ``lab_a``: 72 h ATP screen, 96-well, vehicle + blank wells only (no time-zero plates), µM doses
  (10 µM top, half-log), mild edge effect. ``atpzolid`` lowers ATP per cell without killing.
* ``lab_b``: 72 h and 96 h resazurin screen, 384-well, time-zero plates, strong edge effect,
  nM doses (30 µM top, 3-fold), fewer cells seeded; resazurin saturates at high density.
* ``crispr_ko``: arrayed knockouts / a knockdown read by nuclei counting at 96 h, time-zero plates.

Biology is shared (same cell lines, same drugs); only protocols differ. ``weakamide`` never
reaches 50 % in range (right-censored), ``potentib`` is past 50 % at the lowest dose in most
lines (left-censored), ``statinib`` is cytostatic and ``toxomycin`` cytotoxic.
"""

from __future__ import annotations

from doseatlas.simulate.config import CellLine, DatasetConfig, Drug, GeneticPerturbation, SimulationConfig

_LINES = [  # name, doubling time (h), seeding (cells/well, 96-well), lag (h)
    ("CL01", 20.0, 1500.0, 0.0),
    ("CL02", 26.0, 2000.0, 2.0),
    ("CL03", 32.0, 2500.0, 4.0),
    ("CL04", 40.0, 3000.0, 0.0),
    ("CL05", 48.0, 4000.0, 6.0),
    ("CL06", 24.0, 2000.0, 3.0),
    ("CL07", 30.0, 2500.0, 0.0),
    ("CL08", 60.0, 4000.0, 2.0),
]


def _sens(*shifts: float) -> dict[str, float]:
    """log10 EC50 shifts for CL01..CL08 in order."""
    return {name: s for (name, *_), s in zip(_LINES, shifts, strict=True)}


def _drugs() -> list[Drug]:
    return [
        Drug(
            name="statinib",
            emax_div=0.95,
            ec50_div_m=3e-8,
            hill=1.2,
            sensitivity=_sens(0, -0.3, 0.2, 0.5, 1.0, -0.5, 0.3, 0.8),
        ),
        Drug(
            name="toxomycin",
            emax_div=0.5,
            ec50_div_m=2e-7,
            hill=1.5,
            death_max_per_h=0.08,
            ec50_death_m=5e-7,
            sensitivity=_sens(-0.5, 0, 0.3, 0.6, 0.2, -0.2, 1.0, 0.4),
        ),
        Drug(
            name="atpzolid",
            emax_div=0.25,
            ec50_div_m=1e-6,
            hill=1.3,
            atp_interference=0.75,
            atp_ec50_m=2e-7,
            sensitivity=_sens(0, 0.2, -0.2, 0.1, 0, 0.3, -0.1, 0.2),
        ),
        Drug(
            name="weakamide",
            emax_div=1.0,
            ec50_div_m=3e-5,
            hill=1.0,
            sensitivity=_sens(0, 0.3, 0.5, 0, 0.2, 0.4, 0.1, 0.6),
        ),
        Drug(
            name="potentib",
            emax_div=0.9,
            ec50_div_m=1e-9,
            hill=1.0,
            death_max_per_h=0.1,
            ec50_death_m=3e-9,
            sensitivity=_sens(-0.8, -0.5, 0, 0.5, 1.0, -1.0, 0.3, 1.5),
        ),
        Drug(
            name="mixtecan",
            emax_div=0.8,
            ec50_div_m=1e-7,
            hill=0.9,
            death_max_per_h=0.03,
            ec50_death_m=1e-6,
            hill_death=2.0,
            sensitivity=_sens(0.2, 0, -0.4, 0.7, 1.5, 0.1, -0.3, 0.5),
        ),
        Drug(
            name="partialin",
            emax_div=0.55,
            ec50_div_m=5e-8,
            hill=2.0,
            sensitivity=_sens(0, 0.5, -0.5, 0, 1.0, 0.2, 0.8, 0),
        ),
    ]


def _genetic() -> list[GeneticPerturbation]:
    return [
        GeneticPerturbation(name="PLK1", division_inhibition=0.6, death_rate_per_h=0.05),
        GeneticPerturbation(name="MYC", division_inhibition=0.7, effect_scale={"CL04": 0.3}),
        GeneticPerturbation(name="KRAS", division_inhibition=0.8, effect_scale={"CL01": 0.0, "CL02": 0.1}),
        GeneticPerturbation(name="AAVS1", division_inhibition=0.0),  # safe-harbour cutting control
        GeneticPerturbation(
            name="BRD4", perturbation_type="knockdown", division_inhibition=0.4, death_rate_per_h=0.01
        ),
    ]


def example_config() -> SimulationConfig:
    """The bundled example (``lab_a``, ``lab_b``, ``crispr_ko``); see the module docstring."""
    lab_a = DatasetConfig(
        name="lab_a",
        readout="atp",
        cell_lines=["CL01", "CL02", "CL03", "CL04", "CL05", "CL06"],
        genetic=[],
        read_times_h=[72.0],
        concentration_unit="uM",
        top_concentration=10.0,
        replicates=3,
        edge_loss=0.05,
    )
    lab_b = DatasetConfig(
        name="lab_b",
        readout="resazurin",
        cell_lines=["CL03", "CL04", "CL05", "CL06", "CL07", "CL08"],
        drugs=["statinib", "toxomycin", "atpzolid", "potentib", "mixtecan", "partialin"],
        genetic=[],
        read_times_h=[72.0, 96.0],
        plate_format=384,
        concentration_unit="nM",
        top_concentration=30000.0,
        dilution_factor=3.0,
        replicates=2,
        n_vehicle=16,
        n_blank=8,
        time_zero=True,
        n_time_zero=16,
        seeding_scale=0.6,
        edge_loss=0.3,
        cv=0.07,
    )
    crispr = DatasetConfig(
        name="crispr_ko",
        readout="nuclei_count",
        cell_lines=["CL01", "CL02", "CL04", "CL05"],
        drugs=[],
        read_times_h=[96.0],
        replicates=6,
        time_zero=True,
    )
    return SimulationConfig(
        cell_lines=[
            CellLine(name=n, doubling_time_h=td, seeding_density=s, lag_h=lag) for n, td, s, lag in _LINES
        ],
        drugs=_drugs(),
        genetic=_genetic(),
        datasets=[lab_a, lab_b, crispr],
    )
