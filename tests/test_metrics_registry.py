"""The registry is the single declaration of every metric; docs and computation read it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import integrate

from doseatlas import schemas as S
from doseatlas.metrics import METRICS, REGISTRY, render_markdown
from doseatlas.metrics.compute import crossing, sigmoid, sigmoid_area

DOCS = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"


def test_docs_are_generated_from_the_registry():
    assert DOCS.read_text(encoding="utf-8") == render_markdown(), "run: python scripts/make_docs.py"


def test_every_metric_is_fully_declared_and_names_are_unique():
    assert len(REGISTRY) == len(METRICS)
    required = {"ic50", "ec50", "einf", "emax", "hill", "auc", "auc_window", "gi50", "tgi", "lc50"}
    required |= {"gr50", "gec50", "grinf", "grmax", "gr_aoc", "hill_gr"}
    assert required <= set(REGISTRY)
    for m in METRICS:
        assert m.scale in S.FIT_SCALES
        assert m.definition and m.formula and m.unit and m.citation and m.requires
        if m.kind == "threshold":
            assert m.threshold is not None and m.unit == "M"


def test_ic50_and_ec50_are_never_aliases():
    ic50, ec50 = REGISTRY["ic50"], REGISTRY["ec50"]
    assert ic50.kind == "threshold" and ec50.kind == "midpoint"
    assert not any("ec50" in a.lower().split()[0] for a in ic50.aliases if a.lower().startswith("ec50"))
    assert all("IC50" not in a for a in ec50.aliases)


def _curve(**p):
    base = {"top": 1.0, "bottom": 0.2, "log10_ec50": -6.0, "hill": 1.0, "conc_min": 1e-9, "conc_max": 1e-4}
    base.update(p)
    table = pd.DataFrame([base])
    for k in ("top", "bottom", "log10_ec50", "hill"):
        table[f"{k}_se"] = 0.0
    return table.assign(selected="sigmoid", flat_value=np.nan, n_points=18)


def test_absolute_ic50_differs_from_ec50_when_the_curve_does_not_reach_zero():
    table = _curve(bottom=0.2)
    got = crossing(table, 0.5).iloc[0]
    assert got[S.STATUS] == "estimated"
    x = np.log10(got[S.VALUE])
    assert sigmoid(x, 1.0, 0.2, -6.0, 1.0) == pytest.approx(0.5, abs=1e-12)
    assert x > -6.0 + 0.1  # absolute IC50 is right of the EC50 when bottom > 0
    assert np.log10(crossing(_curve(bottom=0.0), 0.5)[S.VALUE].iloc[0]) == pytest.approx(-6.0)


@pytest.mark.parametrize(
    ("params", "status", "lower", "upper"),
    [
        ({"bottom": 0.6}, "right_censored", 1e-4, np.inf),
        ({"log10_ec50": -3.0}, "right_censored", 1e-4, np.inf),
        ({"log10_ec50": -11.0}, "left_censored", 0.0, 1e-9),
        ({"top": 0.4}, "left_censored", 0.0, 1e-9),
    ],
)
def test_crossings_outside_the_tested_range_are_censored_not_extrapolated(params, status, lower, upper):
    got = crossing(_curve(**params), 0.5).iloc[0]
    assert got[S.STATUS] == status
    assert np.isnan(got[S.VALUE])
    assert got[S.LOWER] == pytest.approx(lower) and got[S.UPPER] == upper


@pytest.mark.parametrize("hill", [0.5, 1.0, 3.0])
def test_closed_form_area_matches_numerical_integration(hill):
    x0, x1 = -9.0, -4.0
    exact = integrate.quad(lambda x: sigmoid(x, 1.0, 0.1, -6.5, hill), x0, x1)[0] / (x1 - x0)
    assert sigmoid_area(x0, x1, 1.0, 0.1, -6.5, hill) == pytest.approx(exact, rel=1e-9)


@settings(max_examples=200, deadline=None)
@example(
    top=0.5, bottom=-0.7194880324627361, x50=-2.0, hill=3.0, level=0.5
)  # top == level: was "estimated" at 0 M
@given(
    top=st.floats(0.5, 1.5),
    bottom=st.floats(-1.0, 0.9),
    x50=st.floats(-12.0, -2.0),
    hill=st.floats(0.1, 8.0),
    level=st.sampled_from([0.5, 0.0, -0.5, 0.25]),
)
def test_crossing_never_extrapolates_and_its_value_solves_the_curve(top, bottom, x50, hill, level):
    got = crossing(_curve(top=top, bottom=bottom, log10_ec50=x50, hill=hill), level).iloc[0]
    if got[S.STATUS] == "estimated":
        assert 1e-9 * (1 - 1e-9) <= got[S.VALUE] <= 1e-4 * (1 + 1e-9)
        assert sigmoid(np.log10(got[S.VALUE]), top, bottom, x50, hill) == pytest.approx(level, abs=1e-6)
    elif got[S.STATUS] == "right_censored":
        assert np.isnan(got[S.VALUE]) and got[S.LOWER] == pytest.approx(1e-4) and got[S.UPPER] == np.inf
        assert (
            sigmoid(-4.0, top, bottom, x50, hill) >= level - 1e-12
        )  # rounding at an asymptote equal to the level
    else:
        assert got[S.STATUS] == "left_censored"
        assert np.isnan(got[S.VALUE]) and got[S.LOWER] == 0 and got[S.UPPER] == pytest.approx(1e-9)
        assert (
            sigmoid(-9.0, top, bottom, x50, hill) <= level + 1e-12
        )  # rounding at an asymptote equal to the level


def test_crossing_interval_is_unbounded_when_a_free_parameter_has_infinite_sensitivity():
    from doseatlas.metrics.compute import _root_grad, _root_se

    def se_at(top_se: float) -> float:
        table = _curve(top=0.5, bottom=0.0).assign(top_se=top_se, bottom_se=0.01, log10_ec50_se=0.1)
        with np.errstate(divide="ignore"):
            ratio = np.array([(0.5 - 0.5) / (0.5 - 0.0)])
            return float(_root_se(table, _root_grad(table, ratio, 0.5))[0])

    assert se_at(0.1) == np.inf  # d root / d top = 1 / (top - level) is infinite: the interval is [0, inf]
    assert np.isfinite(se_at(0.0))  # a fixed top (e.g. ll3) adds nothing
