"""Shared test fixtures."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXTERNAL = REPO.parent / "shared" / "data" / "external"


def external_dir(name: str) -> Path:
    """Folder of one external data set; skip (or fail under CI=true) when absent."""
    path = EXTERNAL / name
    if not path.is_dir():
        message = f"external data set {name!r} not found at {path} (needs ../shared beside the checkout)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def script_module(name: str):
    """``scripts/<name>.py`` as a module, loaded once per session: a test and the script that writes the docs
    measure the same thing."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def validate_module():
    """``scripts/validate.py`` as a module: the agreement tests and docs/validation.md measure the same thing."""
    return script_module("validate")
