"""Issue 18 acceptance: the report of a censored-heavy data set as Chromium renders it (skipped without Chromium;
``scripts/report_screenshots.py`` makes the screenshots in docs/img/ the same way)."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from doseatlas.cli import app

from conftest import script_module


def _script():
    return script_module("report_screenshots")


@pytest.fixture(scope="module")
def censored_report(tmp_path_factory):
    shots = _script()
    if shots.browser() is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    folder = tmp_path_factory.mktemp("censored")
    wells = folder / "wells.csv"
    shots.censored_wells().to_csv(wells, index=False)
    result = CliRunner().invoke(app, ["run", str(wells), "--out", str(folder / "out")])
    assert result.exit_code == 0, result.output
    return folder / "out" / "report.html"


def test_censored_heavy_report_in_chromium(censored_report, tmp_path):
    from matplotlib.image import imread

    shots = _script()
    page = shots.dom(censored_report)
    assert 'id="dose-response-curves"' in page and "data:image/png;base64," in page
    assert ">nan<" not in page and ">None<" not in page
    assert "consider excluding edge wells" not in page
    png = tmp_path / "curves.png"
    shots.screenshot(censored_report, png, height=1000, anchor="dose-response-curves")
    pixels = imread(png)
    assert pixels.shape[:2] == (1000, 1280)
    assert np.asarray(pixels)[..., :3].std() > 0.05  # drawn, not a blank page
