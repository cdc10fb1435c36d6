"""doseatlas: harmonized, correctly labelled cell-line drug-response data.

The public interface is :data:`__all__` (``docs/api.md``); every other name is private, whatever its module.
Names are imported on first use, so ``import doseatlas`` stays fast.

>>> import doseatlas as da
>>> result = da.run(da.simulate(seed=0).wells)       # or da.run("wells.csv"), da.run("sources.toml")
>>> result.metrics, result.summary, result.provenance
>>> result.write("results")                          # the same files and safety rules as ``doseatlas run``
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from doseatlas._version import __version__

#: public name -> the private module that defines it
_WHERE = {
    "read": "doseatlas._api",
    "run": "doseatlas._api",
    "Result": "doseatlas._api",
    "export": "doseatlas._api",
    "simulate": "doseatlas.simulate",
    "metric_registry": "doseatlas._api",
    "plot_curve": "doseatlas._api",
    "example_path": "doseatlas._api",
    "RunSettings": "doseatlas._options",
    "DoseatlasError": "doseatlas.errors",
    "ConfigError": "doseatlas.errors",
    "InputFileError": "doseatlas.errors",
    "OutputDirectoryError": "doseatlas.errors",
    "SimulationError": "doseatlas.errors",
    "FitError": "doseatlas.errors",
}

__all__ = [
    "ConfigError",
    "DoseatlasError",
    "FitError",
    "InputFileError",
    "OutputDirectoryError",
    "Result",
    "RunSettings",
    "SimulationError",
    "__version__",
    "example_path",
    "export",
    "metric_registry",
    "plot_curve",
    "read",
    "run",
    "simulate",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from doseatlas import simulate
    from doseatlas._api import Result, example_path, export, metric_registry, plot_curve, read, run
    from doseatlas._options import RunSettings
    from doseatlas.errors import (
        ConfigError,
        DoseatlasError,
        FitError,
        InputFileError,
        OutputDirectoryError,
        SimulationError,
    )


def __getattr__(name: str) -> Any:
    """Import a public name on first use (``simulate`` is the callable :mod:`doseatlas.simulate` package)."""
    if name not in _WHERE:
        raise AttributeError(f"module 'doseatlas' has no attribute {name!r}")
    module = importlib.import_module(_WHERE[name])
    value = module if name == "simulate" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
