"""doseatlas: harmonized, correctly labelled cell-line drug-response data."""

from doseatlas._version import __version__

__all__ = ["__version__"]
