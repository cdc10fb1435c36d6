"""Simulated assays with planted readout problems and the measurement of how a run detects them (issue 13).

* :func:`interference_config`: drugs of which some give the readout a signal of their own
  (``Drug.interference``), with cell-free plates of compound-only wells;
* :func:`discordance_config`: the same cell lines and drugs read by ATP and by resazurin, some drugs lowering ATP
  per cell without killing (``Drug.atp_interference``, as the bundled example's ``atpzolid``);
* :func:`interference_detection`, :func:`discordance_detection`: per planted and clean drug, whether the run
  flagged it; :func:`ic50_error`: log10 IC50 of a run against the truth.

Used by ``tests/test_interference.py`` and ``scripts/assay_acceptance.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from doseatlas import schemas as S
from doseatlas.errors import SimulationError
from doseatlas.simulate.config import CellLine, DatasetConfig, Drug, SimulationConfig


def _lines(n: int) -> list[CellLine]:
    return [CellLine(name=f"CL{i + 1:02d}", doubling_time_h=22.0 + 6.0 * i) for i in range(n)]


def _drug(i: int, **planted) -> Drug:
    """A drug of the series: EC50 from 10 nM up by 10^0.25 per drug (cycled), cytostatic with some death."""
    ec50 = 10.0 ** (-8.0 + 0.25 * (i % 10))
    return Drug(name=f"drug{i + 1:02d}", emax_div=0.95, ec50_div_m=ec50, hill=1.2, death_max_per_h=0.01,
                ec50_death_m=3.0 * ec50, **planted)  # fmt: skip


def interference_config(
    *, n_interfering: int = 3, n_clean: int = 9, n_lines: int = 3, readout: str = S.Readout.RESAZURIN,
    signal: float = 6000.0, replicates: int = 2,
) -> SimulationConfig:  # fmt: skip
    """``n_interfering`` drugs (the 7th, 8th, ...) adding up to ``signal`` (signal units of ``readout``; 6000 is about 45% of a
    resazurin vehicle well) at high doses (EC50 of the interference 1 µM) and ``n_clean`` drugs without,
    screened on ``n_lines`` cell lines with compound-only wells."""
    first = 6  # drugs 7, 8, ...: EC50s of 0.3-1 µM, where their own signal is already large
    if n_interfering + n_clean < first + n_interfering:
        raise SimulationError("interference_config needs n_clean >= 6 (the interfering drugs come after)")
    drugs = [
        _drug(i, interference={readout: signal} if first <= i < first + n_interfering else {})
        for i in range(n_interfering + n_clean)
    ]
    dataset = DatasetConfig(name="screen", readout=readout, compound_only=True, replicates=replicates)
    return SimulationConfig(cell_lines=_lines(n_lines), drugs=drugs, datasets=[dataset])


def discordance_config(*, n_planted: int = 2, n_clean: int = 4, n_lines: int = 3) -> SimulationConfig:
    """ATP and resazurin screens of the same drugs; ``n_planted`` drugs lower ATP per cell by 75% (EC50 0.2 µM)
    without killing and barely act on the cells (as the bundled example's ``atpzolid``)."""
    planted = [
        Drug(
            name=f"atpdrop{i + 1}",
            emax_div=0.25,
            ec50_div_m=1e-6,
            hill=1.3,
            atp_interference=0.75,
            atp_ec50_m=2e-7,
        )
        for i in range(n_planted)
    ]
    drugs = planted + [_drug(i) for i in range(n_clean)]
    datasets = [
        DatasetConfig(name="lab_atp", readout=S.Readout.ATP, replicates=2),
        DatasetConfig(name="lab_rez", readout=S.Readout.RESAZURIN, replicates=2),
    ]
    return SimulationConfig(cell_lines=_lines(n_lines), drugs=drugs, datasets=datasets)


def _flagged(metrics: pd.DataFrame, code: str, key: list[str]) -> pd.Series:
    from doseatlas.metrics.flags import has_flag

    hit = metrics.assign(_hit=has_flag(metrics[S.FLAGS], code).to_numpy())
    return hit.groupby(key)["_hit"].any()


def interference_detection(planted: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, perturbagen): ``planted`` (the simulator's interference, ``SimulationResult.interference``,
    is above 0) and ``flagged`` (any metric row of it carries ``readout_interference``)."""
    key = [S.DATASET, S.PERTURBAGEN]
    truth = planted.groupby(key)[S.COMPOUND_SIGNAL].max().gt(0).rename("planted")
    flagged = _flagged(metrics, "readout_interference", key).rename("flagged")
    out = pd.concat([truth, flagged], axis=1).reset_index()
    return out.assign(flagged=out["flagged"].eq(True), planted=out["planted"].eq(True))


def discordance_detection(metrics: pd.DataFrame, planted: list[str], *, metric: str = "ic50") -> pd.DataFrame:
    """Per (cell line, perturbagen, readout) of ``metric``: whether the perturbagen is ``planted`` and whether
    the row carries ``readout_discordant``."""
    rows = metrics[metrics[S.METRIC] == metric]
    key = [S.CELL_LINE, S.PERTURBAGEN, S.READOUT]
    out = _flagged(rows, "readout_discordant", key).rename("flagged").reset_index()
    return out.assign(planted=out[S.PERTURBAGEN].isin(planted))


def ic50_error(metrics: pd.DataFrame, truth: pd.DataFrame, perturbagens: list[str]) -> pd.DataFrame:
    """IC50 of ``perturbagens`` in a run against the truth: status in both and log10(run / truth) where both
    are estimated."""
    key = [S.DATASET, S.CELL_LINE, S.PERTURBAGEN, S.DURATION_H]
    ours = metrics[(metrics[S.METRIC] == "ic50") & metrics[S.PERTURBAGEN].isin(perturbagens)]
    true = truth[truth[S.METRIC] == "ic50"]
    both = ours[[*key, S.VALUE, S.STATUS]].merge(
        true[[*key, S.VALUE, S.STATUS]], on=key, suffixes=("", "_true")
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        both["log10_error"] = np.log10(both[S.VALUE].to_numpy(float) / both["value_true"].to_numpy(float))
    return both
