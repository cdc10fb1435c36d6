"""Entry point of the simulator: :func:`simulate`."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from doseatlas import schemas as S
from doseatlas.errors import SimulationError
from doseatlas.simulate.config import SimulationConfig
from doseatlas.simulate.model import Curve
from doseatlas.simulate.plates import dataset_wells, interference_truth
from doseatlas.simulate.pool import plan_dataset, resolve
from doseatlas.simulate.truth import TRUTH_COLUMNS, dataset_truth


@dataclass(frozen=True)
class SimulationResult:
    """Output of :func:`simulate`.

    Attributes
    ----------
    wells
        The canonical well table (columns :data:`doseatlas.schemas.WELL_COLUMNS`).
    truth
        Exact metrics in long format (see ``docs/simulator.md``), concentrations in molar.
    config
        The resolved config: every random cell line, drug and knockout made explicit.
    curves
        ``(dataset, cell_line, perturbation_type, perturbagen) -> Curve``: the noise-free model
        of an interior well, for evaluating the true response at any concentration and time.
    interference
        The planted interference (``Drug.interference``): per data set, drug and dose (molar) the compound's own
        noise-free signal on the data set's readout (``compound_signal``; 0 for a clean compound).
    """

    wells: pd.DataFrame
    truth: pd.DataFrame
    config: SimulationConfig
    curves: dict[tuple[str, str, str, str], Curve] = field(repr=False)
    interference: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    def response(
        self,
        *,
        dataset: str,
        cell_line: str,
        perturbagen: str,
        scale: str,
        concentration: np.ndarray | float,
        time_h: float,
        perturbation_type: str = S.PerturbationType.DRUG.value,
    ) -> np.ndarray:
        """True (noise-free) response on ``scale`` at molar ``concentration`` and ``time_h``.

        For a genetic perturbation pass ``concentration=np.inf`` (its effect has no dose).
        """
        key = (dataset, cell_line, str(perturbation_type), perturbagen)
        if key not in self.curves:
            raise SimulationError(f"no simulated curve for {key}")
        return self.curves[key].response(scale, np.asarray(concentration, dtype=float), time_h)


def simulate(config: SimulationConfig | None = None, *, seed: int = 0) -> SimulationResult:
    """Simulate well reads of every data set of ``config`` and their exact truth.

    Parameters
    ----------
    config
        :class:`SimulationConfig`; ``None`` = defaults (4 random cell lines x 4 random drugs,
        one 72 h ATP data set with vehicle, blank and time-zero wells).
    seed
        Non-negative integer; the same seed and config give identical tables.

    Returns
    -------
    SimulationResult
        ``wells``, ``truth``, the resolved ``config`` and the noise-free ``curves``.
    """
    try:
        seed = operator.index(seed)
    except TypeError:
        raise SimulationError(f"seed must be an integer, got {seed!r}") from None
    if seed < 0:
        raise SimulationError(f"seed must be >= 0, got {seed}")
    if config is not None and not isinstance(config, SimulationConfig):
        raise SimulationError(f"config must be a SimulationConfig, got {type(config).__name__}")
    pool = resolve(config or SimulationConfig(), seed=seed)
    wells, truth, curves, planted = [], [], {}, []
    for i, ds in enumerate(pool.datasets or []):
        plan = plan_dataset(ds, pool)
        wells.append(dataset_wells(plan, rng=np.random.default_rng([seed, 1, i])))
        truth.append(dataset_truth(plan))
        planted.append(interference_truth(plan))
        curves.update({(ds.name, *key): curve for key, curve in plan.curves.items()})
    return SimulationResult(
        wells=pd.concat(wells, ignore_index=True),
        truth=pd.concat(truth, ignore_index=True).reindex(columns=list(TRUTH_COLUMNS)),
        config=pool,
        curves=curves,
        interference=pd.concat(planted, ignore_index=True),
    )
