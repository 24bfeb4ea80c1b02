import pandas as pd
import pytest

from xmd_core import data


def test_official_test_csv():
    index = data.read_index_csv(data.TEST_CSV)
    assert len(index) == 15446
    assert index.label.nunique() == 309
    assert (index.split == "test").all()
    first = index.iloc[0]
    assert (first.ytid, first.start, first["clip"]) == ("glLQrEijrKg", 300, "glLQrEijrKg_000300")


def test_stat_csv_has_309_classes_in_9_categories():
    stat = data.read_stat()
    assert len(stat) == 309 and stat.category.nunique() == 9
    assert set(data.read_index_csv(data.TEST_CSV).label) <= set(stat.label)


def test_vggsound_csv_format_and_ids_with_underscores(tmp_path):
    path = tmp_path / "vggsound.csv"
    path.write_text('---g-f_I2yQ,1,people marching,test\na_b_c-d__e1,30,"dog barking, growling",train\n')
    index = data.read_index_csv(path)
    assert index["clip"].tolist() == ["---g-f_I2yQ_000001", "a_b_c-d__e1_000030"]
    assert index.split.tolist() == ["test", "train"]
    assert index.label.tolist() == ["people marching", "dog barking, growling"]
    # the test.csv form of an id with underscores splits at the last underscore
    path.write_text("a_b_c-d__e1_000030.mp4,dog barking\n")
    assert data.read_index_csv(path).ytid.tolist() == ["a_b_c-d__e1"]


@pytest.mark.parametrize("line", ["only-one-field\n", "abc,1x,label,train\n", "noStart.mp4,label\n"])
def test_malformed_index_lines_name_file_and_line(tmp_path, line):
    path = tmp_path / "bad.csv"
    path.write_text("ok_000001.mp4,dog\n" + line)
    with pytest.raises(data.IndexError_, match=r"bad\.csv:2"):
        data.read_index_csv(path)


def test_modality_rates_follow_vggsounder():
    rates = data.modality_rates().set_index("label")
    assert len(rates) == 309
    assert rates.loc["wind noise", "p_visible"] < 0.1 < 0.95 < rates.loc["wind noise", "p_audible"]
    assert rates.loc["playing lacrosse", "p_visible"] > rates.loc["playing lacrosse", "p_audible"]
    assert rates[["p_audible", "p_visible"]].stack().between(0, 1).all()


def _toy_index(n_classes=4, n_train=12, n_test=3):
    rows = []
    for c in range(n_classes):
        rows += [(f"c{c}t{i}", 1, f"class {c}", "train") for i in range(n_train)]
        rows += [(f"c{c}s{i}", 1, f"class {c}", "test") for i in range(n_test)]
    frame = pd.DataFrame(rows, columns=["ytid", "start", "label", "split"])
    frame.insert(0, "clip", [data.clip_name(y, s) for y, s in zip(frame.ytid, frame.start)])
    return frame


def test_build_splits_per_class_sizes_and_exclusion():
    index = _toy_index()
    splits = data.build_splits(index, analysis_per_class=5, switch_val_per_class=1, seed=0)
    per = splits.groupby(["label", "split"]).size().unstack()
    assert (per["analysis"] == 5).all() and (per["finetune"] == 7).all() and (per["test"] == 3).all()
    analysis = splits[splits.split == "analysis"]
    assert (analysis.groupby("label").switch_split.apply(lambda s: (s == "val").sum()) == 1).all()
    assert (splits[splits.split != "analysis"].switch_split == "").all()
    assert set(splits["clip"]) == set(index["clip"])  # nothing lost, nothing doubled


def test_build_splits_is_seeded_and_order_free():
    index = _toy_index()
    a = data.build_splits(index, 5, 1, seed=0).set_index("clip")
    b = data.build_splits(index.sample(frac=1, random_state=3), 5, 1, seed=0).set_index("clip").loc[a.index]
    c = data.build_splits(index, 5, 1, seed=1).set_index("clip")
    assert (a.split == b.split).all() and (a.switch_split == b.switch_split).all()
    assert (a.split != c.split).any()


def test_probe_drops_missing_and_corrupt_clips_with_a_report(tmp_path):
    index = _toy_index(n_classes=1, n_train=0, n_test=3)
    (tmp_path / f"{index['clip'][1]}.mp4").write_bytes(b"not a video at all")
    (tmp_path / f"{index['clip'][2]}.mp4").write_bytes(b"")
    indexed = data.attach_paths(index, tmp_path)
    kept, report = data.probe_clips(indexed, tmp_path / "probe.parquet", progress=False)
    assert kept.empty
    assert report["clip"].tolist() == index["clip"].tolist()
    assert "not found" in report.reason[0]
    assert index["clip"][1] in report.reason[1] and index["clip"][2] in report.reason[2]
    # the probe result is remembered for unchanged files
    assert (tmp_path / "probe.parquet").is_file()


def test_probe_keeps_a_real_clip(tmp_path, real_clip):
    index = pd.DataFrame({"clip": [real_clip.stem], "label": ["x"], "split": ["test"]})
    kept, report = data.probe_clips(data.attach_paths(index, real_clip.parent), progress=False)
    assert len(kept) == 1 and report.empty


def test_unseen_rows_keep_their_split_and_get_audioset_options():
    index = pd.DataFrame(
        {"clip": ["a_000001", "b_000002", "c_000003"], "ytid": ["a", "b", "c"], "start": [1, 2, 3],
         "label": ["dog barking", "dog barking", "wind noise"], "split": ["train", "test", "unseen"]}
    )  # fmt: skip
    out = data.build_splits(index, analysis_per_class=1, switch_val_per_class=0, seed=0)
    assert out.split.tolist() == ["analysis", "test", "unseen"]
    pool = data.audioset_option_pool(["wind noise"])
    assert "wind noise" in pool.index and "Wind noise (microphone)" not in pool.index
    assert len(pool) == 527 and (pool == 1.0).all()
    with pytest.raises(data.IndexError_, match="no AudioSet display name"):
        data.audioset_option_pool(["not a sound at all xyz"])


def test_the_unseen_option_pool_of_the_profiles_own_classes():
    classes = pd.DataFrame({"label": ["dog barking", "cat purring"], "count": [10, 20]})
    pool = data.unseen_option_pool("classes", pd.Series(["wind noise"]), classes)
    assert list(pool.index) == ["cat purring", "dog barking", "wind noise"] and (pool == 1.0).all()
    assert len(data.unseen_option_pool("audioset", pd.Series(["wind noise"]), classes)) == 527
    with pytest.raises(ValueError, match="'wordnet'"):
        data.unseen_option_pool("wordnet", pd.Series(["wind noise"]), classes)


def test_the_known_audioset_pool_names_distilled_classes_at_their_share_of_audioset():
    assert data.vggsound_share_of_audioset() == pytest.approx(31 / 527)
    classes = pd.DataFrame({"label": ["dog barking", "cat purring", "orchestra"], "count": [10, 20, 30]})
    pool = data.unseen_option_pool("audioset-known", pd.Series(["orchestra", "wind chime"]), classes)
    assert sorted(pool.index) == ["cat purring", "dog barking", "orchestra", "wind chime"]
    assert pool[["orchestra", "wind chime"]].sum() == pytest.approx(1 - 31 / 527)  # an unseen class in the stat table counts as unseen
    assert pool["dog barking"] == pytest.approx(31 / 527 / 2)
