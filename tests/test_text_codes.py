"""Text columns factorized once (doseatlas._canon.text_codes) and the steps that reuse validation's codes:
the same values as the text itself gives."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from doseatlas import schemas as S
from doseatlas._canon import stripped_text, text_codes
from doseatlas.durations import apply_nominal, distinct_times, nominal_map
from doseatlas.normalize import normalize
from doseatlas.simulate import DatasetConfig, SimulationConfig, simulate
from doseatlas.validate import validate_wells

TEXT = st.sampled_from(["a", " a", "a ", "b", "", "  ", "\tb", None, np.nan, "1", "1.0"])
NUMBER = st.sampled_from([1.0, 1.5, -0.0, 0.0, np.nan, np.inf, 3e20, 2.0])


def _same_text(series: pd.Series) -> None:
    codes, uniques = text_codes(series)
    expected = stripped_text(series)
    assert len(set(uniques)) == len(uniques)  # one code per distinct text
    assert uniques[codes].tolist() == expected.tolist()
    assert [type(v) for v in uniques[codes]] == [type(v) for v in expected]


@settings(max_examples=40, deadline=None)
@given(values=st.lists(TEXT, max_size=30))
def test_text_codes_are_the_stripped_text_of_objects_and_pandas_text(values):
    _same_text(pd.Series(values, dtype=object))
    _same_text(pd.Series(values, dtype=object).astype(pd.StringDtype(na_value=np.nan)))


@settings(max_examples=30, deadline=None)
@given(values=st.lists(NUMBER, max_size=30), mixed=st.lists(st.one_of(TEXT, NUMBER), max_size=20))
def test_text_codes_of_numbers_and_mixed_objects(values, mixed):
    _same_text(pd.Series(values, dtype=float))
    _same_text(pd.Series(np.arange(len(values)) - 3))
    _same_text(pd.Series(mixed, dtype=object))


def _wells() -> pd.DataFrame:
    dataset = DatasetConfig(name="d", read_times_h=[72.0, 72.2], time_zero=True, compound_only=True)
    wells = simulate(SimulationConfig(n_cell_lines=2, n_drugs=2, datasets=[dataset]), seed=2).wells
    wells[S.SOURCE_FILE] = "w.csv"
    wells[S.SOURCE_LINE] = np.arange(len(wells)) + 2
    wells.loc[wells.index % 11 == 0, S.ROLE] = " vehicle"  # text that validation strips
    wells.loc[wells.index % 17 == 0, S.DATASET] = ""  # rows validation rejects
    return wells


def test_steps_given_validation_codes_give_the_same_tables():
    checked = validate_wells(_wells())
    assert checked.n_rejected > 0 and checked.codes is not None
    datasets = checked.codes[S.DATASET]
    times = distinct_times(checked.clean)
    pd.testing.assert_frame_equal(distinct_times(checked.clean, datasets=datasets), times, check_exact=True)
    mapping = nominal_map(times)
    clean = apply_nominal(checked.clean, mapping)
    pd.testing.assert_frame_equal(
        apply_nominal(checked.clean, mapping, datasets=datasets), clean, check_exact=True
    )
    pd.testing.assert_frame_equal(normalize(clean, codes=checked.codes), normalize(clean), check_exact=True)
