"""readout_discordant groups its rows on run codes (doseatlas._codes.run_joint_codes): the same answer as grouping every row of the
pair key with joint_codes, for sorted and shuffled tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from doseatlas import schemas as S
from doseatlas._codes import joint_codes
from doseatlas.metrics import flags
from doseatlas.metrics.flags import READOUT_PAIR_KEY, readout_discordant

ROW = st.tuples(
    st.sampled_from(["C1", "C2", None]),
    st.sampled_from(["d1", "d2"]),
    st.sampled_from([72.0, 96.0, np.nan]),
    st.sampled_from(["atp", "dna", None]),
    st.sampled_from(["ic50", "einf", None]),
    st.sampled_from(["estimated", "right_censored", "left_censored", "refused"]),
    st.floats(1e-9, 1e-5),
    st.floats(1.0, 30.0),
)


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(ROW, min_size=1, max_size=40), shuffle=st.booleans(), fold=st.sampled_from([1.0, 3.0]))
def test_readout_discordant_is_the_same_on_run_codes(rows, shuffle, fold):
    cols = [S.CELL_LINE, S.PERTURBAGEN, S.DURATION_H, S.READOUT, S.METRIC, S.STATUS, S.VALUE, "width"]
    table = pd.DataFrame(rows, columns=cols).astype({S.CELL_LINE: object, S.READOUT: object})
    table[S.PERTURBATION_TYPE] = "drug"
    table[S.LOWER], table[S.UPPER] = table[S.VALUE] / table["width"], table[S.VALUE] * table["width"]
    if not shuffle:  # in curve order, as the run's metrics
        table = table.sort_values(
            [S.CELL_LINE, S.PERTURBAGEN, S.READOUT, S.DURATION_H, S.METRIC], kind="stable"
        )
    table = table.reset_index(drop=True)
    got = readout_discordant(table, fold=fold)
    every_row = flags._pair_groups
    try:
        flags._pair_groups = lambda metrics, metric, n: joint_codes([metrics], [READOUT_PAIR_KEY])[0][0]
        expected = readout_discordant(table, fold=fold)
    finally:
        flags._pair_groups = every_row
    np.testing.assert_array_equal(got, expected)
