"""The student's frozen towers, computed once (distillation, `xmd_core.distill`).

LoRA sits on the language model only, so everything below it (token embeddings, the audio or
vision tower, the projector) gives the same input embeddings for a clip at every step.
`TowerCache` stores them per clip on disk (each file written atomically, so several processes
may fill it at once), and `CachedStudent` runs the language model alone on them; `FullStudent`
is the whole student, towers recomputed (the reference the tests compare against).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from .atomic import save_torch_atomically
from .config import Profile
from .keys import key_digest
from .models.adapters import last_position_logits

#: Part of every cache entry's key: bump when what is cached changes (it was `distill`'s version,
#: "1", when the cache lived there; the same value keeps the entries already computed).
TOWER_VERSION = "1"


# --- the frozen towers: input embeddings per clip ------------------------------------------------


class _Captured(Exception):
    """Raised by the capture hook: the language model's inputs are all that is needed."""


def capture_embeddings(model, batch: dict, forward_kwargs: dict) -> dict[str, torch.Tensor | None]:
    """The language model's inputs for a processor batch: `inputs_embeds` (B, L, H),
    `attention_mask` (B, L) and `position_ids` (..., B, L) or None, exactly as the model's own
    forward builds them (a pre-hook on the decoder; the decoder itself does not run)."""
    got: dict = {}

    def hook(module, args, kwargs):
        got.update(inputs_embeds=kwargs["inputs_embeds"], attention_mask=kwargs.get("attention_mask"), position_ids=kwargs.get("position_ids"))
        raise _Captured

    handle = model.get_decoder().register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            model(**batch, **forward_kwargs, use_cache=False, logits_to_keep=1)
    except _Captured:
        pass
    finally:
        handle.remove()
    if "inputs_embeds" not in got:
        raise RuntimeError(f"{type(model).__name__}: the decoder was not called with inputs_embeds")
    return got


def split_rows(captured: dict, clips: list[str]) -> dict[str, dict[str, torch.Tensor]]:
    """One entry per clip, left padding removed."""
    mask = captured["attention_mask"]
    out = {}
    for b, clip in enumerate(clips):
        keep = mask[b].bool()
        entry = {"inputs_embeds": captured["inputs_embeds"][b, keep].detach().cpu().clone()}
        positions = captured["position_ids"]
        if positions is not None:
            entry["position_ids"] = positions[..., b, :][..., keep].detach().cpu().clone()
        out[clip] = entry
    return out


def collate_embeddings(entries: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """A left-padded batch of cached rows: inputs_embeds, attention_mask, position_ids."""
    longest = max(e["inputs_embeds"].shape[0] for e in entries)
    hidden = entries[0]["inputs_embeds"].shape[1]
    embeds = torch.zeros(len(entries), longest, hidden, dtype=entries[0]["inputs_embeds"].dtype)
    mask = torch.zeros(len(entries), longest, dtype=torch.long)
    has_positions = "position_ids" in entries[0]
    positions = None
    if has_positions:
        lead = entries[0]["position_ids"].shape[:-1]
        positions = torch.ones(*lead, len(entries), longest, dtype=entries[0]["position_ids"].dtype)
    for b, e in enumerate(entries):
        n = e["inputs_embeds"].shape[0]
        embeds[b, longest - n :] = e["inputs_embeds"]
        mask[b, longest - n :] = 1
        if has_positions:
            positions[..., b, longest - n :] = e["position_ids"]
    out = {"inputs_embeds": embeds, "attention_mask": mask}
    if has_positions:
        out["position_ids"] = positions
    return out


class TowerCache:
    """The student's frozen input embeddings per clip, on disk (one file per clip, written
    atomically, so several processes may fill it at once)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    @classmethod
    def for_student(cls, profile: Profile, student: str, condition: str) -> "TowerCache":
        from .models.registry import checkpoint_path, model_identity

        # the weights (a retrained tiny expert is another model), never the folder's path
        weights = model_identity(checkpoint_path(student, profile))
        key = key_digest({"weights": weights, "media": profile.config_hash("media", "mcq"), "version": TOWER_VERSION}, 12)
        return cls(profile.artifacts_dir / "tower_cache" / student / condition / key)

    def path(self, clip: str) -> Path:
        return self.folder / f"{clip}.pt"

    def missing(self, clips) -> list[str]:
        return [c for c in clips if not self.path(c).is_file()]

    def fill(self, adapter, rows: pd.DataFrame, condition: str, profile: Profile, progress: bool = True) -> int:
        """Compute and store the entries of `rows` not yet cached; returns how many were computed."""
        from .evaluate import ClipMedia, _batches

        todo = rows[rows["clip"].isin(self.missing(rows["clip"]))]
        if todo.empty:
            return 0
        self.folder.mkdir(parents=True, exist_ok=True)
        loader = _batches(ClipMedia(todo, condition, profile), profile.models.batch_size, min(profile.media.workers, len(todo)))
        bar = tqdm(total=len(todo), desc=f"tower cache {adapter.name}/{condition}", disable=not progress, unit="clip")
        for items in loader:
            bad = [item for item in items if item.error]
            if bad:  # the training table holds only clips that the evaluation answered
                raise RuntimeError(f"cannot decode a clip of the distillation set: {bad[0].error}")
            batch = adapter.inputs([item.sample for item in items], condition)
            captured = capture_embeddings(adapter.model, batch, adapter.forward_kwargs(condition))
            for clip, entry in split_rows(captured, [item.row["clip"] for item in items]).items():
                save_torch_atomically(entry, self.path(clip))
            bar.update(len(items))
        bar.close()
        return len(todo)

    def load(self, clips: list[str]) -> dict[str, torch.Tensor]:
        return collate_embeddings([torch.load(self.path(c), weights_only=True) for c in clips])


class CachedStudent(nn.Module):
    """The student's language model on cached input embeddings: logits at the last position."""

    def __init__(self, model):
        super().__init__()
        self.model = model  # the PEFT-wrapped model (its LoRA layers sit inside the decoder)

    def forward(self, inputs_embeds, attention_mask, position_ids=None):
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        hidden = base.get_decoder()(
            inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
        ).last_hidden_state
        return base.get_output_embeddings()(hidden[:, -1, :])


class FullStudent(nn.Module):
    """The whole student (towers recomputed): logits at the last position."""

    def __init__(self, model, forward_kwargs: dict):
        super().__init__()
        self.model = model
        self.forward_kwargs = forward_kwargs

    def forward(self, **batch):
        return last_position_logits(self.model, batch, keep=1, **self.forward_kwargs, use_cache=False)[:, -1]
