"""Property-based: any table of text written by `write_table` is read back identical by `read_table`."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slmkit.data import read_table, write_table

# Any text a user might have, except lone surrogates (not encodable as UTF-8 at all) and NUL.
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
NAMES = st.lists(st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters='"'),
                         min_size=1, max_size=8), min_size=1, max_size=4, unique=True)


@st.composite
def tables(draw):
    names = draw(NAMES)
    n_rows = draw(st.integers(min_value=1, max_value=6))
    return pd.DataFrame({name: draw(st.lists(TEXT, min_size=n_rows, max_size=n_rows)) for name in names},
                        dtype=object)


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=tables())
def test_written_table_reads_back_identical(tmp_path, suffix, frame):
    path = write_table(tmp_path / f"t{suffix}", frame)
    back = read_table(path)
    assert list(back.columns) == list(frame.columns)
    assert back.astype(object).values.tolist() == frame.values.tolist()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cell=st.integers(min_value=131_000, max_value=400_000))
def test_csv_cells_longer_than_the_csv_module_default_are_read(tmp_path, cell):
    frame = pd.DataFrame({"id": ["a", "b"], "text": ["x, \"y\"\n" * (cell // 7), "short"]}, dtype=object)
    back = read_table(write_table(tmp_path / "big.csv", frame), text_columns=["text"])
    assert back["text"].tolist() == frame["text"].tolist()
