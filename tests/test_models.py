"""Every adapter on its tiny checkpoint: inputs, letter tokens, batched = single, scoring vs generation."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from xmd_core import data
from xmd_core.config import load_profile
from xmd_core.mcq import LETTERS, format_prompt
from xmd_core.models import REGISTRY, TINY_FAMILY, ModelUnavailable, Sample, load_model
from xmd_core.models.tiny import build_tiny_checkpoint, build_tokenizer
from xmd_core.scoring import generate_answers, parse_letter, predicted_letters, score_letters

CLASSES = data.read_stat().label.tolist()[:40]


@pytest.fixture(scope="module")
def profile(tmp_path_factory, smoke_in):
    return smoke_in(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def checkpoints(profile):
    return {name: build_tiny_checkpoint(family, profile.artifacts_dir / "checkpoints" / name, CLASSES)
            for name, family in TINY_FAMILY.items()}


def _samples(n=3, seed=0):
    rng = np.random.default_rng(seed)
    # different audio lengths and prompts, so the batch really is padded
    return [Sample(f"clip{i}", format_prompt(CLASSES[i : i + 10]), (0.1 * rng.standard_normal(32000 - 6000 * i)).astype(np.float32),
                   rng.integers(0, 255, (2, 96, 128, 3), dtype=np.uint8)) for i in range(n)]


def test_tokenizer_letters_and_class_names_are_single_tokens():
    tok = build_tokenizer(CLASSES, "qwen2_audio")
    assert all(len(tok.encode(letter, add_special_tokens=False)) == 1 for letter in LETTERS)
    assert all(len(tok.encode(name, add_special_tokens=False)) == 1 for name in CLASSES)
    assert tok.padding_side == "left"


@pytest.mark.parametrize("name", list(TINY_FAMILY))
def test_adapter_inputs_and_batched_equals_single(name, profile, checkpoints):
    adapter = load_model(name, profile)
    assert type(adapter.model).__name__ == REGISTRY[name].adapter.model_class
    assert adapter.letter_ids.shape == (10,) and len(set(adapter.letter_ids.tolist())) == 10
    samples = _samples()
    for condition in adapter.conditions:
        batch = adapter.inputs(samples, condition)
        ids = batch["input_ids"]
        assert (batch["attention_mask"][:, -1] == 1).all(), "left padding keeps the answer position last"
        text = adapter.processor.tokenizer.decode(ids[0])
        assert "Classify the sounding object" in text and text.rstrip().endswith("assistant")
        tokens = adapter.processor.tokenizer
        if condition in ("audio", "sounded_video"):
            assert (ids == tokens.convert_tokens_to_ids(tokens.audio_token)).sum() > 0
        if condition in ("silent_video", "sounded_video"):
            assert (ids == tokens.convert_tokens_to_ids(tokens.video_token)).sum() > 0
        together = score_letters(adapter, samples, condition)
        alone = np.stack([score_letters(adapter, [s], condition)[0] for s in samples])
        np.testing.assert_allclose(together, alone, atol=1e-5)


def test_condition_outside_the_model_is_refused(profile, checkpoints):
    adapter = load_model("qwen2-audio", profile)
    with pytest.raises(ValueError, match="silent_video"):
        score_letters(adapter, _samples(1), "silent_video")


def _favour_letters(adapter):
    """Scale the output rows of the letters so the next token is always some letter."""
    head = adapter.model.get_output_embeddings().weight
    with torch.no_grad():
        head[adapter.letter_ids] *= 60.0


@pytest.mark.parametrize("name", list(TINY_FAMILY))
def test_letter_scoring_equals_greedy_generation_first_letter(name, profile, checkpoints):
    adapter = load_model(name, profile)
    _favour_letters(adapter)
    samples = _samples(4, seed=1)
    for condition in adapter.conditions:
        scored = predicted_letters(score_letters(adapter, samples, condition))
        generated = generate_answers(adapter, samples, condition, max_new_tokens=3)
        assert [g[:1] for g in generated] == scored, (condition, generated, scored)


@pytest.mark.parametrize(("text", "letter"), [("A", "A"), ("B.", "B"), ("(C) playing piano", "C"), ("The answer is D", "D"),
                                              ("  J\n", "J"), ("K", None), ("dog barking", None), ("", None)])
def test_parse_letter(text, letter):
    assert parse_letter(text) == letter


def test_remote_code_models_name_what_is_missing(profile):
    with pytest.raises(ModelUnavailable, match="kimia_infer"):
        load_model("kimi-audio", profile)
    with pytest.raises(KeyError, match="registered"):
        load_model("gpt-5", profile)


def test_missing_tiny_checkpoint_says_how_to_build_it(tmp_path):
    profile = dataclasses.replace(load_profile("smoke"), artifacts_dir=tmp_path)
    with pytest.raises(ModelUnavailable, match="xmd experts"):
        load_model("qwen2-vl", profile)


@pytest.mark.parametrize("condition,audio,frames", [("audio", True, False), ("silent_video", False, True), ("sounded_video", True, True)])
def test_a_sample_holds_the_media_its_condition_gives(condition, audio, frames):
    from types import SimpleNamespace

    from xmd_core.models.adapters import Sample

    class Cache:  # stands in for media.MediaCache: says what was decoded, with which settings
        def audio(self, path, sample_rate):
            return ("audio", path, sample_rate)

        def frames(self, path, fps, max_pixels):
            return ("frames", path, fps, max_pixels)

    media = SimpleNamespace(sample_rate=16000, fps=1.0, max_pixels=1024)
    sample = Sample.decoded(Cache(), media, "c1", "Which?", "/clips/c1.mp4", condition)
    assert (sample.clip, sample.prompt) == ("c1", "Which?")
    assert sample.audio == (("audio", "/clips/c1.mp4", 16000) if audio else None)
    assert sample.frames == (("frames", "/clips/c1.mp4", 1.0, 1024) if frames else None)


def test_videollama3_stamps_each_frame_and_compresses_still_ones(profile, checkpoints):
    """VideoLLaMA3's processor path: one "Time t s:" group per 1-fps frame, no padding to its
    `min_frames` (4), fewer tokens for frames that did not change (token compression), and
    clips of other lengths and compression batched as one row each."""
    adapter = load_model("videollama3", profile)
    rng = np.random.default_rng(2)
    long = rng.integers(0, 255, (10, 96, 128, 3), dtype=np.uint8)  # a 10-s VGGSound clip at 1 fps
    short = long[:2]  # a 2-s embedded clip
    still = np.repeat(long[:1], 2, axis=0)  # a 2-s clip whose picture does not change
    samples = [Sample(f"clip{i}", format_prompt(CLASSES[i : i + 10]), None, f) for i, f in enumerate((long, short, still))]
    batch = adapter.inputs(samples, "silent_video")
    tokens = adapter.processor.tokenizer
    texts = [tokens.decode(ids) for ids in batch["input_ids"]]
    assert [t.count("Time ") for t in texts] == [10, 2, 2]
    assert "Time 9.0s:" in texts[0] and "Time 1.0s:" in texts[1] and "Time 2.0s:" not in texts[1]
    video_tokens = (batch["input_ids"] == tokens.convert_tokens_to_ids(tokens.video_token)).sum(dim=1).tolist()
    assert video_tokens[2] < video_tokens[1], f"a still clip keeps as many tokens as a moving one: {video_tokens}"
    assert batch["video_compression_mask"].sum().item() == sum(video_tokens)
    together = score_letters(adapter, samples, "silent_video")
    alone = np.stack([score_letters(adapter, [s], "silent_video")[0] for s in samples])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_a_models_identity_names_its_weights_not_where_they_lie(tmp_path):
    """Evaluation and distillation keys hold `model_identity`: a tiny expert (its training hash)
    or an adapter (its key's digest) moved elsewhere is the same model; a retrained one is not."""
    from xmd_core.models.registry import model_identity

    def expert(where, digest):
        (where / "adapters" / "to-student").mkdir(parents=True)
        (where / "expert.json").write_text(json.dumps({"hash": digest}))
        (where / "adapters" / "to-student" / "distill.json").write_text(json.dumps({"key": {"teacher": "t", "digest": digest}}))
        return where, where / "adapters" / "to-student"

    here, moved, retrained = (expert(tmp_path / name / "qwen2-audio", digest) for name, digest in
                              (("here", "abc"), ("moved", "abc"), ("retrained", "def")))
    assert model_identity(*here) == model_identity(*moved)
    assert model_identity(*here) != model_identity(*retrained)
    assert str(tmp_path) not in model_identity(*here)
    assert model_identity("Qwen/Qwen2-Audio-7B-Instruct") == "Qwen/Qwen2-Audio-7B-Instruct"
