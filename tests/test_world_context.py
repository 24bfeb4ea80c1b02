"""World v2: venues (xmd_core.world.context), recording domains (.domain), the mechanisms
sentence, the experts' venue heads and the simulated panel's use of the venue."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch

from xmd_core.config import load_profile
from xmd_core.expert_context import VenueHeads, knowledge_targets, venue_indices
from xmd_core.humans import panel
from xmd_core.world import context, domain
from xmd_core.world.classes import select_classes
from xmd_core.world.clips import draw_clip
from xmd_core.world.mechanisms import mechanisms_sentence

SR = 16000
CONTEXT_FIELDS = {"venue", "audio_venue", "scene", "domain", "context_db", "reverb_s", "lowpass_hz", "highpass_hz", "noise_db"}


def _world(**changes):
    return dataclasses.replace(load_profile("smoke").world, **changes)


def _draws(world, split, n=60):
    table = select_classes(world)
    rows = table[table.group != "unseen"].head(4)
    return [
        draw_clip(world, r.label, r.category, r.group, r.p_audible, r.p_visible, split, i, tuple(table.label))
        for r in rows.itertuples()
        for i in range(n)
    ]


def test_a_class_mixture_is_fixed_by_seed_and_label_and_differs_between_classes():
    a, b = context.venue_mixture(0, "dog barking"), context.venue_mixture(0, "playing tennis")
    assert a.sum() == pytest.approx(1.0) and len(a) == len(context.VENUE_NAMES)
    np.testing.assert_array_equal(a, context.venue_mixture(0, "dog barking"))
    assert not np.allclose(a, b) and not np.allclose(a, context.venue_mixture(1, "dog barking"))


def test_every_venue_has_its_own_scene_and_an_unknown_one_is_named():
    styles = [context.scene_style(v) for v in context.VENUE_NAMES]
    assert len(set(styles)) == len(styles)
    with pytest.raises(KeyError, match="'moon'"):
        context.scene_style("moon")
    with pytest.raises(KeyError, match="'moon'"):
        context.ambience("moon", np.random.default_rng(0), SR, SR)


def test_ambiences_are_unit_rms_and_tell_venues_apart():
    """Each venue's bed has a sound of its own: the nearest mean of other renditions' band levels
    (mean and spread over 25 ms frames) names the venue of fresh renditions."""
    def features(venue, seed):
        bed = context.ambience(venue, np.random.default_rng(seed), SR, SR)
        assert np.sqrt(np.mean(bed**2)) == pytest.approx(1.0, rel=1e-6)
        frames = bed[: SR // 400 * 400].reshape(-1, 400)
        power = np.abs(np.fft.rfft(frames * np.hanning(400), axis=1)) ** 2
        bands = np.log(np.add.reduceat(power, np.geomspace(1, power.shape[1] - 1, 17).astype(int), axis=1) + 1e-9)
        return np.concatenate([bands.mean(0), bands.std(0)])

    means = {v: np.mean([features(v, s) for s in range(4)], axis=0) for v in context.VENUE_NAMES}
    for venue in context.VENUE_NAMES:
        for seed in (99, 100):
            probe = features(venue, seed)
            assert min(means, key=lambda v: np.sum((means[v] - probe) ** 2)) == venue


def test_wild_clips_hear_their_venue_and_curated_pretraining_hears_another():
    world = _world()
    wild, pretrain = _draws(world, "test"), _draws(world, "pretrain", 150)
    assert all(d.domain == "wild" and d.audio_venue == d.venue for d in wild)
    assert all(d.scene == context.scene_style(d.venue)[0] for d in wild + pretrain)
    lo, hi = domain.CONTEXT_DB["wild"]
    assert all(lo <= d.context_db <= hi and domain.LOWPASS_HZ[0] <= d.lowpass_hz <= domain.LOWPASS_HZ[1] for d in wild)
    curated = [d for d in pretrain if d.domain == "clean"]
    web = [d for d in pretrain if d.domain == "wild"]
    assert abs(len(web) / len(pretrain) - domain.WEB_VIDEO_SHARE) < 0.08
    assert all(math.isnan(d.reverb_s) and math.isnan(d.lowpass_hz) for d in curated)
    assert all(d.audio_venue == d.venue for d in web)
    assert np.mean([d.audio_venue == d.venue for d in curated]) < 0.4  # unrelated, not the class's venue


def test_audio_only_experts_pretrain_on_curated_clips_and_the_others_on_all():
    from xmd_core.expert_data import ExpertData, for_model, pretraining_domains

    table = pd.DataFrame({"clip": [f"c{i}" for i in range(8)], "domain": ["clean", "wild"] * 4})
    data = ExpertData(table=table, class_names=[], class_counts={}, heldout=np.array([0, 1, 2]), train=np.array([3, 4, 5, 6, 7]))
    assert pretraining_domains(("audio",)) == ("clean",)
    assert for_model(data, ("audio", "silent_video", "sounded_video")) is data
    audio = for_model(data, ("audio",))
    assert list(audio.table["clip"]) == ["c0", "c2", "c4", "c6"]
    assert list(audio.table["clip"][audio.heldout]) == ["c0", "c2"] and list(audio.table["clip"][audio.train]) == ["c4", "c6"]
    with pytest.raises(ValueError, match="no pretrain clip"):
        for_model(ExpertData(table=table.assign(domain="wild"), class_names=[], class_counts={}, heldout=data.heldout, train=data.train), ("audio",))


def test_a_class_draws_its_venues_from_its_mixture_and_the_control_world_uniformly():
    world = _world()
    label = _draws(world, "test", 1)[0].label
    draws = [d for d in _draws(world, "train", 300) if d.label == label]
    seen = pd.Series([d.venue for d in draws]).value_counts(normalize=True)
    mixture = pd.Series(context.venue_mixture(world.seed, label), index=context.VENUE_NAMES)
    assert (seen.reindex(mixture.index, fill_value=0) - mixture).abs().max() < 0.1
    control = [d for d in _draws(_world(context=False, domain_shift=False), "train", 300) if d.label == label]
    shares = pd.Series([d.venue for d in control]).value_counts(normalize=True)
    assert len(shares) == len(context.VENUE_NAMES) and shares.max() < 0.2
    assert all(d.domain == "clean" for d in control)


def test_switching_the_mechanisms_off_changes_only_the_context_draws():
    on, off = _draws(_world(), "test", 10), _draws(_world(context=False, domain_shift=False), "test", 10)
    for a, b in zip(on, off):
        same = {k: v for k, v in a.row().items() if k not in CONTEXT_FIELDS}
        assert same == {k: v for k, v in b.row().items() if k not in CONTEXT_FIELDS}


def test_the_wild_chain_band_limits_and_a_clean_clip_is_untouched():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(SR)
    clean = domain.draw_recording(np.random.default_rng(1), "clean")
    assert domain.record(x, clean, rng, SR) is x
    wild = dataclasses.replace(domain.draw_recording(np.random.default_rng(1), "wild"), lowpass_hz=2000.0, highpass_hz=300.0, noise_db=-40.0)
    y = domain.record(x, wild, np.random.default_rng(2), SR)
    power, freqs = np.abs(np.fft.rfft(y)) ** 2, np.fft.rfftfreq(SR, 1 / SR)
    assert power[freqs > 4000].sum() < 0.01 * power[(freqs > 500) & (freqs < 1500)].sum()
    with pytest.raises(ValueError, match="'studio'"):
        domain.draw_recording(rng, "studio")


def test_venue_only_accuracy_spans_chance_to_certainty():
    labels = [f"c{i}" for i in range(8)]
    venues = list(context.VENUE_NAMES)
    one_hot = pd.DataFrame(np.eye(8), index=labels, columns=venues)
    uniform = pd.DataFrame(np.full((8, 8), 1 / 8), index=labels, columns=venues)
    rng = np.random.default_rng(0)
    options = [list(rng.permutation(labels)[:4]) for _ in range(400)]
    answers = rng.integers(0, 4, len(options))
    where = [venues[labels.index(opts[a])] for opts, a in zip(options, answers)]
    assert context.venue_only_accuracy(options, answers, where, one_hot) == 1.0
    assert context.venue_only_accuracy(options, answers, where, uniform) == pytest.approx(0.25)  # ties: 1 in 4
    outside = [["c0", "elsewhere"]]  # a class without a mixture is never the venue's best guess
    assert context.venue_only_accuracy(outside, [0], ["crowd"], one_hot) == 1.0


def test_the_mechanisms_sentence_says_what_is_on_and_off():
    on, off = mechanisms_sentence(_world()), mechanisms_sentence(_world(context=False, domain_shift=False))
    assert "venues" in on and "clean curated clips" in on and "web video" in on and "Switched off" not in on
    assert "Switched off" in off and "class-correlated venues" in off and "recording-domain shift" in off


def test_venue_heads_learn_a_separable_venue_and_skip_rows_without_tokens():
    torch.manual_seed(0)
    heads = VenueHeads(16, ("audio", "visual"), seed=0)
    target = venue_indices(["crowd", "rain", "room", "crowd"])
    embeds = torch.randn(4, 5, 16) + 3 * torch.nn.functional.one_hot(target, 16)[:, None].float()
    audio = torch.zeros(4, 5, dtype=torch.bool)
    audio[:, 1:4] = True
    masks = {"audio": audio, "visual": torch.zeros_like(audio)}  # no visual tokens: left out
    optimizer = torch.optim.SGD(heads.parameters(), lr=0.5)
    first = None
    for _ in range(50):
        loss = heads.loss(embeds, masks, {"audio": target, "visual": target})
        first = float(loss.detach()) if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(loss.detach()) < 0.2 * first
    assert heads.heads["visual"].weight.grad is None
    with pytest.raises(ValueError, match="'moon'"):
        venue_indices(["crowd", "moon"])


def test_venue_knowledge_is_the_class_mixture_and_uniform_elsewhere():
    """Class names know their class's mixture; other option names, and every name in the control
    world, know nothing (uniform)."""
    world = _world()
    uniform = torch.full((len(context.VENUE_NAMES),), 1.0 / len(context.VENUE_NAMES))
    targets = knowledge_targets(world, ["b", "Zither", "a"], classes=["a", "b"])
    assert torch.allclose(targets[0], torch.tensor(context.venue_mixture(world.seed, "b"), dtype=torch.float32))
    assert torch.allclose(targets[2], torch.tensor(context.venue_mixture(world.seed, "a"), dtype=torch.float32))
    assert torch.allclose(targets[1], uniform)
    control = knowledge_targets(_world(context=False), ["b", "a"], classes=["a", "b"])
    assert torch.allclose(control, uniform.expand(2, -1))


def test_the_knowledge_probe_learns_mixtures_from_name_embeddings():
    torch.manual_seed(0)
    heads = VenueHeads(16, ("audio",), seed=0)
    targets = knowledge_targets(_world(), [f"class{i}" for i in range(6)], classes=[f"class{i}" for i in range(6)])
    names = torch.nn.Parameter(torch.randn(6, 16))
    optimizer = torch.optim.Adam([names, *heads.parameters()], lr=0.05)
    first = float(heads.knowledge_loss(names, targets).detach())
    for _ in range(200):
        loss = heads.knowledge_loss(names, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(loss.detach()) < 0.1 * first


def test_the_panel_guesses_from_the_venue_when_it_is_informative():
    """Trials without the cue: with peaked mixtures, guessing from the venue beats chance; with
    uniform mixtures (the control world) it stays at chance."""
    labels = [f"c{i}" for i in range(8)]
    venues = list(context.VENUE_NAMES)
    rng = np.random.default_rng(0)
    rows = []
    for trial in range(1, 2001):
        options = list(rng.permutation(labels)[:4])
        answer = int(rng.integers(4))
        rows.append({"participant": f"p{trial % 20}", "trial": trial, "clip": f"k{trial}", "label": options[answer],
                     "condition": "audio", "options": options, "answer": "ABCD"[answer]})  # fmt: skip
    design = pd.DataFrame(rows)
    info = pd.DataFrame({"clip": design["clip"], "audible": False, "visible": False,
                         "venue": [venues[labels.index(lab)] for lab in design.label]})  # fmt: skip
    peaked = pd.DataFrame(np.eye(8) * 0.9 + 0.1 / 8, index=labels, columns=venues)
    flat = pd.DataFrame(np.full((8, 8), 1 / 8), index=labels, columns=venues)
    params = panel.PanelParams(venue_context=1.0, lapse_mean=0.0, skip_rate=0.0)
    informed = panel.simulate_panel(design, info, params, seed=0, venue_weights=peaked)["correct"].mean()
    control = panel.simulate_panel(design, info, params, seed=0, venue_weights=flat)["correct"].mean()
    assert informed > 0.7 and abs(control - 0.25) < 0.05
