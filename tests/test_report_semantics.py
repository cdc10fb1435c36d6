"""Issue 18, report figures and tables: censoring arrows drawn inside the axes, metric text never over the
points, flagged plates first with the count of plates not shown, no raw ``nan``, no promise of a missing option."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from doseatlas import plotting, report
from doseatlas import schemas as S
from doseatlas.pipeline import run_pipeline

from wells import frame, plate

DOSES = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)


@pytest.fixture(scope="module")
def result():
    rows = []
    for drug, ic50 in (("weak", 1e4), ("strong", 1e-5)):
        curve = {c: 10.0 + 90.0 / (1.0 + c / ic50) for c in DOSES}
        rows += plate(treated=curve, plate_id=drug, perturbagen=drug, time_zero=[30.0, 31.0])
    return run_pipeline(frame(rows))


def _figure(result, drug: str, metric: str, scale: str):
    m = result.metrics
    pick = m[(m[S.PERTURBAGEN] == drug) & (m[S.METRIC] == metric)].iloc[[0]].assign(**{S.SCALE: scale})
    pick["title"] = "t"
    fig = plotting.curve_grid(pick, result.responses, result.curves, result.metrics, ncols=1)
    fig.canvas.draw() if hasattr(fig, "canvas") and fig.canvas is not None else None
    return fig, fig.axes[0], pick[S.STATUS].iloc[0]


def _renderer(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


@pytest.mark.parametrize(
    ("drug", "metric", "scale", "status"),
    [
        ("weak", "ic50", S.RELATIVE_VIABILITY, "right_censored"),
        ("strong", "ic50", S.RELATIVE_VIABILITY, "left_censored"),
        ("weak", "gi50", S.PERCENT_GROWTH, "right_censored"),
        ("strong", "lc50", S.PERCENT_GROWTH, None),
    ],
)
def test_censoring_arrows_are_inside_the_axes(result, drug, metric, scale, status):
    fig, ax, got = _figure(result, drug, metric, scale)
    if status is not None:
        assert got == status
    renderer = _renderer(fig)
    arrows = [t for t in ax.texts if hasattr(t, "arrow_patch") and t.arrow_patch is not None]
    censored = result.metrics[
        (result.metrics[S.PERTURBAGEN] == drug)
        & result.metrics[S.METRIC].isin(plotting.PANEL_METRICS[scale])
        & result.metrics[S.STATUS].str.endswith("censored")
    ]
    assert len(arrows) == len(censored) > 0
    box = ax.get_window_extent(renderer)
    for arrow in arrows:
        ext = arrow.arrow_patch.get_window_extent(renderer)
        assert box.x0 <= ext.x0 and ext.x1 <= box.x1 and box.y0 <= ext.y0 and ext.y1 <= box.y1, (ext, box)


@pytest.mark.parametrize("drug", ["strong", "weak"])
def test_metric_text_hides_no_point(result, drug):
    fig, ax, _ = _figure(result, drug, "ic50", S.RELATIVE_VIABILITY)
    renderer = _renderer(fig)
    (text,) = [t for t in ax.texts if t.get_text().startswith(("ic50", "ec50", "einf", "auc"))]
    box = text.get_bbox_patch().get_window_extent(renderer)
    points = ax.collections[0].get_offsets()
    shown = ax.transData.transform(np.asarray(points))
    inside = (
        (shown[:, 0] >= box.x0) & (shown[:, 0] <= box.x1) & (shown[:, 1] >= box.y0) & (shown[:, 1] <= box.y1)
    )
    assert len(shown) and not inside.any()


def test_percent_growth_is_in_percent_in_every_table(result):
    r, c = result.responses, result.curves
    pg = c[(c[S.SCALE] == S.PERCENT_GROWTH) & (c["selected"] == "sigmoid")]
    rv = r[r[S.PERCENT_GROWTH].notna()]
    assert len(pg) and rv[S.PERCENT_GROWTH].max() > 50  # percent
    # the fitted levels are in the same unit as the responses (percent, not percent / 100)
    levels = pg[["top", "bottom", "flat_value"]].abs().max(axis=1)
    assert (levels > 50).all(), levels.tolist()


def _plates(n_a: int, n_b: int, flagged_b: int) -> pd.DataFrame:
    ratio = [1.0] * n_a + [0.5] * flagged_b + [1.0] * (n_b - flagged_b)
    return pd.DataFrame(
        {
            S.DATASET: ["lab_a"] * n_a + ["lab_b"] * n_b,
            S.PLATE: [f"p{i:03d}" for i in range(n_a + n_b)],
            "edge_vehicle_ratio": ratio,
            "z_factor": np.nan,
        }
    )


def test_flagged_plates_first_and_how_many_not_shown():
    html = report.plates_section(_plates(60, 36, 23))
    assert "60 of 96 plates shown" in html and "36 not shown" in html
    first = html.index("<tbody>")
    # the 23 flagged lab_b plates come first
    assert html[first:].count("lab_b") >= 23 and html.index("lab_b", first) < html.find("lab_a", first)


def test_no_raw_nan_and_no_promise_of_a_missing_option():
    html = report.plates_section(_plates(3, 3, 1))
    assert ">nan<" not in html and "None" not in html and report.MISSING in html

    class Result:
        plates = _plates(3, 3, 1).assign(vehicle_cv=np.nan)

    qc = report.qc_section(Result())
    assert ">nan<" not in qc
    assert "consider excluding edge wells" not in qc


def test_report_of_a_run_prints_no_nan(result, tmp_path):
    meta = {"package_version": "0", "schema_version": "1", "created_utc": "now", "command": "doseatlas run"}
    page = report.render_report(result, meta={**meta, "inputs": [], "parameters": {}})
    assert ">nan<" not in page and ">None<" not in page and "<NA>" not in page
