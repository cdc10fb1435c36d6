"""Package version (single source: the installed distribution metadata)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("doseatlas")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"
