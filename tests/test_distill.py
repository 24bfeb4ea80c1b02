"""Cross-modal distillation: losses, gating, batches and schedule, the frozen-tower cache,
adapters saved, loaded and evaluated through the evaluation path."""

import json
import math
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch

from xmd_core import distill
from xmd_core.atomic import remove_dead_partials
from xmd_core.config import replace
from xmd_core.distill import RECIPES, Targets, distillation_loss
from xmd_core.evaluate import load_predictions
from xmd_core.models.registry import load_model

LETTER_IDS = torch.arange(10) + 5  # letters sit at vocabulary ids 5..14 in the hand-made logits


def _targets(open_rows):
    return Targets(
        teacher_logits=torch.tensor([[2.0, 1.0] + [0.0] * 8, [0.0] * 9 + [3.0], [1.0] * 10]),
        teacher=torch.tensor([0, 9, 4]),
        own=torch.tensor([1, 9, 2]),
        truth=torch.tensor([0, 8, 4]),
        open=torch.tensor(open_rows),
    )


def _logits(seed=0):
    return torch.randn(3, 20, generator=torch.Generator().manual_seed(seed))


def _ce(logits, row, letter):
    return -torch.log_softmax(logits[row], -1)[LETTER_IDS[letter]]


# --- losses on hand-made logits ------------------------------------------------------------------


def test_teacher_labels_where_open_own_labels_where_closed():
    logits, targets = _logits(), _targets([True, False, True])
    loss, parts = distillation_loss(logits, LETTER_IDS, targets, RECIPES["teacher-labels"], 2.0)
    expected = (_ce(logits, 0, 0) + _ce(logits, 1, 9) + _ce(logits, 2, 4)) / 3  # row 1: its own letter (9)
    torch.testing.assert_close(loss, expected)
    assert parts["anti_forgetting"] == pytest.approx(float(_ce(logits, 1, 9)) / 3)
    assert parts["teacher_labels"] == pytest.approx(float(_ce(logits, 0, 0) + _ce(logits, 2, 4)) / 3)


def test_kl_at_temperature_two_on_the_letters_only():
    logits, targets = _logits(1), _targets([True, True, False])
    loss, parts = distillation_loss(logits, LETTER_IDS, targets, RECIPES["teacher-kl"], 2.0)
    kl = []
    for row in (0, 1):
        p = torch.softmax(targets.teacher_logits[row] / 2, -1)
        q = torch.softmax(logits[row, LETTER_IDS] / 2, -1)
        kl.append(4.0 * (p * (p / q).log()).sum())  # T^2 = 4
    torch.testing.assert_close(torch.tensor(parts["teacher_kl"]), (kl[0] + kl[1]) / 3)
    torch.testing.assert_close(loss, (kl[0] + kl[1] + _ce(logits, 2, 2)) / 3)
    # the rest of the vocabulary does not enter the KL
    shifted = logits.clone()
    shifted[:, :5] += 7.0
    _, again = distillation_loss(shifted, LETTER_IDS, targets, RECIPES["teacher-kl"], 2.0)
    assert again["teacher_kl"] == pytest.approx(parts["teacher_kl"], rel=1e-5)


def test_kl_is_zero_when_the_student_matches_the_teacher():
    targets = _targets([True, True, True])
    logits = torch.zeros(3, 20)
    logits[:, LETTER_IDS] = targets.teacher_logits
    _, parts = distillation_loss(logits, LETTER_IDS, targets, RECIPES["teacher-kl"], 2.0)
    assert parts["teacher_kl"] == pytest.approx(0.0, abs=1e-6)


def test_kl_plus_labels_is_the_sum_of_both():
    logits, targets = _logits(2), _targets([True, False, True])
    both, _ = distillation_loss(logits, LETTER_IDS, targets, RECIPES["teacher-kl+labels"], 2.0)
    kl, _ = distillation_loss(logits, LETTER_IDS, targets, RECIPES["teacher-kl"], 2.0)
    labels, _ = distillation_loss(logits, LETTER_IDS, targets, RECIPES["teacher-labels"], 2.0)
    anti = _ce(logits, 1, 9) / 3  # counted once in the sum, in each of the two recipes
    torch.testing.assert_close(both, kl + labels - anti)


def test_without_anti_forgetting_closed_clips_add_nothing():
    logits, targets = _logits(3), _targets([True, False, False])
    loss, parts = distillation_loss(logits, LETTER_IDS, targets, RECIPES["no-anti-forgetting"], 2.0)
    torch.testing.assert_close(loss, _ce(logits, 0, 0) / 3)
    assert "anti_forgetting" not in parts


def test_ground_truth_ignores_the_switch_and_the_teacher():
    logits = _logits(4)
    closed, _ = distillation_loss(logits, LETTER_IDS, _targets([False, False, False]), RECIPES["ground-truth"], 2.0)
    opened, _ = distillation_loss(logits, LETTER_IDS, _targets([True, True, True]), RECIPES["ground-truth"], 2.0)
    torch.testing.assert_close(closed, opened)
    torch.testing.assert_close(closed, (_ce(logits, 0, 0) + _ce(logits, 1, 8) + _ce(logits, 2, 4)) / 3)


def test_unknown_recipe_is_named():
    with pytest.raises(KeyError, match="teacher-labels"):
        distill.get_recipe("teacher-label")


# --- batches ---------------------------------------------------------------------------------------


def test_micro_batches_make_the_effective_batch_across_processes():
    one = list(distill.micro_batches(40, 8, 4, 1, 0, epochs=2, seed=0))
    assert len(one) == 2 * 5 * 2 and max(s for s, _ in one) == 9  # 5 steps per epoch, 2 micro-batches each
    two = [list(distill.micro_batches(40, 8, 4, 2, r, epochs=2, seed=0)) for r in range(2)]
    assert all(len(t) == 10 for t in two)
    for step in range(10):
        single = np.concatenate([rows for s, rows in one if s == step])
        shared = np.concatenate([rows for t in two for s, rows in t if s == step])
        assert sorted(single) == sorted(shared) and len(set(single)) == 8
    epoch = np.concatenate([rows for s, rows in one if s < 5])
    assert len(set(epoch)) == 40  # every clip once per epoch
    with pytest.raises(ValueError, match="multiple of micro_batch_size x processes"):
        list(distill.micro_batches(40, 8, 3, 1, 0, 1, 0))
    with pytest.raises(ValueError, match="no effective batch"):
        list(distill.micro_batches(5, 8, 4, 1, 0, 1, 0))


# --- the smoke study: experts, switch, adapters ----------------------------------------------------


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, smoke_in):
    profile = smoke_in(tmp_path_factory.mktemp("distill"), seeded=True)
    from xmd_core.checkpoints import ensure_models
    from xmd_core.switch import train_switch

    ensure_models(profile, names=("qwen2-audio", "qwen2-vl"), progress=False)
    train_switch(profile, teacher="qwen2-vl", student="qwen2-audio", progress=False)
    return profile


@pytest.fixture(scope="module")
def trained(smoke):
    return distill.distill(smoke, "qwen2-vl", "qwen2-audio", progress=False)


def _perturbed_lora(model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)


@pytest.mark.parametrize("student", ["qwen2-audio", "qwen2-vl"])
def test_cached_towers_give_the_losses_of_recomputed_towers(smoke, student):
    from peft import LoraConfig, get_peft_model

    from xmd_core.media import MediaCache
    from xmd_core.models.adapters import Sample

    condition = distill.own_condition(student)
    clips = distill.finetune_clips(smoke).head(5)
    adapter = load_model(student, smoke)
    cache = distill.TowerCache(smoke.artifacts_dir / "towers-test" / student)
    assert cache.fill(adapter, clips, condition, smoke, progress=False) == 5
    assert cache.fill(adapter, clips, condition, smoke, progress=False) == 0  # stored once
    model = get_peft_model(adapter.model, LoraConfig(r=4, lora_alpha=8, target_modules=distill.LORA_TARGETS))
    _perturbed_lora(model)  # LoRA B starts at zero: make the adapter matter
    model.eval()
    media = MediaCache(smoke.media_cache_dir)
    samples = [
        Sample(r.clip, r.prompt, media.audio(r.path, 16000) if condition == "audio" else None,
               media.frames(r.path, 1.0, 262144) if condition != "audio" else None)
        for r in clips.itertuples()
    ]  # fmt: skip
    full = distill.FullStudent(model, adapter.forward_kwargs(condition))(**adapter.inputs(samples, condition))
    cached = distill.CachedStudent(model)(**cache.load(clips["clip"].tolist()))
    torch.testing.assert_close(cached, full, atol=1e-4, rtol=1e-4)
    targets = Targets(torch.randn(5, 10), torch.arange(5), torch.arange(5) + 1, torch.arange(5) + 2, torch.tensor([1, 0, 1, 0, 1]).bool())
    for recipe in RECIPES.values():
        a, _ = distillation_loss(full, adapter.letter_ids, targets, recipe, 2.0)
        b, _ = distillation_loss(cached, adapter.letter_ids, targets, recipe, 2.0)
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    # only the language model has LoRA: the towers stay frozen
    lora = [n for n, p in model.named_parameters() if p.requires_grad]
    assert lora and all("language_model" in n and "lora_" in n for n in lora)


def test_adapter_is_saved_with_its_record(smoke, trained):
    info = json.loads((trained / "distill.json").read_text())
    cfg = smoke.distill
    clips = len(distill.finetune_clips(smoke))
    assert info["optimizer_steps"] == clips // cfg.batch_size * cfg.epochs
    assert info["gradient_accumulation"] == cfg.batch_size // cfg.micro_batch_size
    assert (trained / "adapter_config.json").is_file() and (trained / "adapter_model.safetensors").is_file()
    history = pd.read_csv(trained / "history.csv")
    assert len(history) == info["optimizer_steps"] and history.loss.notna().all()


def test_schedule_is_cosine_with_warmup(smoke, trained):
    history = pd.read_csv(trained / "history.csv")
    cfg = smoke.distill
    steps = len(history)
    warmup = round(cfg.warmup_fraction * steps)
    for i, lr in enumerate(history.lr, start=1):  # the rate after optimizer step i
        expected = cfg.lr * i / warmup if i < warmup else cfg.lr * 0.5 * (1 + math.cos(math.pi * (i - warmup) / (steps - warmup)))
        assert lr == pytest.approx(expected, rel=1e-6, abs=1e-12)


def test_second_call_returns_without_training(smoke, trained, monkeypatch):
    import peft

    monkeypatch.setattr(peft, "get_peft_model", lambda *a, **k: pytest.fail("retrained"))
    assert distill.distill(smoke, "qwen2-vl", "qwen2-audio", progress=False) == trained


def _lora_weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def test_a_distillation_killed_before_its_rename_is_trained_again_to_the_same_adapter(smoke, trained, tmp_path):
    """kill -9 after the adapter and its record are written to the partial folder, before the
    rename: no adapter is taken as done, the next run removes the dead run's partial folder and
    trains the uninterrupted run's adapter."""
    out = tmp_path / "adapter"
    script = textwrap.dedent(f"""
        import dataclasses, os, signal
        from pathlib import Path
        from xmd_core import distill, store
        from xmd_core.config import load_profile
        profile = dataclasses.replace(load_profile("smoke"), artifacts_dir=Path({str(smoke.artifacts_dir)!r}), results_dir=Path({str(smoke.results_dir)!r}))
        def dies_before_the_rename(work, target):
            os.kill(os.getpid(), signal.SIGKILL)
        store.replace_folder = dies_before_the_rename
        distill.distill(profile, "qwen2-vl", "qwen2-audio", progress=False, out=Path({str(out)!r}))
    """)
    child = subprocess.run([sys.executable, "-c", script], timeout=600)
    assert child.returncode == -signal.SIGKILL
    left = list(tmp_path.glob(".adapter.partial-*"))
    assert len(left) == 1 and (left[0] / "distill.json").is_file() and not out.exists()

    again = distill.distill(smoke, "qwen2-vl", "qwen2-audio", progress=False, out=out)
    assert again == out and not list(tmp_path.glob(".adapter.partial-*"))
    expected, got = _lora_weights(trained), _lora_weights(out)
    assert expected.keys() == got.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=0)


def test_a_live_runs_partial_folder_is_kept(tmp_path):
    out = tmp_path / "adapter"
    mine, dead = tmp_path / f".adapter.partial-{os.getpid()}", tmp_path / ".adapter.partial-999999999"
    mine.mkdir()
    dead.mkdir()
    assert remove_dead_partials(out) == [dead]
    assert mine.is_dir() and not dead.exists()


def test_loaded_adapter_answers_through_the_evaluation_path(smoke, trained):
    out = distill.evaluate_distilled(smoke, "qwen2-vl", "qwen2-audio", splits=("analysis", "unseen"), progress=False)
    run = distill.run_name("qwen2-vl", "qwen2-audio")
    stored = load_predictions(smoke, run, "analysis", "audio")
    assert len(stored) == len(out["analysis"]) > 0 and (stored["error"] == "").all()
    assert len(load_predictions(smoke, run, "unseen", "audio")) > 0
    base = load_predictions(smoke, "qwen2-audio", "finetune", "audio")
    assert len(base) == len(distill.finetune_clips(smoke))
    # the adapter learned something: its LoRA B matrices (zero at the start) are not zero, and the
    # distilled student's letter logits differ from the base model's on the same clips
    from safetensors.torch import load_file

    lora_b = [w for n, w in load_file(trained / "adapter_model.safetensors").items() if "lora_B" in n]
    assert lora_b and all(w.abs().max() > 0 for w in lora_b)
    from xmd_core.study import prepare

    before = distill.answers_on(smoke, "qwen2-audio", prepare(smoke, progress=False).split("analysis"), "analysis", progress=False)
    after = out["analysis"].set_index("clip").loc[before["clip"]]
    assert not np.allclose(np.stack(before["letter_logits"]), np.stack(after["letter_logits"]), atol=1e-4)
    # and it loads the same way again
    again = load_model("qwen2-audio", smoke, adapter_dir=trained)
    assert any("lora_" in n for n, _ in again.model.named_parameters())


def test_one_pass_and_accumulated_micro_batches_train_the_same_adapter(smoke, trained, tmp_path):
    """8 clips in one pass or 2 x 4 accumulated: the same effective batch, the same adapter."""
    assert smoke.distill.micro_batch_size * 2 == smoke.distill.batch_size  # `trained` accumulates 2 x 4
    whole = replace(smoke, distill={"micro_batch_size": 8})
    other = distill.distill(whole, "qwen2-vl", "qwen2-audio", progress=False, out=tmp_path / "halves")
    from safetensors.torch import load_file

    a, b = load_file(trained / "adapter_model.safetensors"), load_file(other / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=2e-5, rtol=1e-4)


def test_without_tower_cache_the_same_adapter(smoke, trained, tmp_path):
    other = distill.distill(smoke, "qwen2-vl", "qwen2-audio", tower_cache=False, progress=False, out=tmp_path / "full")
    from safetensors.torch import load_file

    a, b = load_file(trained / "adapter_model.safetensors"), load_file(other / "adapter_model.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-4, rtol=1e-3)


def test_paired_gain_counts_discordant_clips_and_needs_the_same_clips():
    from xmd_core.transfer import paired_gain

    before = pd.DataFrame({"clip": list("abcdef"), "correct": [1, 0, 0, 1, 0, 1]})
    after = pd.DataFrame({"clip": list("fedcba"), "correct": [1, 1, 1, 1, 0, 1]})  # another order
    gain = paired_gain(before, after)
    assert gain["right only before"] == 0 and gain["right only after"] == 2  # clips c and e, matched by name
    assert gain["before"] == pytest.approx(50.0) and gain["after"] == pytest.approx(500 / 6)
    with pytest.raises(ValueError, match="not the same clips"):
        paired_gain(before, after.iloc[:5])


def test_the_key_names_the_students_weights(smoke):
    key = distill.distill_key(smoke, "qwen2-vl", "qwen2-audio", "teacher-labels", "digest")
    assert "qwen2-audio" in key["student_weights"] and "expert" in key["student_weights"]
