"""Tests of the heuristic switch: the PANNs-compatible Cnn14 (against PANNs' own implementation),
checkpoint loading and its errors, label construction, the schedule, and a smoke-profile run."""

from __future__ import annotations

import dataclasses
import importlib
import json
import shutil
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch

from xmd_core import switch, switch_audio, switch_fit, switch_tagger
from xmd_core.atomic import save_torch_atomically
from xmd_core.cnn14 import Cnn14, load_pretrained_cnn14
from xmd_core.config import PACKAGE_DATA, REPO_ROOT, ConfigError, load_profile, replace

SPEC = REPO_ROOT.parent / "shared" / "specs" / "cnn14_16k_state_dict_shapes.json"
PANNS_16K = {"sample_rate": 16000, "window_size": 512, "hop_size": 160, "mel_bins": 64, "fmin": 50, "fmax": 8000}


@pytest.fixture(scope="module")
def panns(tmp_path_factory):
    """`panns_inference.models`, imported with a HOME that already holds the AudioSet label file
    (its package __init__ would otherwise try to download it)."""
    home = tmp_path_factory.mktemp("home")
    (home / "panns_data").mkdir()
    shutil.copy(PACKAGE_DATA / "audioset" / "class_labels_indices.csv", home / "panns_data")
    patch = pytest.MonkeyPatch()
    patch.setenv("HOME", str(home))
    try:
        return importlib.import_module("panns_inference.models")
    finally:
        patch.undo()


def _randomised(state: dict, seed: int) -> dict:
    """A copy of a state dict with random values everywhere except the fixed front end, so that
    batch-norm statistics and biases matter too."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in state.items():
        if key.startswith(("spectrogram_extractor", "logmel_extractor")) or key.endswith("num_batches_tracked"):
            out[key] = value.clone()
        elif key.endswith("running_var"):
            out[key] = 0.5 + torch.rand(value.shape, generator=g)
        elif key.endswith(("running_mean", "bias")):
            out[key] = 0.1 * torch.randn(value.shape, generator=g)
        elif key.endswith("weight") and value.dim() == 1:  # batch-norm scale
            out[key] = 0.5 + torch.rand(value.shape, generator=g)
        else:  # conv / linear: keep the fan-in scale of the layer's own initialisation
            fan_in = value[0].numel()
            out[key] = torch.randn(value.shape, generator=g) * (2.0 / fan_in) ** 0.5
    return out


# --- Cnn14 -----------------------------------------------------------------------------------------


@pytest.mark.skipif(not SPEC.is_file(), reason="needs shared/specs")
def test_names_and_shapes_are_those_of_the_panns_checkpoint():
    spec = json.loads(SPEC.read_text())
    ours = {k: list(v.shape) for k, v in Cnn14(width=64, classes_num=527).state_dict().items()}
    assert ours == spec


def test_front_end_matches_librosa_and_torchlibrosa():
    import librosa
    from torchlibrosa.stft import LogmelFilterBank, Spectrogram

    model = Cnn14(width=4)
    reference = librosa.filters.mel(sr=16000, n_fft=512, n_mels=64, fmin=50, fmax=8000).T
    np.testing.assert_allclose(model.logmel_extractor.melW.numpy(), reference, rtol=1e-5, atol=1e-9)
    spec = Spectrogram(n_fft=512, hop_length=160, win_length=512, window="hann", center=True, pad_mode="reflect")
    mel = LogmelFilterBank(sr=16000, n_fft=512, n_mels=64, fmin=50, fmax=8000, ref=1.0, amin=1e-10, top_db=None)
    torch.testing.assert_close(model.spectrogram_extractor.stft.conv_real.weight, spec.stft.conv_real.weight, atol=1e-6, rtol=0)
    torch.testing.assert_close(model.spectrogram_extractor.stft.conv_imag.weight, spec.stft.conv_imag.weight, atol=1e-6, rtol=0)
    wave = torch.randn(2, 16000, generator=torch.Generator().manual_seed(0)) * 0.1
    wave[1, 8000:] = 0  # silence: the 1e-10 floor (-100 dB) applies, never top_db clipping
    ours = model.logmel(wave)
    theirs = mel(spec(wave))
    assert ours.shape == theirs.shape == (2, 1, 101, 64)
    torch.testing.assert_close(ours, theirs, atol=2e-3, rtol=1e-4)  # dB: float32 sums in another order
    assert ours.min().item() == pytest.approx(-100.0)


def test_official_layout_loads_strictly_and_matches_panns(panns, tmp_path):
    reference = panns.Cnn14(classes_num=527, **PANNS_16K).eval()
    state = _randomised(reference.state_dict(), seed=1)
    reference.load_state_dict(state)
    path = tmp_path / "Cnn14_16k_mAP=0.438.pth"
    torch.save({"model": state, "iteration": 0}, path)
    model = load_pretrained_cnn14(path)
    assert not model.training and model.config["width"] == 64 and model.config["classes_num"] == 527
    waves = torch.randn(2, 16000, generator=torch.Generator().manual_seed(2)) * 0.2
    with torch.no_grad():
        ours, theirs = model(waves), reference(waves)
    for key in ("embedding", "clipwise_output"):
        torch.testing.assert_close(ours[key], theirs[key], rtol=1e-4, atol=1e-5)
    assert ours["embedding"].shape == (2, 2048) and ours["clipwise_output"].shape == (2, 527)
    assert ours["embedding"].abs().max() > 0.1  # not a trivially dead network


def _save(state, path, wrap=True):
    torch.save({"model": state} if wrap else state, path)
    return path


def test_width_is_read_from_the_checkpoint_and_scales_the_net(tmp_path):
    small = Cnn14(width=8, classes_num=5)
    assert small.conv_block1.conv1.weight.shape == (8, 1, 3, 3)
    assert small.conv_block6.conv2.weight.shape == (256, 256, 3, 3)
    assert small.fc1.weight.shape == (256, 256) and small.fc_audioset.weight.shape == (5, 256)
    assert sum(p.numel() for p in small.parameters() if p.requires_grad) < 1.3e6  # the full net: ~80M
    state = _randomised(small.state_dict(), seed=3)
    loaded = load_pretrained_cnn14(_save(state, tmp_path / "w8.pth"))
    assert loaded.config["width"] == 8 and loaded.config["classes_num"] == 5
    out = loaded(torch.randn(3, 16000))
    assert out["embedding"].shape == (3, 256) and out["clipwise_output"].shape == (3, 5)
    torch.testing.assert_close(out["clipwise_output"], torch.sigmoid(out["logits"]))
    # dropout is active in train mode only
    loaded.train()
    x = torch.randn(2, 16000)
    assert not torch.equal(loaded(x)["embedding"], loaded(x)["embedding"])


def test_load_errors_name_the_file_and_the_keys(tmp_path):
    state = Cnn14(width=4, classes_num=3).state_dict()
    missing = dict(state)
    del missing["conv_block3.bn2.running_var"]
    with pytest.raises(ValueError, match=r"missing\.pth.*missing keys \['conv_block3\.bn2\.running_var'\]"):
        load_pretrained_cnn14(_save(missing, tmp_path / "missing.pth"))
    extra = {**state, "fc_extra.weight": torch.zeros(2)}
    with pytest.raises(ValueError, match=r"extra\.pth.*unexpected keys \['fc_extra\.weight'\]"):
        load_pretrained_cnn14(_save(extra, tmp_path / "extra.pth"))
    wrong = {**state, "fc1.bias": torch.zeros(7)}
    with pytest.raises(ValueError, match=r"wrong shapes fc1\.bias"):
        load_pretrained_cnn14(_save(wrong, tmp_path / "wrong.pth"))
    with pytest.raises(ValueError, match=r"bare\.pth.*key 'model'"):
        load_pretrained_cnn14(_save(state, tmp_path / "bare.pth", wrap=False))
    with pytest.raises(ValueError, match=r"list\.pth.*key 'model'.*list"):
        load_pretrained_cnn14(_save([1, 2], tmp_path / "list.pth", wrap=False))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"junk\.pth: not a readable PyTorch checkpoint"):
        load_pretrained_cnn14(tmp_path / "junk.pth")
    other_rate = Cnn14(width=4, classes_num=3, sample_rate=32000, window_size=512, fmax=14000).state_dict()
    with pytest.raises(ValueError, match=r"rate\.pth: its mel filterbank is not .*'sample_rate': 16000"):
        load_pretrained_cnn14(_save(other_rate, tmp_path / "rate.pth"))
    assert load_pretrained_cnn14(tmp_path / "rate.pth", sample_rate=32000, fmax=14000).config["sample_rate"] == 32000
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        load_pretrained_cnn14(tmp_path / "nowhere.pth")


# --- labels and schedule ----------------------------------------------------------------------------


def _preds(rows):
    return pd.DataFrame(rows, columns=["clip", "label", "correct"])


def test_class_comparison_is_strict_and_labels_follow_the_class():
    teacher = _preds([("a1", "A", True), ("a2", "A", True), ("b1", "B", True), ("b2", "B", False), ("c1", "C", False), ("c2", "C", False)])
    student = _preds([("a1", "A", False), ("a2", "A", True), ("b1", "B", False), ("b2", "B", True), ("c1", "C", True), ("c2", "C", False)])
    table = switch.class_comparison(teacher, student).set_index("label")
    assert table.loc["A", "teacher_acc"] == 1.0 and table.loc["A", "student_acc"] == 0.5
    assert table["teacher_better"].to_dict() == {"A": True, "B": False, "C": False}  # B ties, C student-better
    assert table["clips"].tolist() == [2, 2, 2]
    clips = pd.DataFrame({"clip": ["x", "y", "z", "w"], "label": ["B", "A", "C", "A"]})
    labels = switch.switch_labels(clips, table.reset_index())
    assert labels.tolist() == [0, 1, 0, 1] and labels.dtype == np.int64
    with pytest.raises(ValueError, match="not in the class comparison"):
        switch.switch_labels(pd.DataFrame({"clip": ["q"], "label": ["D"]}), table.reset_index())
    with pytest.raises(ValueError, match="different clips"):
        switch.class_comparison(teacher, student.iloc[1:])


def test_balanced_weights_give_each_label_half_of_the_loss():
    target = torch.tensor([1, 1, 1, 0])
    weights = switch_fit.label_weights(target)
    assert weights.tolist() == pytest.approx([2.0, 2 / 3])
    per_label = [float(weights[label] * (target == label).sum()) for label in (0, 1)]
    assert per_label[0] == pytest.approx(per_label[1])
    # the loss is the weighted mean of the clips' losses (a false "open" on the label-0 clip costs 3x)
    logits = torch.tensor([[2.0], [0.5], [-1.0], [1.5]])
    loss, hits = switch_fit.loss_and_hits("binary", logits, target, weights)
    by_clip = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0], target.float(), reduction="none")
    assert float(loss) == pytest.approx(float((by_clip * weights[target]).mean()))
    assert float(loss) != pytest.approx(float(by_clip.mean()))
    assert int(hits) == 2
    # one label only: a constant weight, so the same minimiser as the plain loss
    assert switch_fit.label_weights(torch.tensor([1, 1]))[1] == pytest.approx(0.5)


def test_balanced_training_refuses_a_multiclass_target():
    with pytest.raises(ValueError, match="binary"):
        switch_fit.fit(Cnn14(classes_num=3, width=4), None, torch.tensor([0, 1, 2]), "tagger", 1, 2, 1e-3, 0.1, 0, balanced=True)


def test_open_share_is_counted_per_label_on_decided_clips_of_the_split():
    decisions = pd.DataFrame({
        "split": ["finetune"] * 5 + ["analysis"],
        "label_teacher_better": [1, 1, 0, 0, 0, 0],
        "open": [True, False, True, False, False, True],
        "error": ["", "", "", "", "not found", ""],
    })
    assert switch.open_share_by_label(decisions) == (0.5, 0.5)  # the undecodable clip and the analysis clip are left out
    only_better = decisions[decisions["label_teacher_better"] == 1]
    better, others = switch.open_share_by_label(only_better)
    assert better == 0.5 and np.isnan(others)


def test_cosine_schedule_warms_up_then_decays_to_zero():
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    schedule = switch_fit.make_schedule(optimizer, total_steps=100, warmup_fraction=0.1)
    lrs = []
    for _ in range(100):
        lrs.append(schedule.get_last_lr()[0])
        optimizer.step()
        schedule.step()
    lrs = np.array(lrs)
    assert lrs[0] == 0.0
    np.testing.assert_allclose(lrs[:11], np.arange(11) * 1e-4, rtol=1e-9, atol=1e-12)  # linear warm-up over 10 steps
    assert lrs.argmax() == 10 and lrs[10] == pytest.approx(1e-3)
    assert (np.diff(lrs[10:]) < 0).all()
    assert lrs[55] == pytest.approx(0.5e-3, rel=1e-6)  # half way through the decay: half the peak
    assert schedule.get_last_lr()[0] == pytest.approx(0.0, abs=1e-12)


def test_a_clip_that_cannot_be_decoded_is_reported(tmp_path, capsys):
    profile = dataclasses.replace(load_profile("smoke"), artifacts_dir=tmp_path / "a", results_dir=tmp_path / "r")
    real = PACKAGE_DATA / "vggsound" / "clips" / "MnEZwnRuQR8_000030.mp4"
    rows = pd.DataFrame({"clip": ["good", "gone"], "split": ["finetune", "analysis"], "label": ["x", "y"],
                         "path": [str(real), str(tmp_path / "gone.mp4")]})
    kept, skipped = switch_audio.decode_clips(profile, rows, progress=False, desc="test clips")
    assert kept["clip"].tolist() == ["good"] and kept["samples"].iloc[0] == pytest.approx(160000, abs=2000)
    assert skipped["clip"].tolist() == ["gone"] and "not found" in skipped["reason"].iloc[0]
    assert "skipped 1 of 2 clip(s)" in capsys.readouterr().out


def test_a_killed_save_leaves_no_checkpoint(tmp_path, monkeypatch):
    target = tmp_path / "tagger.pt"

    def dies(obj, path):
        open(path, "wb").write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies)
    with pytest.raises(KeyboardInterrupt):
        save_torch_atomically({"model": {}}, target)
    assert list(tmp_path.iterdir()) == []


# --- the smoke profile, end to end -------------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, smoke_in):
    return smoke_in(tmp_path_factory.mktemp("switch"), seeded=True)


# the smoke profile's experts train ~20 steps and stay at chance, which their trainer warns about
smoke_training = pytest.mark.filterwarnings("ignore:expert .* near chance:RuntimeWarning")


@pytest.fixture(scope="module")
def trained(smoke):
    return switch.train_switch(smoke, "qwen2-vl", "qwen2-audio", progress=False)


@pytest.mark.slow
@smoke_training
def test_train_switch_writes_every_table(smoke, trained):
    from xmd_core.study import prepare

    assert trained == switch.switch_dir(smoke, "qwen2-vl", "qwen2-audio")
    inputs = prepare(smoke, progress=False)
    decisions = switch.load_decisions(smoke)
    assert list(decisions.columns) == switch.DECISION_COLUMNS
    expected = pd.concat([inputs.split("analysis").assign(split="analysis"), inputs.split("finetune").assign(split="finetune")])
    assert sorted(zip(decisions["split"], decisions["clip"])) == sorted(zip(expected["split"], expected["clip"]))
    assert decisions["p_teacher_better"].between(0, 1).all() and (decisions["error"] == "").all()
    assert (decisions["open"] == (decisions["p_teacher_better"] >= 0.5)).all()
    assert set(decisions.loc[decisions["split"] == "analysis", "switch_split"]) == {"train", "val"}

    classes = switch.load_classes(smoke)
    better = dict(zip(classes["label"], classes["teacher_better"]))
    assert (decisions["label_teacher_better"] == decisions["label"].map(better).astype(int)).all()

    metrics = switch.load_metrics(smoke)
    for key in ("val_accuracy", "train_accuracy", "finetune_accuracy", "classes_teacher_better", "classes_total",
                "skipped", "seconds", "config_hash", "key", "init"):
        assert key in metrics
    assert metrics["classes_total"] == len(classes) and metrics["skipped"]["count"] == 0
    assert metrics["init"]["source"] == "tagger"
    finetune = decisions[decisions["split"] == "finetune"]
    assert metrics["finetune_accuracy"] == pytest.approx((finetune["open"].astype(int) == finetune["label_teacher_better"]).mean())

    history = switch.load_history(smoke)
    assert list(history.columns) == switch.HISTORY_COLUMNS and history["epoch"].tolist() == list(range(1, smoke.switch.epochs + 1))
    assert history["lr"].iloc[-1] == pytest.approx(0.0, abs=1e-12)
    assert metrics["val_accuracy"] == pytest.approx(history["val_acc"].iloc[-1])  # the final model decides

    model = switch.load_switch(smoke)
    assert model.fc_audioset.out_features == 1 and model.config["width"] == smoke.switch.width
    assert (switch_tagger.tagger_checkpoint(smoke)).is_file() and (switch_tagger.tagger_checkpoint(smoke).with_name("tagger.json")).is_file()


@pytest.mark.slow
@smoke_training
def test_second_call_returns_without_training(smoke, trained, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(switch, "fit", refuse)
    monkeypatch.setattr(switch_tagger, "pretrain_tagger", refuse)
    monkeypatch.setattr("xmd_core.evaluate.load_model_here", refuse)  # finished predictions are read, no model loaded
    assert switch.train_switch(smoke, progress=False) == trained


@pytest.mark.slow
@smoke_training
def test_a_switch_killed_before_its_rename_is_trained_again_to_the_same_decisions(smoke, trained):
    """kill -9 at the worst moment (every table, the record and the checkpoint written, the
    folder not yet renamed into place; the old folder's record removed first): the folder is not
    taken as done, and training again removes the dead run's partial folder and gives the
    uninterrupted run's decisions."""
    whole = switch.load_decisions(smoke)
    (trained / "metrics.json").unlink()
    script = textwrap.dedent(f"""
        import dataclasses, os, signal
        from pathlib import Path
        from xmd_core import store, switch
        from xmd_core.config import load_profile
        profile = dataclasses.replace(load_profile("smoke"), artifacts_dir=Path({str(smoke.artifacts_dir)!r}), results_dir=Path({str(smoke.results_dir)!r}))
        def dies_before_the_rename(work, target):
            os.kill(os.getpid(), signal.SIGKILL)
        store.replace_folder = dies_before_the_rename
        switch.train_switch(profile, "qwen2-vl", "qwen2-audio", progress=False)
    """)
    child = subprocess.run([sys.executable, "-c", script], timeout=600)
    assert child.returncode == -signal.SIGKILL
    assert (trained / "decisions.parquet").is_file() and not (trained / "metrics.json").exists()
    with pytest.raises(FileNotFoundError):
        switch.load_metrics(smoke)
    partial = list(trained.parent.glob(f".{trained.name}.partial-*"))
    assert len(partial) == 1 and (partial[0] / "metrics.json").is_file()
    left_by_the_killed_run = (trained / "decisions.parquet").stat().st_mtime_ns

    assert switch.train_switch(smoke, "qwen2-vl", "qwen2-audio", progress=False) == trained
    assert (trained / "decisions.parquet").stat().st_mtime_ns != left_by_the_killed_run, "the killed run's tables were trusted"
    assert not partial[0].exists(), "the killed run's partial folder was left behind"
    pd.testing.assert_frame_equal(switch.load_decisions(smoke), whole)
    assert switch.load_metrics(smoke)["key"]


@pytest.mark.slow
@smoke_training
def test_changed_config_retrains_the_switch_but_not_the_tagger(smoke, trained):
    tagger = switch_tagger.tagger_checkpoint(smoke)
    stamp = tagger.stat().st_mtime_ns
    before = switch.load_metrics(smoke)["key"]
    changed = replace(smoke, switch={"epochs": smoke.switch.epochs + 1})
    assert switch_tagger.tagger_checkpoint(changed) == tagger
    switch.train_switch(changed, progress=False)
    assert switch.load_metrics(changed)["key"] != before
    assert len(switch.load_history(changed)) == smoke.switch.epochs + 1
    assert tagger.stat().st_mtime_ns == stamp


@pytest.mark.slow
@smoke_training
def test_the_other_direction_and_the_missing_results(smoke, trained):
    with pytest.raises(FileNotFoundError, match=r"qwen2.5-vl-to-qwen2-audio.*train_switch"):
        switch.load_decisions(smoke, "qwen2.5-vl", "qwen2-audio")
    out = switch.train_switch(smoke, "qwen2-audio", "qwen2-vl", progress=False)
    assert out.name == "qwen2-audio-to-qwen2-vl"
    forward = switch.load_classes(smoke).set_index("label")
    backward = switch.load_classes(smoke, "qwen2-audio", "qwen2-vl").set_index("label")
    assert (forward["teacher_acc"] == backward["student_acc"]).all()
    assert not (forward["teacher_better"] & backward["teacher_better"]).any()  # strict: never both


def test_the_switch_needs_a_starting_point(smoke, tmp_path):
    with pytest.raises(ConfigError, match="switch.pretrained.*tagger_epochs"):
        switch_tagger.initial_model(replace(smoke, switch={"tagger_epochs": 0}), progress=False)
    # a PANNs-format checkpoint of the profile's width is taken instead of the tagger
    path = _save(Cnn14(width=smoke.switch.width, classes_num=527).state_dict(), tmp_path / "panns.pth")
    model, source = switch_tagger.initial_model(replace(smoke, switch={"pretrained": str(path), "tagger_epochs": 0}), progress=False)
    assert source == {"source": "panns", "path": str(path)} and model.fc_audioset.out_features == 1
    with pytest.raises(ConfigError, match="width"):
        switch_tagger.initial_model(replace(smoke, switch={"pretrained": str(path), "width": 8}), progress=False)
