"""Shared test fixtures."""

from __future__ import annotations

import os
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
