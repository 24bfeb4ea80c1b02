"""The experts' data: the pretrain clips with their world draws, their media encoded once per
clip and condition by the model's processor, batches collated from the per-clip tensors, and
fresh questions drawn as `mcq` draws them.

:func:`collate` reproduces the processor's own batch exactly (tested), so a batch built from
stored per-clip tensors is what the processor would have built from the clips.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .config import Profile
from .mcq import LETTERS
from .models.adapters import Adapter, Sample

ENCODE_CHUNK = 32

# Keys of a processor's batch: per-token rows (left-padded), flattened patches (split by their
# grid), and everything else one row per sample.
SEQUENCE_KEYS = ("input_ids", "attention_mask", "mm_token_type_ids")
PATCH_KEYS = {"pixel_values_videos": "video_grid_thw", "pixel_values": "image_grid_thw"}
# Per merged token of every video (VideoLLaMA3's token compression: which tokens are kept), split
# by the video's grid over its merge size squared.
MERGED_TOKEN_KEYS = {"video_compression_mask": ("video_grid_thw", "video_merge_sizes")}

@dataclass
class Batch:
    inputs: dict[str, torch.Tensor]
    rows: np.ndarray  # row numbers in the pretrain table
    answers: torch.Tensor  # (B,) answer index (the letter's position among the options)
    names: torch.Tensor  # (B, n_options) positions of the option names in the padded batch
    letters: torch.Tensor  # (B, n_options) positions of the option letters


# --- batches from per-clip tensors ------------------------------------------------------------


def split_batch(batch) -> list[dict[str, torch.Tensor]]:
    """A processor's left-padded batch as one dict of tensors per sample (padding removed)."""
    mask = batch["attention_mask"]
    n = mask.shape[0]
    items: list[dict[str, torch.Tensor]] = [{} for _ in range(n)]
    for key, value in batch.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"batch key {key!r} is a {type(value).__name__}, not a tensor")
        if key in SEQUENCE_KEYS:
            for i in range(n):
                valid = mask[i].bool()
                if valid.any() and not valid[int(valid.float().argmax()) :].all():
                    raise ValueError("split_batch expects left padding")
                items[i][key] = value[i][valid].clone()
        elif key in PATCH_KEYS:
            sizes = batch[PATCH_KEYS[key]].prod(dim=-1).tolist()
            if sum(sizes) != value.shape[0] or len(sizes) != n:
                raise ValueError(f"{key}: {value.shape[0]} patches do not match the grids {sizes}")
            for i, part in enumerate(torch.split(value, sizes)):
                items[i][key] = part.clone()
        elif key in MERGED_TOKEN_KEYS:
            grid, merge = (batch[k] for k in MERGED_TOKEN_KEYS[key])
            sizes = (grid.prod(dim=-1) // merge**2).tolist()
            if sum(sizes) != value.shape[0] or len(sizes) != n:
                raise ValueError(f"{key}: {value.shape[0]} entries do not match the merged grids {sizes}")
            for i, part in enumerate(torch.split(value, sizes)):
                items[i][key] = part.clone()
        else:
            if value.shape[0] != n:
                raise ValueError(f"batch key {key!r} has {value.shape[0]} rows for {n} samples")
            for i in range(n):
                items[i][key] = value[i : i + 1].clone()
    return items


def collate(items: list[dict[str, torch.Tensor]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """The inverse of :func:`split_batch`: a left-padded batch as the processor would build it."""
    keys = list(items[0])
    if any(list(item) != keys for item in items):
        raise ValueError("samples of one batch must have the same keys (one condition per batch)")
    length = max(item["input_ids"].shape[0] for item in items)
    out: dict[str, torch.Tensor] = {}
    for key in keys:
        if key in SEQUENCE_KEYS:
            fill = pad_token_id if key == "input_ids" else 0
            rows = []
            for item in items:
                value = item[key]
                pad = value.new_full((length - value.shape[0],), fill)
                rows.append(torch.cat([pad, value]))
            out[key] = torch.stack(rows)
        else:
            out[key] = torch.cat([item[key] for item in items])
    return out


def append_token(inputs: dict[str, torch.Tensor], tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    """A batch with one more text token at the end of every row (`tokens`, (B,))."""
    out = dict(inputs)
    out["input_ids"] = torch.cat([inputs["input_ids"], tokens[:, None].to(inputs["input_ids"].dtype)], dim=1)
    out["attention_mask"] = torch.cat([inputs["attention_mask"], torch.ones_like(inputs["attention_mask"][:, :1])], dim=1)
    if "mm_token_type_ids" in inputs:  # 0: a text token
        out["mm_token_type_ids"] = torch.cat([inputs["mm_token_type_ids"], torch.zeros_like(inputs["mm_token_type_ids"][:, :1])], dim=1)
    return out


# --- data ---------------------------------------------------------------------------------------


@dataclass
class Encoded:
    """One condition's per-clip tensors, with where the options sit in each clip's tokens."""

    condition: str
    items: list[dict[str, torch.Tensor]]
    option_positions: np.ndarray  # (n_clips, n_options) token positions of the option names
    letter_positions: np.ndarray  # (n_clips, n_options) token positions of the option letters


@dataclass
class ExpertData:
    table: pd.DataFrame  # the pretrain clips: clip, label, path, options, answer_index, audible, visible, group, venue, audio_venue, domain
    class_names: list[str]  # every option name (a single token each)
    class_counts: dict[str, int]
    heldout: np.ndarray  # row numbers of the held-out clips
    train: np.ndarray  # row numbers of the training clips


def informative(table: pd.DataFrame, condition: str) -> np.ndarray:
    """Whether each clip carries its class under `condition` (heard, seen, or either)."""
    audible = table["audible"].to_numpy(bool)
    visible = table["visible"].to_numpy(bool)
    return {"audio": audible, "silent_video": visible, "sounded_video": audible | visible}[condition]


def load_expert_data(profile: Profile, inputs=None, progress: bool = True) -> ExpertData:
    """The pretrain clips with their world draws, the option pool, and the held-out split."""
    from .study import prepare

    inputs = inputs if inputs is not None else prepare(profile, progress=progress)
    table = inputs.split("pretrain")
    if table.empty:
        raise ValueError(f"profile {profile.name!r} has no pretrain clips to train the experts on")
    draws_path = profile.world_dir / "clips.csv"
    if not draws_path.is_file():
        raise FileNotFoundError(f"{draws_path}: the world's clip draws (audible / visible / group) are needed")
    columns = ["clip", "audible", "visible", "group", "venue", "audio_venue", "domain"]
    draws = pd.read_csv(draws_path, dtype={"clip": str, "group": str, "venue": str, "audio_venue": str, "domain": str})
    missing = sorted(set(columns) - set(draws.columns))
    if missing:
        raise ValueError(f"{draws_path} has no column(s) {missing}: a world of an older generator; build it again (xmd world)")
    table = table.merge(draws[columns], on="clip", how="left", validate="one_to_one")
    if table[columns[1:]].isna().any().any():
        raise ValueError(f"pretrain clips missing from {draws_path}: {table[table.group.isna()]['clip'].head(3).tolist()}")
    table = table.sort_values("clip").reset_index(drop=True)
    table["audible"] = table["audible"].astype(bool)
    table["visible"] = table["visible"].astype(bool)
    names = set(inputs.classes.label) | {name for options in inputs.questions.options for name in options}
    counts = dict(zip(inputs.classes.label, inputs.classes["count"].astype(int)))
    rng = np.random.default_rng([profile.experts.seed, 7])
    n_heldout = min(profile.experts.eval_clips, len(table) // 2)
    order = rng.permutation(len(table))
    return ExpertData(
        table=table,
        class_names=sorted(names),
        class_counts=counts,
        heldout=np.sort(order[:n_heldout]),
        train=np.sort(order[n_heldout:]),
    )


def pretraining_domains(conditions: tuple[str, ...]) -> tuple[str, ...]:
    """The recording domains an expert pre-trains on: an audio-only model on curated clean audio,
    as audio LLMs train on curated tagging data; a model that sees video on web video too, whose
    sound is in the wild (`world.domain`)."""
    return ("clean",) if tuple(conditions) == ("audio",) else ("clean", "wild")


def restrict(data: ExpertData, keep: np.ndarray) -> ExpertData:
    """The same data with only the pretrain clips where `keep` (a boolean per table row) is true;
    the held-out and training clips stay held out and training."""
    new_row = np.cumsum(keep) - 1
    return ExpertData(
        table=data.table[keep].reset_index(drop=True),
        class_names=data.class_names,
        class_counts=data.class_counts,
        heldout=new_row[data.heldout[keep[data.heldout]]],
        train=new_row[data.train[keep[data.train]]],
    )


def for_model(data: ExpertData, conditions: tuple[str, ...]) -> ExpertData:
    """The pretrain clips of the domains a model with these conditions pre-trains on."""
    keep = data.table["domain"].isin(pretraining_domains(conditions)).to_numpy()
    if not keep.any():
        raise ValueError(f"no pretrain clip of the domains {pretraining_domains(conditions)} for conditions {conditions}")
    return data if keep.all() else restrict(data, keep)


def load_media(data: ExpertData, profile: Profile, needs_audio: bool, needs_frames: bool, progress: bool) -> list[Sample]:
    """Decoded media of every pretrain clip (through the disk cache), with its fixed question."""
    from .media import MediaCache

    cache = MediaCache(profile.media_cache_dir)
    media = profile.media
    # the condition whose media cover every condition the expert trains under
    widest = {(True, False): "audio", (False, True): "silent_video", (True, True): "sounded_video"}[(needs_audio, needs_frames)]
    samples = []
    rows = zip(data.table["clip"], data.table["path"], data.table["prompt"])
    for clip, path, prompt in tqdm(list(rows), desc="decode pretrain clips", disable=not progress, leave=False):
        samples.append(Sample.decoded(cache, media, clip, prompt, path, widest))
    return samples


def encode(adapter: Adapter, samples: list[Sample], condition: str, option_ids: list[list[int]], progress: bool) -> Encoded:
    """Run the model's processor once per clip under `condition`; keep the per-clip tensors and
    where each option's name and letter sit among its tokens."""
    items: list[dict[str, torch.Tensor]] = []
    for start in tqdm(range(0, len(samples), ENCODE_CHUNK), desc=f"encode {condition}", disable=not progress, leave=False):
        chunk = samples[start : start + ENCODE_CHUNK]
        batch = adapter.inputs(chunk, condition)
        items.extend(split_batch({k: v.cpu() for k, v in batch.items()}))
    n_options = len(option_ids[0])
    letter_ids = adapter.letter_ids.tolist()
    names = np.zeros((len(items), n_options), dtype=np.int64)
    letters = np.zeros((len(items), n_options), dtype=np.int64)
    for row, (item, ids) in enumerate(zip(items, option_ids)):
        tokens = item["input_ids"].tolist()
        start = 0
        for k, token in enumerate(ids):
            if token not in tokens[start:]:
                raise ValueError(f"clip {samples[row].clip}: option {k} is not one token of the prompt, in order")
            names[row, k] = start = tokens.index(token, start)
            before = [p for p in range(max(names[row, k] - 4, 0), names[row, k]) if tokens[p] == letter_ids[k]]
            if not before:
                raise ValueError(f"clip {samples[row].clip}: no letter {LETTERS[k]} just before option {k}")
            letters[row, k] = before[-1]
            start += 1
    return Encoded(condition=condition, items=items, option_positions=names, letter_positions=letters)


class QuestionSampler:
    """Fresh questions as `mcq.build_question` draws them: distractors without replacement in
    proportion to class frequency, the answer at a uniformly random letter."""

    def __init__(self, class_counts: dict[str, int], n_options: int):
        self.labels = list(class_counts)
        self.n_options = n_options
        counts = np.array([class_counts[c] for c in self.labels], dtype=float)
        self.others: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for i, label in enumerate(self.labels):
            keep = np.arange(len(self.labels)) != i
            self.others[label] = (np.flatnonzero(keep), counts[keep] / counts[keep].sum())

    def draw(self, label: str, rng: np.random.Generator) -> tuple[list[str], int]:
        pool, p = self.others[label]
        picked = rng.choice(pool, size=self.n_options - 1, replace=False, p=p)
        options = [self.labels[i] for i in picked]
        position = int(rng.integers(self.n_options))
        options.insert(position, label)
        return options, position


