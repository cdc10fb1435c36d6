"""Ground-truth simulator: cell-population model -> noisy plates + exact truth metrics.

>>> from doseatlas.simulate import simulate, example_config
>>> result = simulate(example_config(), seed=0)
>>> result.wells, result.truth  # canonical well table, exact metrics

See ``docs/simulator.md`` for the equations.
"""

from doseatlas.simulate.config import (
    READOUT_DEFAULTS,
    SIMULATED_READOUTS,
    CellLine,
    DatasetConfig,
    Drug,
    GeneticPerturbation,
    SimulationConfig,
)
from doseatlas.simulate.core import SimulationResult, simulate
from doseatlas.simulate.example import example_config
from doseatlas.simulate.model import Curve, ReadoutModel
from doseatlas.simulate.truth import TRUTH_COLUMNS

__all__ = [
    "READOUT_DEFAULTS",
    "SIMULATED_READOUTS",
    "TRUTH_COLUMNS",
    "CellLine",
    "Curve",
    "DatasetConfig",
    "Drug",
    "GeneticPerturbation",
    "ReadoutModel",
    "SimulationConfig",
    "SimulationResult",
    "example_config",
    "simulate",
]


class _CallableModule(type(__import__("sys"))):
    """``doseatlas.simulate(...)`` is :func:`doseatlas._api.simulate` (the public API), while
    ``doseatlas.simulate.SimulationConfig`` etc. stay the simulator's building blocks."""

    def __call__(self, *args, **kwargs):
        from doseatlas._api import simulate as api_simulate

        return api_simulate(*args, **kwargs)


__import__("sys").modules[__name__].__class__ = _CallableModule
