"""text_dtypes: an object column of text (and missing values) becomes pandas' string dtype exactly as
``astype(pd.StringDtype(na_value=nan))`` makes it; any other object column is left as it is."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from doseatlas.pipeline import text_dtypes

VALUES = st.sampled_from(["a", "b", "", "é", np.str_("a"), None, np.nan, pd.NA, pd.NaT, 1, True, 2.5])


def _reference(table: pd.DataFrame) -> pd.DataFrame:
    for column in table.columns[table.dtypes.eq(object)]:
        values = table[column]
        if pd.api.types.infer_dtype(values, skipna=True) == "string":
            table[column] = values.astype(pd.StringDtype(na_value=np.nan))
    return table


@settings(max_examples=80, deadline=None)
@given(values=st.lists(VALUES, max_size=40), runs=st.integers(1, 200), text_only=st.booleans())
def test_text_dtypes_is_astype_where_every_value_is_text(values, runs, text_only):
    if text_only:  # text and the missing values infer_dtype skips
        values = [v for v in values if v is None or isinstance(v, str) or v is pd.NA or v is np.nan]
    rows = np.repeat(np.array(values, dtype=object), runs)  # long runs: the run-wise factorization too
    table = pd.DataFrame({"text": pd.Series(rows, dtype=object), "n": np.arange(len(rows))})
    got = text_dtypes(table.copy())
    pd.testing.assert_frame_equal(got, _reference(table.copy()), check_exact=True)
