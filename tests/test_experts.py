"""Tests of the tiny-expert trainer (xmd_core.experts): the recipe's pieces on hand-made tensors,
the per-clip batching against the processors, and a smoke-profile run end to end."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import signal
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
import transformers

from xmd_core import expert_data, experts
from xmd_core.config import replace
from xmd_core.mcq import format_prompt
from xmd_core.models.adapters import Sample
from xmd_core.models.registry import REGISTRY, TINY_FAMILY, ModelUnavailable, checkpoint_path, load_model
from xmd_core.models.tiny import build_tiny_checkpoint
from xmd_core.scoring import score_letters

CLASSES = [f"class {c}" for c in "abcdefghijkl"]

# the smoke profile trains ~20 steps: its experts stay at chance, which train_expert warns about
smoke_training = pytest.mark.filterwarnings("ignore:expert .* near chance:RuntimeWarning")


@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory):
    """An untrained tiny checkpoint of every family (model class, processor), built once."""
    root = tmp_path_factory.mktemp("tiny")
    out = {}
    for name, family in TINY_FAMILY.items():
        folder = build_tiny_checkpoint(family, root / family, CLASSES)
        out[name] = folder
    return out


def _load(name, folder):
    spec = REGISTRY[name]
    model = getattr(transformers, spec.adapter.model_class).from_pretrained(folder)
    processor = transformers.AutoProcessor.from_pretrained(folder)
    return spec.adapter(name, model, processor, spec.conditions)


# --- the recipe's pieces -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["qwen2-audio", "qwen2.5-omni"])
def test_init_ties_keys_to_queries_and_head_to_embeddings(name, tiny_checkpoints):
    adapter = _load(name, tiny_checkpoints[name])
    model = adapter.model
    experts.init_expert_weights(model, seed=3)
    layers = experts.language_model(model).layers
    assert len(layers) == 2
    for layer in layers:
        attention = layer.self_attn
        assert torch.equal(attention.k_proj.weight, attention.q_proj.weight)
        assert torch.equal(attention.k_proj.bias, attention.q_proj.bias)
        assert not torch.equal(attention.v_proj.weight, attention.q_proj.weight)
    embeddings = model.get_input_embeddings().weight
    assert model.get_output_embeddings().weight is embeddings
    assert abs(embeddings.std().item() - 1.0) < 0.05
    mlp = layers[0].mlp.up_proj.weight  # (intermediate, hidden): std 1/sqrt(hidden)
    assert abs(mlp.std().item() * math.sqrt(mlp.shape[1]) - 1.0) < 0.1
    # another seed draws other weights; the same seed the same ones
    again = _load(name, tiny_checkpoints[name]).model
    experts.init_expert_weights(again, seed=3)
    assert torch.equal(again.get_input_embeddings().weight, embeddings)
    other = _load(name, tiny_checkpoints[name]).model
    experts.init_expert_weights(other, seed=4)
    assert not torch.equal(other.get_input_embeddings().weight, embeddings)


def test_tie_keys_to_queries_on_a_plain_decoder():
    config = transformers.Qwen2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2, num_key_value_heads=2, vocab_size=50)
    decoder = transformers.Qwen2Model(config)
    assert experts.tie_keys_to_queries(decoder) == 3
    for layer in decoder.layers:
        assert torch.equal(layer.self_attn.k_proj.weight, layer.self_attn.q_proj.weight)
    grouped = transformers.Qwen2Model(
        transformers.Qwen2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1, vocab_size=50)
    )
    with pytest.raises(ValueError, match="cannot start equal"):
        experts.tie_keys_to_queries(grouped)


def test_alignment_loss_is_low_on_the_true_class_and_high_otherwise():
    torch.manual_seed(0)
    classes = torch.randn(6, 16) * 3
    target = torch.tensor([0, 1, 2, 3, 4, 5, 2, 2])
    right = experts.alignment_loss(classes[target], classes, target)
    wrong = experts.alignment_loss(classes[(target + 1) % 6], classes, target)
    noise = experts.alignment_loss(torch.randn(8, 16) * 0.01, classes, target)
    assert right.item() < 0.05
    assert wrong.item() > 10
    assert noise.item() == pytest.approx(math.log(6), abs=0.05)  # no signal: uniform over classes
    # it trains the media tokens toward the true class's embedding
    media = torch.zeros(8, 16, requires_grad=True)
    experts.alignment_loss(media, classes, target).backward()
    step = -media.grad
    assert all(int((step[i] @ classes.T).argmax()) == int(target[i]) for i in range(8))
    empty = experts.alignment_loss(torch.zeros(0, 16), classes, torch.zeros(0, dtype=torch.long))
    assert empty.item() == 0.0


def test_attention_loss_is_low_on_the_circuit_and_high_elsewhere():
    batch, heads, length = 2, 2, 12
    names = torch.tensor([[4, 7], [5, 8]])
    letters = names - 3
    answers = torch.tensor([1, 0])
    media = torch.zeros(batch, length, dtype=torch.bool)
    media[:, 1:3] = True
    informative = torch.tensor([True, True])

    def attention(first_targets, last_targets):
        first = torch.full((batch, heads, length, length), 1e-6)
        last = torch.full((batch, heads, length, length), 1e-6)
        for b in range(batch):
            for k in range(2):
                first[b, 0, names[b, k], first_targets(b, k)] = 1.0
            first[b, 1, -1, 1:3] = 0.5 if first_targets(b, 0) == letters[b, 0] else 1e-6
            last[b, :, -1, last_targets(b)] = 1.0
        return (first, last)

    right = attention(lambda b, k: letters[b, k], lambda b: names[b, answers[b]])
    wrong = attention(lambda b, k: names[b, k], lambda b: names[b, 1 - answers[b]])
    low = experts.attention_loss(right, names, letters, answers, media, informative)
    high = experts.attention_loss(wrong, names, letters, answers, media, informative)
    assert low.item() < 0.01
    assert high.item() > 20
    # rows whose media carry no class are not asked to find the answer
    assert experts.attention_loss(wrong, names, letters, answers, media, torch.tensor([False, False])) < high


# --- batches from per-clip tensors ---------------------------------------------------------------


def _samples(n_options=10):
    rng = np.random.default_rng(0)
    samples = []
    for i, seconds in enumerate((1.0, 2.0, 1.5)):
        options = [CLASSES[(i + k) % len(CLASSES)] for k in range(n_options)]
        samples.append(
            Sample(
                clip=f"clip{i}",
                prompt=format_prompt(options),
                audio=rng.normal(0, 0.1, int(16000 * seconds)).astype(np.float32),
                frames=rng.integers(0, 255, (2, 48, 64, 3), dtype=np.uint8),
            )
        )
    return samples


@pytest.mark.parametrize("name,condition", [(n, c) for n in TINY_FAMILY for c in REGISTRY[n].conditions])
def test_split_and_collate_rebuild_the_processor_batch(name, condition, tiny_checkpoints):
    adapter = _load(name, tiny_checkpoints[name])
    samples = _samples()
    batch = adapter.inputs(samples, condition)
    items = experts.split_batch(batch)
    assert len(items) == 3
    rebuilt = experts.collate(items, adapter.processor.tokenizer.pad_token_id)
    assert set(rebuilt) == set(batch)
    for key in batch:
        assert torch.equal(rebuilt[key], batch[key]), key
    # a batch in another order is the processor's batch of that order
    order = [2, 0, 1]
    reordered = experts.collate([items[i] for i in order], adapter.processor.tokenizer.pad_token_id)
    direct = adapter.inputs([samples[i] for i in order], condition)
    for key in direct:
        assert torch.equal(reordered[key], direct[key]), key


@pytest.mark.parametrize("name,condition", [(n, c) for n in TINY_FAMILY for c in REGISTRY[n].conditions])
def test_appending_the_answer_leaves_the_answer_logits_unchanged(name, condition, tiny_checkpoints):
    adapter = _load(name, tiny_checkpoints[name])
    batch = adapter.inputs(_samples(), condition)
    kwargs = adapter.forward_kwargs(condition)
    with torch.no_grad():
        plain = adapter.model(**batch, **kwargs, use_cache=False).logits[:, -1]
        longer = experts.append_token(dict(batch), adapter.letter_ids[:3])
        both = adapter.model(**longer, **kwargs, use_cache=False).logits
    assert longer["input_ids"].shape[1] == batch["input_ids"].shape[1] + 1
    torch.testing.assert_close(both[:, -2], plain, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["qwen2-audio", "qwen2.5-omni"])
def test_fresh_question_by_token_rewrite_matches_the_processor(name, tiny_checkpoints):
    adapter = _load(name, tiny_checkpoints[name])
    tokenizer = adapter.processor.tokenizer
    samples = _samples()
    condition = adapter.conditions[-1]
    token_of = {c: tokenizer.convert_tokens_to_ids(c) for c in CLASSES}
    original = [[CLASSES[(i + k) % len(CLASSES)] for k in range(10)] for i in range(3)]
    encoded = experts.encode(adapter, samples, condition, [[token_of[o] for o in opts] for opts in original], progress=False)
    new_options = list(reversed(CLASSES[:10]))
    ids = encoded.items[1]["input_ids"].clone()
    ids[torch.from_numpy(encoded.option_positions[1])] = torch.tensor([token_of[o] for o in new_options])
    direct = adapter.inputs([dataclasses.replace(samples[1], prompt=format_prompt(new_options))], condition)
    assert torch.equal(ids, direct["input_ids"][0])


def test_question_sampler_draws_like_mcq():
    counts = {f"c{i}": 10 * (i + 1) for i in range(12)}
    sampler = experts.QuestionSampler(counts, 10)
    rng = np.random.default_rng(0)
    positions = []
    for _ in range(2000):
        options, answer = sampler.draw("c3", rng)
        assert len(set(options)) == 10 and options[answer] == "c3"
        positions.append(answer)
    shares = np.bincount(positions, minlength=10) / len(positions)
    assert np.all(np.abs(shares - 0.1) < 0.03)


# --- the smoke profile, end to end ---------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, smoke_in):
    return smoke_in(tmp_path_factory.mktemp("experts"), seeded=True)


@pytest.fixture(scope="module")
def audio_expert(smoke):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="expert .* near chance", category=RuntimeWarning)
        return experts.train_expert("qwen2-audio", smoke, progress=False)


def test_training_writes_a_loadable_expert(smoke, audio_expert):
    assert str(audio_expert) == checkpoint_path("qwen2-audio", smoke)
    info = json.loads((audio_expert / "expert.json").read_text())
    assert info["status"] == "plateau" and info["conditions"] == ["audio"]  # 25 steps: still at chance (escaping: below)
    assert set(info["final"]["audio"]) >= {"heldout_acc", "heldout_acc_informative", "heldout_acc_uninformative"}
    assert set(info["generation"]["audio"]) >= {"parsed", "agrees_with_scoring"}
    curves = pd.read_csv(audio_expert / "curves.csv")
    assert list(curves.columns) == experts.CURVE_COLUMNS
    assert curves.step.max() == smoke.experts.steps + smoke.experts.mix_steps
    assert set(curves.phase) == {1, 2} and curves.loss.notna().all() and curves.align_loss.notna().all()
    assert not list(audio_expert.parent.glob(".*partial*"))  # trained in a temporary folder, renamed
    adapter = load_model("qwen2-audio", smoke)
    table = experts.load_expert_data(smoke, progress=False).table.head(3)
    from xmd_core.media import MediaCache

    cache = MediaCache(smoke.media_cache_dir)
    samples = [Sample(clip=c, prompt=p, audio=cache.audio(path)) for c, p, path in zip(table["clip"], table["prompt"], table["path"])]
    logits = score_letters(adapter, samples, "audio")
    assert logits.shape == (3, 10) and np.isfinite(logits).all()
    # the saved head equals the trained embeddings (the head was tied during training)
    assert torch.equal(adapter.model.get_output_embeddings().weight, adapter.model.get_input_embeddings().weight)


def test_second_call_returns_without_training(smoke, audio_expert, monkeypatch):
    stamp = (audio_expert / "expert.json").stat().st_mtime_ns

    def no_training(*args, **kwargs):
        raise AssertionError("the expert was trained again")

    monkeypatch.setattr(experts.ExpertTrainer, "fit", no_training)
    assert experts.train_expert("qwen2-audio", smoke, progress=False) == audio_expert
    assert experts.train_experts(smoke, names=["qwen2-audio"], progress=False) == {"qwen2-audio": audio_expert}
    assert (audio_expert / "expert.json").stat().st_mtime_ns == stamp


@pytest.mark.slow
@pytest.mark.training
def test_the_recipe_escapes_the_plateau_on_the_smoke_world(smoke, tmp_path):
    """300 steps on the smoke world's pretrain split (66 clips): the run leaves chance (held-out
    accuracy on informative clips at least ESCAPE_ACCURACY, 3x chance) and is saved as trained.
    The held-out split is small (about 15 informative clips), so the test also asks that the
    accuracy be unlikely under chance (binomial, p < 0.05)."""
    from scipy.stats import binomtest

    profile = dataclasses.replace(smoke, artifacts_dir=tmp_path / "artifacts")
    shutil.copytree(smoke.artifacts_dir / "world", profile.artifacts_dir / "world")
    profile = replace(profile, experts={"steps": 300, "mix_steps": 5, "eval_every": 25, "eval_clips": 64, "plateau_steps": 1000, "max_restarts": 0})
    info = json.loads((experts.train_expert("qwen2-audio", profile, progress=False) / "expert.json").read_text())
    assert info["status"] == "trained" and info["attempts"][0]["escaped_at_step"] is not None
    final = info["final"]["audio"]
    assert final["heldout_acc_informative"] >= experts.ESCAPE_ACCURACY
    right = round(final["heldout_acc_informative"] * final["n_informative"])
    assert binomtest(right, final["n_informative"], 1 / 10, alternative="greater").pvalue < 0.05


def _weights(folder):
    from safetensors.torch import load_file

    return {k: v for f in sorted(folder.glob("*.safetensors")) for k, v in load_file(f).items()}


@pytest.mark.slow
@smoke_training
def test_an_expert_killed_before_its_rename_is_trained_again_bit_for_bit(smoke, audio_expert, tmp_path):
    """kill -9 at the worst moment (weights, curves and record written into the partial folder,
    not yet renamed into place): nothing is taken as done, the dead run's folder is removed, and
    training again gives the uninterrupted run's weights and curves exactly."""
    target = experts.train_expert("qwen2-audio", smoke, progress=False)  # the uninterrupted run (cached)
    whole, whole_curves = _weights(target), pd.read_csv(target / "curves.csv")
    target.rename(tmp_path / "uninterrupted")
    script = textwrap.dedent(f"""
        import dataclasses, os, signal, warnings
        from pathlib import Path
        from xmd_core import experts, store
        from xmd_core.config import load_profile
        warnings.simplefilter("ignore")
        profile = dataclasses.replace(load_profile("smoke"), artifacts_dir=Path({str(smoke.artifacts_dir)!r}), results_dir=Path({str(smoke.results_dir)!r}))
        def dies_before_the_rename(work, target):
            os.kill(os.getpid(), signal.SIGKILL)
        store.replace_folder = dies_before_the_rename
        experts.train_expert("qwen2-audio", profile, progress=False)
    """)
    child = subprocess.run([sys.executable, "-c", script], timeout=600)
    assert child.returncode == -signal.SIGKILL
    left = list(target.parent.glob(f".{target.name}.partial-*"))
    assert not target.exists() and len(left) == 1 and (left[0] / "expert.json").is_file()
    with pytest.raises(ModelUnavailable, match="no checkpoint"):
        load_model("qwen2-audio", smoke)

    assert experts.train_expert("qwen2-audio", smoke, progress=False) == target
    assert not left[0].exists(), "the killed run's folder was left behind"
    again = _weights(target)
    assert again.keys() == whole.keys() and all(torch.equal(again[k], whole[k]) for k in whole)
    pd.testing.assert_frame_equal(pd.read_csv(target / "curves.csv"), whole_curves)


@smoke_training
def test_changed_experts_config_retrains(smoke, audio_expert):
    before = json.loads((audio_expert / "expert.json").read_text())
    changed = replace(smoke, experts={"steps": smoke.experts.steps + 2})
    stale = audio_expert.parent / ".qwen2-audio.partial-999999"  # as a killed run leaves it
    stale.mkdir()
    folder = experts.train_expert("qwen2-audio", changed, progress=False)
    assert not stale.exists()
    after = json.loads((folder / "expert.json").read_text())
    assert folder == audio_expert and after["hash"] != before["hash"]
    assert pd.read_csv(folder / "curves.csv").step.max() == changed.experts.steps + changed.experts.mix_steps


@smoke_training
def test_omni_trains_under_all_three_conditions(smoke):
    fast = replace(smoke, experts={"steps": 6, "mix_steps": 3, "eval_every": 3})
    folder = experts.train_expert("qwen2.5-omni", fast, progress=False)
    curves = pd.read_csv(folder / "curves.csv")
    assert set(curves.condition) == {"audio", "silent_video", "sounded_video"}
    info = json.loads((folder / "expert.json").read_text())
    assert set(info["final"]) == {"audio", "silent_video", "sounded_video"}
    adapter = load_model("qwen2.5-omni", fast)
    assert type(adapter.model).__name__ == REGISTRY["qwen2.5-omni"].adapter.model_class
    assert tuple(adapter.conditions) == ("audio", "silent_video", "sounded_video")


@pytest.mark.parametrize("name,condition", [(n, c) for n in TINY_FAMILY for c in REGISTRY[n].conditions])
def test_row_attention_gives_the_eager_losses_and_gradients(name, condition, tiny_checkpoints):
    """The fast path (fused attention, watched rows only, head on the last positions) against
    every layer's full probabilities: same logits, probabilities and gradients."""
    spec = REGISTRY[name]
    cls = getattr(transformers, spec.adapter.model_class)
    processor = transformers.AutoProcessor.from_pretrained(tiny_checkpoints[name])
    models = {}
    for kind in experts.ATTENTION_KERNELS:
        model = cls.from_pretrained(tiny_checkpoints[name], attn_implementation="eager")
        experts.init_expert_weights(model, seed=3)
        if kind == "rows":
            experts.use_row_attention(model)
        models[kind] = model.train()
    adapter = spec.adapter(name, models["eager"], processor, spec.conditions)
    items = experts.split_batch(adapter.inputs(_samples(), condition))
    for key in expert_data.SEQUENCE_KEYS:  # the first row two tokens shorter: left padding is tested too
        if key in items[0]:
            items[0][key] = items[0][key][2:]
    inputs = experts.append_token(experts.collate(items, processor.tokenizer.pad_token_id), adapter.letter_ids[:3])
    assert (inputs["attention_mask"][0, :2] == 0).all()
    length = inputs["input_ids"].shape[1]
    names = torch.tensor([[length - 9, length - 7, length - 5], [length - 8, length - 6, length - 4], [length - 12, length - 10, length - 3]])
    rows = experts.circuit_rows(names, length - 2)
    outputs, grads = {}, {}
    for kind, model in models.items():
        logits, first, last = experts.circuit_forward(model, inputs, adapter.forward_kwargs(condition), rows, kind)
        torch.manual_seed(1)  # the same random read-out of both paths
        loss = (logits * torch.randn(logits.shape)).sum() + (first * torch.randn(first.shape)).sum() + (last * torch.randn(last.shape)).sum()
        loss.backward()
        outputs[kind] = (logits, first, last)
        grads[kind] = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    for fast, reference in zip(outputs["rows"], outputs["eager"]):
        torch.testing.assert_close(fast, reference, atol=1e-5, rtol=1e-4)
    assert set(grads["rows"]) == set(grads["eager"])
    for key, reference in grads["eager"].items():
        # float32 sums in another order: compared to the gradient's own scale
        error = (grads["rows"][key] - reference).abs().max().item()
        assert error <= 1e-3 * reference.abs().max().item() + 1e-7, (key, error)
