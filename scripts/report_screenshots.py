"""Check the report in headless Chromium: run the bundled example and a censored-heavy data set, render each
``report.html`` in Chromium and save screenshots of the top and of the curve figures under ``docs/img/``.

Usage: ``python scripts/report_screenshots.py [--work DIR] [--docs docs/img]`` (needs ``chromium``; Debian:
``apt-get install -y chromium``). ``tests/test_report_browser.py`` uses the same functions (and skips without
Chromium).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run")  # fmt: skip
DOSES_UM = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
#: IC50 (µM) of each drug: most of them outside the tested range on one side or the other
POTENCY = {"inert": 1e5, "weak": 300.0, "mild": 60.0, "potent": 3e-5, "lethal": 1e-6, "mid": 0.1}


def browser() -> str | None:
    """The Chromium executable on PATH, if any."""
    return next((b for b in map(shutil.which, BROWSERS) if b), None)


def censored_wells(seed: int = 0) -> pd.DataFrame:
    """A small canonical well table where most metrics are censored: drugs whose IC50 lies far above or below the
    tested range, on 3 cell lines with vehicle, blank and time-zero wells (so every scale is computed)."""
    rng = np.random.default_rng(seed)
    rows = []
    for cell in ("CL-1", "CL-2", "CL-3"):
        for drug, ic50 in POTENCY.items():
            rows += _plate_rows(rng, cell, drug, ic50)
    table = pd.DataFrame(rows)
    table["perturbation_type"] = np.where(table["role"] == "treated", "drug", "")
    table["perturbagen"] = table["perturbagen"].fillna("")
    table["concentration_unit"] = "uM"
    table["time_h"] = table["time_h"].fillna(72.0)
    table["readout"] = "atp"
    table["concentration"] = table["concentration"].astype(object).where(table["concentration"].notna(), "")
    return table


def _plate_rows(rng: np.random.Generator, cell: str, drug: str, ic50: float) -> list[dict]:
    """One plate of ``drug`` on ``cell`` (duplicate wells per dose) and its time-zero plate."""
    plate = f"{cell}_{drug}"
    base = {"dataset": "censored", "plate": plate, "cell_line": cell}
    rows = [{**base, "role": "vehicle", "concentration": 0, "signal": v} for v in rng.normal(1000, 20, 4)]
    rows += [{**base, "role": "blank", "signal": v} for v in (50.0, 52.0)]
    rows += [
        {**base, "role": "time_zero", "signal": v, "time_h": 0, "plate": f"{plate}_t0"}
        for v in rng.normal(300, 10, 2)
    ]
    for c in DOSES_UM:
        level = 50 + 950 * (0.05 + 0.95 / (1 + c / ic50))
        rows += [
            {
                **base,
                "role": "treated",
                "perturbagen": drug,
                "concentration": c,
                "signal": level * rng.normal(1, 0.03),
            }
            for _ in range(2)
        ]
    return rows


def run(inputs: list[Path], out: Path) -> None:
    """``doseatlas run`` (this checkout's code) into ``out``."""
    env = {"PYTHONPATH": str(REPO / "src")}
    subprocess.run(
        [sys.executable, "-m", "doseatlas.cli", "run", *map(str, inputs), "--out", str(out)],
        check=True,
        env={**__import__("os").environ, **env},
        capture_output=True,
    )


def screenshot(html: Path, png: Path, *, width: int = 1280, height: int = 900, anchor: str = "") -> None:
    """Render ``html`` in headless Chromium and save a screenshot of ``width`` x ``height`` pixels, scrolled to the
    section ``anchor`` (a heading id) when given: the page is shown in a frame opened at the anchor, as headless
    Chromium does not scroll a top-level page to its fragment before the screenshot."""
    exe = browser()
    if exe is None:
        raise RuntimeError("chromium not found")
    with tempfile.TemporaryDirectory() as scratch:
        url = html.resolve().as_uri()
        if anchor:
            frame = Path(scratch) / "frame.html"
            frame.write_text(
                f'<!doctype html><html><body style="margin:0"><iframe src="{url}#{anchor}" '
                f'style="border:0;width:{width}px;height:{height}px"></iframe></body></html>',
                encoding="utf-8",
            )
            url = frame.as_uri()
        subprocess.run(
            [exe, *FLAGS, "--hide-scrollbars", "--virtual-time-budget=5000", "--allow-file-access-from-files",
             f"--screenshot={png}", f"--window-size={width},{height}", url],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip


def dom(html: Path) -> str:
    """The page as Chromium built it (``--dump-dom``)."""
    exe = browser()
    done = subprocess.run(
        [exe, *FLAGS, "--virtual-time-budget=5000", "--dump-dom", html.resolve().as_uri()],
        check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return done.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("report_check"))
    parser.add_argument("--docs", type=Path, default=REPO / "docs" / "img")
    args = parser.parse_args(argv)
    args.work.mkdir(exist_ok=True)
    wells = args.work / "censored_wells.csv"
    censored_wells().to_csv(wells, index=False)
    for name, inputs in (("example", []), ("censored", [wells])):
        out = args.work / f"out_{name}"
        run(inputs, out)
        screenshot(out / "report.html", args.docs / f"report_{name}_top.png", height=1100)
        screenshot(
            out / "report.html",
            args.docs / f"report_{name}_curves.png",
            height=1400,
            anchor="dose-response-curves",
        )
        print(f"{name}: {out / 'report.html'} -> {args.docs}/report_{name}_*.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
