"""Configuration of the ground-truth simulator (pydantic v2 models, immutable).

Every invalid value raises :class:`doseatlas.errors.SimulationError` with one message that names
every offending field. Concentrations of the biology (EC50s) are in molar; doses of a data set are
in the data set's ``concentration_unit``; times are in hours.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from doseatlas import schemas as S
from doseatlas.errors import SimulationError

#: readouts the simulator can produce
SIMULATED_READOUTS: tuple[str, ...] = (
    S.Readout.ATP,
    S.Readout.RESAZURIN,
    S.Readout.SRB,
    S.Readout.NUCLEI_COUNT,
    S.Readout.DNA_DYE,
    S.Readout.DEAD_CELL_DYE,
)

#: per readout: (signal_scale, background, additive_sd) used when the data set leaves them unset
READOUT_DEFAULTS: dict[str, tuple[float, float, float]] = {
    S.Readout.ATP: (10.0, 500.0, 100.0),  # RLU per live cell
    S.Readout.RESAZURIN: (60000.0, 2000.0, 300.0),  # RFU at saturation (smax)
    S.Readout.SRB: (2e-5, 0.05, 0.005),  # OD per cell-equivalent of protein
    S.Readout.NUCLEI_COUNT: (1.0, 0.0, 0.0),  # nuclei per live cell
    S.Readout.DNA_DYE: (5.0, 200.0, 50.0),  # RFU per dead cell
    S.Readout.DEAD_CELL_DYE: (5.0, 200.0, 50.0),  # RFU per dead cell
}


def _one_line(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "config"
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}")
    return "invalid simulation config: " + "; ".join(parts)


class _Model(BaseModel):
    """Frozen, strict-keys base whose validation errors are :class:`SimulationError`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise SimulationError(_one_line(exc)) from None


class CellLine(_Model):
    """One cell line: untreated growth (exponential; logistic up to ``capacity_cells`` per well when given:
    confluence), seeding density and drug-onset lag."""

    name: str = Field(min_length=1)
    doubling_time_h: float = Field(gt=0, le=1e4)
    seeding_density: float = Field(default=2000.0, gt=0)
    lag_h: float = Field(default=0.0, ge=0)
    capacity_cells: float | None = Field(default=None, gt=0)


class Drug(_Model):
    """A drug: Hill-shaped inhibition of division and Hill-shaped death rate.

    ``kd(c) = kd0 (1 - emax_div h(c; ec50_div_m, hill))`` and
    ``kdeath(c) = death_max_per_h h(c; ec50_death_m, hill_death)``. ``atp_interference`` lowers
    the ATP signal per live cell by up to that fraction (``h(c; atp_ec50_m, hill)``) without
    killing cells. ``sensitivity`` shifts every EC50 of the drug by ``10**shift`` in a cell line
    (positive = more resistant; cell lines not listed: 0). ``onset_h`` makes a slow-acting drug: its effects
    start ``onset_h`` hours after the cell line's lag (the cells grow untreated until then), so its effect
    grows with the duration beyond the exponential model (as DNA-damage response inhibitors that need days).
    ``interference`` plants a compound that acts on the readout itself: ``{readout: signal}`` adds
    ``signal h(c; interference_ec50_m, interference_hill)`` (in the readout's signal units, times the plate gain)
    to every well holding the drug, with or without cells (compound-only wells show it alone); the truth is
    the biology without it.
    """

    name: str = Field(min_length=1)
    emax_div: float = Field(default=1.0, ge=0, le=1)
    ec50_div_m: float = Field(default=1e-7, gt=0)
    hill: float = Field(default=1.0, gt=0, le=20)
    death_max_per_h: float = Field(default=0.0, ge=0)
    ec50_death_m: float | None = Field(default=None, gt=0)
    hill_death: float | None = Field(default=None, gt=0, le=20)
    atp_interference: float = Field(default=0.0, ge=0, lt=1)
    atp_ec50_m: float | None = Field(default=None, gt=0)
    sensitivity: dict[str, float] = Field(default_factory=dict)
    onset_h: float = Field(default=0.0, ge=0, le=1e4)
    interference: dict[str, float] = Field(default_factory=dict)
    interference_ec50_m: float = Field(default=1e-6, gt=0)
    interference_hill: float = Field(default=1.0, gt=0, le=20)

    @model_validator(mode="after")
    def _finite(self) -> Drug:
        unknown = sorted(set(self.interference) - set(SIMULATED_READOUTS))
        if unknown:
            raise ValueError(
                f"drug {self.name!r}: interference names unknown readout(s) {', '.join(unknown)}"
            )
        if not all(math.isfinite(v) for v in self.interference.values()):
            raise ValueError(f"drug {self.name!r}: interference signals must be finite")
        values = [self.ec50_div_m, self.ec50_death_m, self.atp_ec50_m, *self.sensitivity.values()]
        if not all(math.isfinite(v) for v in values if v is not None):
            raise ValueError(f"drug {self.name!r}: EC50s and sensitivity shifts must be finite")
        return self


class GeneticPerturbation(_Model):
    """A knockout or knockdown: a fixed effect on division and death (no dose).

    ``effect_scale`` multiplies both effects per cell line (cell lines not listed: 1); the
    division inhibition is capped at 1.
    """

    name: str = Field(min_length=1)
    perturbation_type: Literal["knockout", "knockdown"] = "knockout"
    division_inhibition: float = Field(default=0.5, ge=0, le=1)
    death_rate_per_h: float = Field(default=0.0, ge=0)
    effect_scale: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _scales(self) -> GeneticPerturbation:
        if any(not (math.isfinite(v) and v >= 0) for v in self.effect_scale.values()):
            raise ValueError(f"{self.name!r}: effect_scale values must be finite and >= 0")
        return self


class DatasetConfig(_Model):
    """One data set ("lab"): which biology is screened, how, and with which controls and noise.

    ``cell_lines``, ``drugs`` and ``genetic`` name entries of the simulation pool (None = all).
    Doses: ``doses`` (in ``concentration_unit``) or else ``n_doses`` from ``top_concentration``
    (default 10 µM expressed in the unit) down by ``dilution_factor``. ``signal_scale``,
    ``background`` and ``additive_sd`` default per readout (:data:`READOUT_DEFAULTS`).
    ``noiseless=True`` switches off every random perturbation of the wells (gain, seeding,
    edge, multiplicative, additive and counting noise). ``compound_only=True`` adds cell-free plates (cell line
    ``cell_free``) per read time and replicate: every drug at every dose in medium without cells
    (role ``compound_only``) and blanks. ``time_course=True`` reads the same plates at every
    read time (imaging, non-destructive: one set of plates per cell line and replicate, the well's seeding and
    position shared by its reads, the measurement noise drawn per read), for DIP rates.
    """

    name: str = Field(min_length=1)
    readout: str = S.Readout.ATP
    cell_lines: list[str] | None = None
    drugs: list[str] | None = None
    genetic: list[str] | None = None
    read_times_h: list[float] = Field(default_factory=lambda: [72.0], min_length=1)
    time_course: bool = False
    plate_format: Literal[96, 384] = 96
    concentration_unit: str = "uM"
    top_concentration: float | None = Field(default=None, gt=0)
    n_doses: int = Field(default=9, ge=1, le=50)
    dilution_factor: float = Field(default=math.sqrt(10.0), gt=1)
    doses: list[float] | None = None
    replicates: int = Field(default=3, ge=1, le=100)
    vehicle: bool = True
    n_vehicle: int = Field(default=6, ge=1)
    blanks: bool = True
    n_blank: int = Field(default=4, ge=1)
    untreated: bool = False
    n_untreated: int = Field(default=2, ge=1)
    time_zero: bool = False
    n_time_zero: int = Field(default=8, ge=1)
    compound_only: bool = False
    seeding_scale: float = Field(default=1.0, gt=0)
    edge_loss: float = Field(default=0.0, ge=0, lt=1)
    plate_gain_sd: float = Field(default=0.05, ge=0, le=2)
    seeding_cv: float = Field(default=0.1, ge=0, le=2)
    cv: float = Field(default=0.05, ge=0, le=2)
    additive_sd: float | None = Field(default=None, ge=0)
    background: float | None = Field(default=None, ge=0)
    signal_scale: float | None = Field(default=None, gt=0)
    saturation_cells: float = Field(default=40000.0, gt=0)
    dead_signal_fraction: float = Field(default=0.5, ge=0, le=1)
    live_stain_fraction: float = Field(default=0.05, gt=0, le=1)
    counting_noise: bool = True
    noiseless: bool = False

    @model_validator(mode="after")
    def _check(self) -> DatasetConfig:
        if self.readout not in SIMULATED_READOUTS:
            raise ValueError(
                f"dataset {self.name!r}: readout {self.readout!r} is not simulated "
                f"(use one of {', '.join(SIMULATED_READOUTS)})"
            )
        if self.concentration_unit not in S.CONCENTRATION_UNITS:
            raise ValueError(
                f"dataset {self.name!r}: unknown concentration_unit {self.concentration_unit!r} "
                f"(use one of {', '.join(S.CONCENTRATION_UNITS)})"
            )
        if not all(math.isfinite(t) and t > 0 for t in self.read_times_h):
            raise ValueError(f"dataset {self.name!r}: read_times_h must be finite and > 0")
        if len(set(self.read_times_h)) != len(self.read_times_h):
            raise ValueError(f"dataset {self.name!r}: read_times_h has duplicates")
        if self.doses is not None and not (
            self.doses
            and all(math.isfinite(d) and d > 0 for d in self.doses)
            and len(set(self.doses)) == len(self.doses)
        ):
            raise ValueError(f"dataset {self.name!r}: doses must be distinct, finite and > 0")
        if self.n_controls >= self.plate_format:
            raise ValueError(
                f"dataset {self.name!r}: the controls fill the whole {self.plate_format}-well plate"
            )
        if self.time_zero and self.n_time_zero + (self.n_blank if self.blanks else 0) > self.plate_format:
            raise ValueError(f"dataset {self.name!r}: time-zero wells do not fit on one plate")
        return self

    @property
    def n_controls(self) -> int:
        """Control wells on each treated plate."""
        return self.n_vehicle * self.vehicle + self.n_blank * self.blanks + self.n_untreated * self.untreated

    def dose_series(self) -> list[float]:
        """Doses in ``concentration_unit``, ascending."""
        if self.doses is not None:
            return sorted(self.doses)
        top = self.top_concentration
        if top is None:
            top = 1e-5 / S.CONCENTRATION_UNITS[self.concentration_unit]
        return [top / self.dilution_factor**i for i in range(self.n_doses - 1, -1, -1)]

    def readout_defaults(self) -> tuple[float, float, float]:
        """(signal_scale, background, additive_sd) with per-readout defaults filled in."""
        scale, background, sd = READOUT_DEFAULTS[self.readout]
        return (
            scale if self.signal_scale is None else self.signal_scale,
            background if self.background is None else self.background,
            sd if self.additive_sd is None else self.additive_sd,
        )


class SimulationConfig(_Model):
    """The whole simulation: a pool of cell lines and perturbations, and the data sets that screen them.

    Pools left as None are drawn at random from the seed (``n_cell_lines``, ``n_drugs``,
    ``n_genetic``). ``datasets`` None means one data set ``"sim"`` with default settings that
    screens the whole pool.
    """

    cell_lines: list[CellLine] | None = None
    drugs: list[Drug] | None = None
    genetic: list[GeneticPerturbation] | None = None
    n_cell_lines: int = Field(default=4, ge=1, le=10000)
    n_drugs: int = Field(default=4, ge=0, le=10000)
    n_genetic: int = Field(default=0, ge=0, le=10000)
    datasets: list[DatasetConfig] | None = None

    @model_validator(mode="after")
    def _unique(self) -> SimulationConfig:
        for label, items in (
            ("cell line", self.cell_lines),
            ("drug", self.drugs),
            ("genetic perturbation", self.genetic),
            ("dataset", self.datasets),
        ):
            names = [i.name for i in items or []]
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"duplicate {label} name(s): {', '.join(dup)}")
        if self.datasets is not None and not self.datasets:
            raise ValueError("datasets must not be empty (use None for one default data set)")
        return self
