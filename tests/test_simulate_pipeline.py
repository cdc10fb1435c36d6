"""The simulator's wells go through validation and normalization, and noise-free wells give the truth."""

from __future__ import annotations

import numpy as np

from doseatlas import schemas as S
from doseatlas.ingest.canonical import canonical_columns
from doseatlas.normalize import normalize
from doseatlas.simulate import SimulationConfig, example_config, simulate
from doseatlas.validate import validate_wells


def test_noiseless_example_normalizes_to_the_true_responses() -> None:
    config = example_config()
    datasets = [d.model_copy(update={"noiseless": True}) for d in config.datasets or []]
    config = SimulationConfig(**{**config.model_dump(), "datasets": [d.model_dump() for d in datasets]})
    result = simulate(config, seed=1)
    checked = validate_wells(canonical_columns(result.wells, source="simulated"))
    assert checked.n_rejected == 0
    responses = normalize(checked.clean)
    key = [S.DATASET, S.CELL_LINE, S.PERTURBATION_TYPE, S.PERTURBAGEN, S.TIME_H]
    n_compared = 0
    for scale in S.RESPONSE_SCALES:
        for (dataset, line, ptype, name, time_h), group in responses.groupby(key):
            ok = group[scale].notna().to_numpy()
            conc = group[S.CONCENTRATION].to_numpy()[ok] if ptype == "drug" else np.full(ok.sum(), np.inf)
            truth = result.response(
                dataset=dataset,
                cell_line=line,
                perturbation_type=ptype,
                perturbagen=name,
                scale=scale,
                concentration=conc,
                time_h=time_h,
            )
            np.testing.assert_allclose(group[scale].to_numpy()[ok], truth, rtol=1e-9, atol=1e-9)
            n_compared += int(ok.sum())
    assert n_compared > 3000
    lab_a = responses[responses[S.DATASET] == "lab_a"]
    assert lab_a[S.GR].isna().all()  # no time-zero plates in lab_a
