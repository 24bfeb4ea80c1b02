"""Venue heads: an auxiliary task that makes the experts' towers encode where a clip happens.

Distillation trains LoRA on the student's language model only, with the towers frozen, so a
student can learn from a teacher only what its tower already encodes. Real audio towers know
"crowd" or "reverberant room" (audio taggers label them); the tiny towers here learn it from a
linear probe on their output: the media tokens' mean embedding, as they enter the language
model, is trained with cross-entropy toward the clip's venue (the ambience heard for audio
tokens, the scene seen for visual tokens). The pre-training questions never tie a venue to a
class, and clean audio pre-training hears venues unrelated to the class, so the experts learn to
*represent* the venue, not to answer from it. The heads are not part of the saved checkpoint.
"""

from __future__ import annotations

import torch
from torch import nn

from .world.context import VENUE_NAMES

#: Weight of the venue loss in the experts' total loss.
VENUE_WEIGHT = 0.5
#: Which venue each kind of media token is trained toward (columns of the pretrain table).
TARGET_COLUMN = {"audio": "audio_venue", "visual": "venue"}


def venue_indices(names) -> torch.Tensor:
    """Venue names as indices of `VENUE_NAMES` (an unknown name is an error that names it)."""
    index = {name: i for i, name in enumerate(VENUE_NAMES)}
    unknown = sorted(set(names) - set(index))
    if unknown:
        raise ValueError(f"unknown venue(s) {unknown[:3]} in the clip table; venues are {VENUE_NAMES}")
    return torch.tensor([index[name] for name in names])


class VenueHeads(nn.Module):
    """One linear probe per kind of media token ("audio", "visual") over the venues."""

    def __init__(self, hidden_size: int, kinds: tuple[str, ...], seed: int):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.heads = nn.ModuleDict({kind: nn.Linear(hidden_size, len(VENUE_NAMES)) for kind in kinds})
        for head in self.heads.values():
            nn.init.normal_(head.weight, std=hidden_size**-0.5, generator=generator)
            nn.init.zeros_(head.bias)

    def loss(self, embeds: torch.Tensor, masks: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean cross-entropy over the kinds present in the batch. `masks[kind]`: (B, T) positions
        of that kind's tokens; `targets[kind]`: (B,) venue indices. Rows without such tokens
        (another condition) are left out."""
        parts = []
        for kind, head in self.heads.items():
            mask = masks[kind]
            rows = mask.any(dim=1)
            if not rows.any():
                continue
            weights = mask[rows].unsqueeze(-1).to(embeds.dtype)
            mean = (embeds[rows] * weights).sum(1) / weights.sum(1)
            parts.append(nn.functional.cross_entropy(head(mean.float()), targets[kind][rows]))
        return torch.stack(parts).mean() if parts else embeds.new_zeros(())
