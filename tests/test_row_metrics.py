"""The numpy row helpers a run uses instead of pandas (issue 13: a warm run does not import pandas)
agree with the pandas operations they replace, on any ids."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from promptgauge.results.columns import RowMetrics, first_appearance, index_of

# pandas' string hashtable cuts a str at NUL ('' and '\x00' become one id) and mishandles lone surrogates;
# the numpy helpers keep such ids apart
IDS = st.lists(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=4), max_size=40)


@given(IDS)
def test_first_appearance_is_pandas_factorize_and_duplicated(ids: list[str]) -> None:
    arr = np.array(ids, dtype=object)
    codes, uniques, first = first_appearance(arr)
    want_codes, want_uniques = pd.factorize(arr)
    assert codes.tolist() == want_codes.tolist()
    assert uniques.tolist() == list(want_uniques)
    assert first.tolist() == (~pd.Series(arr, dtype=object).duplicated()).tolist()


@given(IDS, IDS)
def test_index_of_is_pandas_get_indexer(keys: list[str], queries: list[str]) -> None:
    k = np.array(list(dict.fromkeys(keys)), dtype=object)
    q = np.array(queries, dtype=object)
    assert index_of(k, q).tolist() == pd.Index(k, dtype=object).get_indexer(q).tolist()


def test_ids_that_differ_only_by_nul_stay_apart() -> None:
    codes, uniques, first = first_appearance(np.array(["", "\x00", ""], dtype=object))
    assert codes.tolist() == [0, 1, 0] and uniques.tolist() == ["", "\x00"] and first.tolist() == [True, True, False]


def test_select_reorders_rows_and_refuses_unknown_ids() -> None:
    t = RowMetrics(np.array(["a", "b", "c"], dtype=object), {"m": np.array([1.0, np.nan, 3.0])})
    s = t.select(np.array(["c", "a"], dtype=object))
    assert s.row_ids.tolist() == ["c", "a"] and s["m"].tolist() == [3.0, 1.0] and len(s) == 2
    assert t.frame().loc["c", "m"] == 3.0
    try:
        t.select(np.array(["z"], dtype=object))
    except KeyError as exc:
        assert "z" in str(exc)
    else:
        raise AssertionError("an unknown row id was selected")


def test_the_library_a_run_uses_does_not_import_pandas() -> None:
    code = "import sys, promptgauge.api, promptgauge.cli; print(sorted({'pandas', 'scipy'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
