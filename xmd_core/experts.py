"""The tiny modality experts of the embedded profiles (the book's chapter on the embedded world).

Each tiny checkpoint (the real `transformers` class, tiny config) is trained from scratch on the
world's `pretrain` split, with ground truth, in its own modality: the audio model hears
(condition "audio"), the visual models see silent video, and the Omni thinker gets all three
conditions, one per batch in turn. The loss is the cross-entropy of the answer letter's token at
the last position, over the whole vocabulary, so that greedy generation's first token is the
letter as well.

Tiny language models learn to *find* the option whose name matches what they perceive only
after a long plateau (3,000 steps below 20% held-out accuracy without the aids below). The
recipe that escapes it, used here and only here:

- every class name is one token (`models.tiny`) and the output head is tied to the embeddings;
- linear and conv weights are drawn N(0, 1/sqrt(fan_in)), token embeddings N(0, 1), and each
  attention layer of the language model starts with `k_proj` equal to `q_proj`;
- an auxiliary alignment loss: every media token at the projector's output (where it enters the
  language model), dotted with the embeddings of the class-name tokens, is trained with
  cross-entropy toward the clip's class, so that what the model hears or sees lands where the
  option's name lives;
- attention supervision of the two-layer retrieval circuit (:func:`circuit_loss`): in the
  first layer each option's name attends to its letter and the last position to the media; in
  the last layer the last position attends to the answer's name. Without it the recipe above
  stayed below 20% held-out accuracy for 3,000 steps (tiny Qwen2-Audio, this world); with it the
  run leaves chance within 200-500 steps;
- each step asks a fresh question about each clip (options drawn as `mcq` draws them, the
  answer at a random letter), so the model cannot learn a clip's letter by heart;
- phase 1 trains on informative clips only (the class is heard / seen under the condition),
  with the learning rate held after warm-up until held-out accuracy leaves chance, then a cosine
  decay; a run still at chance after `plateau_steps` restarts with a new seed;
- phase 2 (`mix_steps`) fine-tunes on the real mix, so that clips without signal get
  near-uniform letters: on those the answer's target is uniform over the options' letters
  (`UNINFORMATIVE_TARGET`; with the true letter the experts learn the world's base rates
  instead, e.g. "inaudible, so probably a mostly-seen class");
- after the letter, the turn ends (`<|im_end|>` is trained too), so greedy generation answers
  with the letter alone and `scoring.parse_letter` reads it.
- venue heads (`expert_context`): a linear probe on the media tokens' mean embedding is trained
  toward the clip's venue, so that the frozen towers of distillation encode the context a
  teacher's labels can tie to a class; a probe on the class names' embeddings is trained toward
  where each class happens (the language model's world knowledge); the questions never tie a
  venue to a class, and the heads are not saved.

The recipe's pieces (initialisation, losses, the forward pass that feeds the supervision) live in
`expert_recipe`, the training loop in `expert_trainer`, the clips and batches in `expert_data`.
The supervision reads 11 query rows of the first and the last layer's attention probabilities,
computed beside fused attention (`supervised_attention`), not by materialising every layer's full
probabilities (`attention="eager"`, the reference that the tests and
`make bench` compare against: x1.1-1.6 slower per step).

These aids belong to expert building: the saved checkpoint is a plain model that the adapters
load with `from_pretrained`, and everything afterwards uses it with the paper's prompt.

Media go through each model's own processor once per clip and condition; the per-clip tensors
are kept and collated into batches (left padding) by `expert_data.collate`, which reproduces the
processor's batch exactly (tested).

A checkpoint folder holds `expert.json` (the hash of everything that determines the result,
final figures, timings, and the key itself) and `curves.csv` (the learning curves); a folder whose
record holds the same key is returned at once. Training happens in a temporary sibling folder renamed into place at the end
(`store`: the same for every stage).
"""

from __future__ import annotations

import json
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import torch

from .keys import key_digest
from .config import Profile
from .models.registry import TINY_FAMILY, checkpoint_path
from .models.tiny import TinySizes, build_tiny_checkpoint
from .expert_recipe import (  # noqa: F401  (re-exported: the recipe's pieces are part of this module's API)
    alignment_loss,
    attention_loss,
    circuit_forward,
    circuit_loss,
    circuit_rows,
    init_expert_weights,
    language_model,
    take_rows,
    tie_keys_to_queries,
    tie_output_head,
    untie_for_saving,
)
from .expert_context import KNOWLEDGE_WEIGHT, VENUE_WEIGHT
from .expert_data import Batch, Encoded, ExpertData, QuestionSampler, append_token, collate, encode, for_model, informative, pretraining_domains, load_expert_data, load_media, split_batch  # noqa: F401 (re-exported)
from . import store
from .expert_trainer import (  # noqa: F401 (re-exported: the trainer's settings are part of this module's API)
    ATTENTION_KERNELS,
    ATTENTION_WEIGHT,
    CURVE_COLUMNS,
    ESCAPE_ACCURACY,
    FINAL_LR_FRACTION,
    GRAD_CLIP,
    MIX_LR_FRACTION,
    UNINFORMATIVE_TARGET,
    ExpertTrainer,
)
from .supervised_attention import use_row_attention  # noqa: F401 (re-exported)

#: Bump when a change here changes the trained experts: every expert is then rebuilt.
EXPERTS_VERSION = "7"  # 7: venue knowledge in the class names; 6: audio-only experts on clean clips only; 5: venue heads; 4: fused attention, supervised rows apart

# --- the trainer --------------------------------------------------------------------------------


def expert_key(name: str, profile: Profile) -> dict:
    """Everything that determines a trained expert (hashed into `expert.json`)."""
    world = {}
    manifest = profile.world_dir / "world.json"
    if profile.data.source == "world":
        world = json.loads(manifest.read_text())["key"]  # config_hash, generator_version
    return {
        "experts_version": EXPERTS_VERSION,
        "name": name,
        "family": TINY_FAMILY[name],
        "sizes": asdict(TinySizes()),
        # not `splits`: the pretrain split is the world's own, untouched by the analysis split
        "config": profile.config_hash("experts", "media", "world", "data", "mcq"),
        "models": {"kind": profile.models.kind, "dtype": profile.models.dtype},
        "world": world,
        "recipe": {
            "escape_accuracy": ESCAPE_ACCURACY,
            "mix_lr_fraction": MIX_LR_FRACTION,
            "final_lr_fraction": FINAL_LR_FRACTION,
            "grad_clip": GRAD_CLIP,
            "attention_weight": ATTENTION_WEIGHT,
            "uninformative_target": UNINFORMATIVE_TARGET,
            "venue_weight": VENUE_WEIGHT,
            "knowledge_weight": KNOWLEDGE_WEIGHT,
        },
    }


def key_hash(key: dict) -> str:
    return key_digest(key, 16)


#: The record of a checkpoint folder, written last (`store`).
EXPERT_RECORD = "expert.json"


def is_trained(folder: str | Path, key: dict) -> bool:
    """Whether `folder` holds an expert trained under `key` (`expert_key`)."""
    return store.finished(Path(folder), EXPERT_RECORD, key)


# --- the API ------------------------------------------------------------------------------------


@contextmanager
def torch_threads(threads: int | None):
    """Run with `threads` intra-op threads (None: leave as is), restoring the setting after."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_expert(
    name: str, profile: Profile, progress: bool = True, data: ExpertData | None = None, threads: int | None = 1, bar_position: int | None = None
) -> Path:
    """Train the tiny expert `name` of an embedded profile; returns its checkpoint folder.

    Returns at once when the folder already holds an expert built from the same configuration.
    `data` (from :func:`load_expert_data`) may be passed to share the loaded tables. The tiny
    models train fastest on one thread (on a busy 2-core machine two threads were 10x slower);
    `threads=None` keeps torch's setting. `bar_position`: the progress bar's line (see
    `expert_pool`, which trains several experts at once).
    """
    with torch_threads(threads):
        return _train_expert(name, profile, progress, data, bar_position)


def _train_expert(name: str, profile: Profile, progress: bool, data: ExpertData | None, bar_position: int | None = None) -> Path:
    if profile.models.kind != "tiny":
        raise ValueError(f"profile {profile.name!r} loads hub checkpoints (models.kind={profile.models.kind!r}); experts are tiny only")
    if name not in TINY_FAMILY:
        raise ValueError(f"no tiny expert for {name!r}; tiny models: {', '.join(TINY_FAMILY)}")
    target = Path(checkpoint_path(name, profile))
    key = current_key(name, profile)

    def train_into(work: Path) -> dict:
        return _train_into(work, name, profile, progress, data, key, bar_position)

    return store.compute(target, EXPERT_RECORD, key, train_into, f"expert {target.name}", progress)


def _train_into(work: Path, name: str, profile: Profile, progress: bool, data: ExpertData | None, key: dict, bar_position: int | None) -> dict:
    """Train the expert into the (empty) folder `work`; returns its record's fields."""
    import transformers

    data = data if data is not None else load_expert_data(profile, progress=progress)
    started = time.perf_counter()
    build_tiny_checkpoint(TINY_FAMILY[name], work, data.class_names, seed=profile.experts.seed)
    trainer = ExpertTrainer(name, profile, data, work, progress)
    trainer.bar_position = bar_position
    prepared = time.perf_counter() - started
    model, curves, attempts = trainer.fit()
    final = trainer.evaluate(model)
    generation = trainer.check_generation(model)
    untie_for_saving(model, trainer.natively_tied)
    model.save_pretrained(work)
    curves.to_csv(work / "curves.csv", index=False)
    escaped = attempts[-1]["escaped_at_step"] is not None
    if not escaped:
        warnings.warn(
            f"expert {name}: held-out accuracy stayed near chance after {len(attempts)} attempt(s); "
            "the checkpoint is saved but is not a usable expert (more steps or restarts: profile.experts)",
            RuntimeWarning,
            stacklevel=2,
        )
    return {
        "hash": key_hash(key),
        "status": "trained" if escaped else "plateau",
        "name": name,
        "family": TINY_FAMILY[name],
        "conditions": list(trainer.conditions),
        "classes": data.class_names,
        "experts_config": asdict(profile.experts),
        "pretraining_domains": list(pretraining_domains(trainer.conditions)),
        "heldout_clips": int(len(trainer.data.heldout)),
        "train_clips": int(len(trainer.data.train)),
        "final": final,
        "generation": generation,
        "attempts": attempts,
        "restarts": len(attempts) - 1,
        "seconds": {"prepare": round(prepared, 1), "total": round(time.perf_counter() - started, 1)},
        "threads": torch.get_num_threads(),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
    }


def train_experts(
    profile: Profile, names: list[str] | tuple[str, ...] | None = None, progress: bool = True, threads: int | None = 1
) -> dict[str, Path]:
    """Train (or find) every tiny expert the profile evaluates; returns name -> checkpoint."""
    names = list(names) if names is not None else [n for n in profile.models.evaluate if n in TINY_FAMILY]
    data = None
    out = {}
    for name in names:
        if data is None and not is_trained(checkpoint_path(name, profile), current_key(name, profile)):
            data = load_expert_data(profile, progress=progress)
        out[name] = train_expert(name, profile, progress=progress, data=data, threads=threads)
    return out


def current_key(name: str, profile: Profile) -> dict:
    """The expert's key now (building the embedded world first, whose manifest is part of it)."""
    if profile.data.source == "world":
        from .study import ensure_world

        ensure_world(profile, progress=False)
    return expert_key(name, profile)


def read_curves(name: str, profile: Profile) -> pd.DataFrame:
    """The learning curves of a trained expert (for the book)."""
    return pd.read_csv(Path(checkpoint_path(name, profile)) / "curves.csv")


def read_expert_info(name: str, profile: Profile) -> dict:
    return json.loads((Path(checkpoint_path(name, profile)) / "expert.json").read_text())


__all__ = [
    "CURVE_COLUMNS",
    "EXPERTS_VERSION",
    "alignment_loss",
    "collate",
    "expert_key",
    "init_expert_weights",
    "load_expert_data",
    "read_curves",
    "read_expert_info",
    "split_batch",
    "tie_keys_to_queries",
    "train_expert",
    "train_experts",
]
