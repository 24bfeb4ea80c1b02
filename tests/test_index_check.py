"""The index is checked as a whole before any split is built (xmd_core.index_check): each error
names the file, the line and the value."""

from __future__ import annotations

import pandas as pd
import pytest

from xmd_core import data
from xmd_core.index_check import IndexError_, check_index, check_labels


def _read(tmp_path, name: str, text: str, encoding: str = "utf-8") -> pd.DataFrame:
    path = tmp_path / name
    path.write_text(text, encoding=encoding)
    return data.read_index_csv(path)


def test_a_byte_order_mark_does_not_cost_the_first_row(tmp_path):
    index = _read(tmp_path, "bom.csv", "abc,1,dog barking,train\nxyz,2,cat purring,test\n", encoding="utf-8-sig")
    assert index["clip"].tolist() == ["abc_000001", "xyz_000002"]
    assert index["ytid"].iloc[0] == "abc"


def test_a_header_line_is_skipped_and_rows_keep_their_line(tmp_path):
    index = _read(tmp_path, "with_header.csv", "ytid,start,label,split\nabc,1,dog barking,train\n")
    assert index["clip"].tolist() == ["abc_000001"]
    assert index["where"].iloc[0].endswith("with_header.csv:2")


def test_a_header_like_line_inside_the_file_is_an_error_naming_its_line(tmp_path):
    with pytest.raises(IndexError_, match=r"late\.csv:2: start second 'start'"):
        _read(tmp_path, "late.csv", "abc,1,dog barking,train\nytid,start,label,split\n")


def test_a_duplicated_row_is_refused_with_both_lines(tmp_path):
    index = _read(tmp_path, "dup.csv", "abc,1,dog barking,train\nxyz,2,cat purring,test\nabc,1,dog barking,train\n")
    with pytest.raises(IndexError_, match=r"'abc_000001' is listed 2 times at .*dup\.csv:1 .*dup\.csv:3"):
        check_index(index)


def test_one_clip_with_two_labels_and_splits_across_files_is_refused(tmp_path):
    first = _read(tmp_path, "a.csv", "abc,1,dog barking,train\n")
    second = _read(tmp_path, "b.csv", "abc_000001.mp4,cat purring\n")
    with pytest.raises(IndexError_, match=r"with different label and split at .*a\.csv:1 \('dog barking', train\).*b\.csv:1 \('cat purring', test\)"):
        check_index(pd.concat([first, second], ignore_index=True))


def test_an_unknown_split_names_the_line_and_value(tmp_path):
    index = _read(tmp_path, "split.csv", "abc,1,dog barking,train\nxyz,2,cat purring,validation\n")
    with pytest.raises(IndexError_, match=r"split\.csv:2 \('validation'\)"):
        check_index(index)


def test_an_unknown_label_names_the_line_and_value(tmp_path):
    index = _read(tmp_path, "labels.csv", "abc,1,dog barking,train\nxyz,2,dog barkng,test\n")
    with pytest.raises(IndexError_, match=r"labels\.csv:2 \('dog barkng'\)"):
        check_labels(index, data.read_stat().label, data.STAT_CSV)
    check_labels(index.head(1), data.read_stat().label, data.STAT_CSV)  # a known label passes


def test_a_clean_index_passes(tmp_path):
    check_index(_read(tmp_path, "ok.csv", "abc,1,dog barking,train\nabc,2,dog barking,test\n"))
