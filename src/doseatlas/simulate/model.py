"""The cell-population model and the readout models (vectorized numpy, no randomness).

Every function broadcasts over numpy arrays, so the same code computes one well, a million wells
or one point of a truth curve.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from doseatlas import schemas as S

LN2 = float(np.log(2.0))


def hill(conc_m: np.ndarray, ec50_m: np.ndarray, slope: np.ndarray) -> np.ndarray:
    """Hill occupancy ``c^n / (c^n + ec50^n)``: 0 at c = 0, 1 at c = inf."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return expit(slope * (np.log(conc_m) - np.log(ec50_m)))


def _growth_integral(rate: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """``∫_0^tau exp(rate u) du`` = ``expm1(rate tau) / rate`` (``tau`` when rate = 0)."""
    rate, tau = np.broadcast_arrays(np.asarray(rate, dtype=float), np.asarray(tau, dtype=float))
    small = np.abs(rate) < 1e-12
    safe = np.where(small, 1.0, rate)
    return np.where(small, tau * (1.0 + 0.5 * rate * tau), np.expm1(safe * tau) / safe)


def population(
    *,
    n0: np.ndarray,
    k0: np.ndarray,
    lag_h: np.ndarray,
    inhibition: np.ndarray,
    death_per_h: np.ndarray,
    time_h: np.ndarray,
    capacity: np.ndarray | float = np.inf,
) -> tuple[np.ndarray, np.ndarray]:
    """Live and dead cells at ``time_h``.

    Untreated growth at ``k0 = ln2/Td`` until ``lag_h``, then division ``kd = k0 (1 - inhibition)``
    and death ``death_per_h``. Dead cells ``D = death ∫ N`` (closed form, none before the lag).
    With a finite ``capacity`` K (cells per well; confluence), division slows as the well fills:
    ``dN/dt = kd N (1 - N/K) - death N`` (logistic, the untreated phase too), solved in closed form:
    ``N = N_L e^(r tau) / (1 + a E)`` with ``r = kd - death``, ``a = kd N_L / K``,
    ``E = (e^(r tau) - 1) / r`` and ``∫N = N_L log1p(a E) / a``; K = inf gives the exponential model.
    """
    time_h = np.asarray(time_h, dtype=float)
    before = np.minimum(time_h, lag_h)
    tau = np.maximum(time_h - lag_h, 0.0)
    n_lag, _ = _logistic(n0, k0, 0.0, before, capacity)
    live, integral = _logistic(n_lag, k0 * (1.0 - inhibition), death_per_h, tau, capacity)
    return live, death_per_h * integral


def _logistic(n_start, division, death, tau, capacity) -> tuple[np.ndarray, np.ndarray]:
    """Live cells after ``tau`` and their time integral under logistic division and constant death."""
    net = division - death
    grown = _growth_integral(net, tau)  # E = ∫_0^tau exp(net u) du
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        a = division * n_start / capacity
        crowd = np.where(a > 1e-300, np.log1p(a * grown) / np.where(a > 1e-300, a, 1.0), grown)
        live = n_start * np.exp(net * tau) / (1.0 + a * grown)
    return live, n_start * crowd


@dataclass(frozen=True)
class ReadoutModel:
    """Noise-free signal of one readout chemistry as a function of live and dead cells.

    * ``atp``: ``scale * N * atp_factor`` (``atp_factor`` < 1 under an interfering drug);
    * ``resazurin``: ``scale * N / (N + saturation_cells)`` (saturates at high density);
    * ``srb``: ``scale * (N + dead_signal_fraction * D)`` (fixed protein of dead cells still counts);
    * ``nuclei_count``: ``scale * N`` (live nuclei; counting noise is added later);
    * ``dna_dye``: ``scale * (D + live_stain_fraction * N)`` (dead-cell stain: rises as cells die);
    * ``dead_cell_dye``: the same model (the readout registry's name for a dead-cell stain, doseatlas.readouts).
    """

    readout: str
    scale: float
    saturation_cells: float = 40000.0
    dead_signal_fraction: float = 0.5
    live_stain_fraction: float = 0.05

    def signal(self, live: np.ndarray, dead: np.ndarray, atp_factor: np.ndarray | float = 1.0) -> np.ndarray:
        """Background-free expected signal."""
        r = self.readout
        if r == S.Readout.ATP:
            return self.scale * live * atp_factor
        if r == S.Readout.RESAZURIN:
            return self.scale * live / (live + self.saturation_cells)
        if r == S.Readout.SRB:
            return self.scale * (live + self.dead_signal_fraction * dead)
        if r == S.Readout.NUCLEI_COUNT:
            return self.scale * live
        if r in (S.Readout.DNA_DYE, S.Readout.DEAD_CELL_DYE):
            return self.scale * (dead + self.live_stain_fraction * live)
        raise ValueError(f"readout {r!r} is not simulated")  # pragma: no cover - config validates


@dataclass(frozen=True)
class Curve:
    """Noise-free biology of one (data set, cell line, perturbation, readout) in an interior well.

    Drug effects at concentration ``c`` (molar): inhibition ``emax_div h(c; ec50_div, hill)``,
    death ``death_max h(c; ec50_death, hill_death)``, ATP factor ``1 - atp_max h(c; atp_ec50, hill)``.
    A genetic perturbation is the same with every Hill term equal to 1 (evaluate at ``c = inf``).
    """

    readout: ReadoutModel
    n0: float
    k0: float
    lag_h: float
    emax_div: float
    ec50_div_m: float
    hill: float
    death_max: float
    ec50_death_m: float
    hill_death: float
    atp_max: float = 0.0
    atp_ec50_m: float = 1.0
    capacity: float = np.inf

    def effects(self, conc_m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(inhibition, death rate, ATP factor) at molar concentrations (inf = the limit)."""
        conc_m = np.asarray(conc_m, dtype=float)
        inhibition = self.emax_div * hill(conc_m, self.ec50_div_m, self.hill)
        death = self.death_max * hill(conc_m, self.ec50_death_m, self.hill_death)
        atp = 1.0 - self.atp_max * hill(conc_m, self.atp_ec50_m, self.hill)
        return inhibition, death, atp

    def signal(self, conc_m: np.ndarray, time_h: float) -> np.ndarray:
        """Background-free expected signal at ``conc_m`` (molar) read at ``time_h``."""
        inhibition, death, atp = self.effects(conc_m)
        live, dead = population(
            n0=self.n0,
            k0=self.k0,
            lag_h=self.lag_h,
            inhibition=inhibition,
            death_per_h=death,
            time_h=time_h,
            capacity=self.capacity,
        )
        return self.readout.signal(live, dead, atp)

    def time_zero(self) -> float:
        """Signal read at drug addition (time-zero plate: no drug, no dead cells)."""
        return float(self.readout.signal(np.float64(self.n0), np.float64(0.0)))

    def relative_viability(self, conc_m: np.ndarray, time_h: float) -> np.ndarray:
        """``RV = s(c) / s(0)`` at ``time_h``."""
        return self.response(S.RELATIVE_VIABILITY, conc_m, time_h)

    def percent_growth(self, conc_m: np.ndarray, time_h: float) -> np.ndarray:
        """NCI-60 percent growth: ``100 (Ti-Tz)/(C-Tz)`` if ``Ti >= Tz`` else ``100 (Ti-Tz)/Tz``."""
        return self.response(S.PERCENT_GROWTH, conc_m, time_h)

    def gr(self, conc_m: np.ndarray, time_h: float) -> np.ndarray:
        """GR value ``2^(log2(x/x0) / log2(xctrl/x0)) - 1``."""
        return self.response(S.GR, conc_m, time_h)

    def response(self, scale: str, conc_m: np.ndarray, time_h: float) -> np.ndarray:
        """One response scale (:data:`doseatlas.schemas.RESPONSE_SCALES`)."""
        x = self.signal(conc_m, time_h)
        return from_signal(scale, x, control=float(self.signal(0.0, time_h)), time_zero=self.time_zero())


def from_signal(scale: str, x: np.ndarray, *, control: float, time_zero: float) -> np.ndarray:
    """Response on ``scale`` of background-free signal ``x`` given vehicle and time-zero signals."""
    if scale == S.RELATIVE_VIABILITY:
        return x / control
    if scale == S.PERCENT_GROWTH:
        return np.where(
            x >= time_zero,
            100.0 * (x - time_zero) / (control - time_zero),
            100.0 * (x - time_zero) / time_zero,
        )
    if scale == S.GR:
        with np.errstate(divide="ignore", invalid="ignore"):
            return 2.0 ** (np.log2(x / time_zero) / np.log2(control / time_zero)) - 1.0
    raise ValueError(f"unknown response scale {scale!r} (use one of {', '.join(S.RESPONSE_SCALES)})")
