"""A small doseatlas run with hostile names, shared by the review tests (API and browser)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from doseatlas.cli import app

from wells import plate

EVIL = "<script>alert(1)</script>"
CURVE = {c: 100 / (1 + c) for c in (0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30)}
FLAT = dict.fromkeys((0.01, 0.1, 1, 10), 100.0)


def well_rows() -> list[dict[str, str]]:
    """Two data sets; a drug named with a script tag, a cell line with markup, a flat curve."""
    return [
        *plate(treated=CURVE, time_zero=[20, 21], dataset="lab_a", cell_line="<u>CL1", perturbagen=EVIL),
        *plate(treated=FLAT, time_zero=[20, 21], dataset="lab_a", cell_line="<u>CL1", perturbagen="flatinib",
               plate_id="p2"),
        *plate(treated=CURVE, dataset="lab_b", cell_line="CL2", perturbagen="drugamab", plate_id="p3"),
    ]  # fmt: skip


def make_run(directory: Path, *, extra: tuple[str, ...] = ()) -> Path:
    """Write the wells to ``directory`` and run doseatlas on them; returns the run directory."""
    directory.mkdir(parents=True, exist_ok=True)
    wells = directory / "wells.csv"
    if not wells.exists():
        pd.DataFrame(well_rows()).to_csv(wells, index=False)
    out = directory / ("out" + "".join(p.strip("-").replace("/", "_")[:8] for p in extra))
    result = CliRunner().invoke(app, ["run", str(wells), "--out", str(out), *extra])
    assert result.exit_code == 0, (result.output, result.exception)
    return out
