"""Venue heads: an auxiliary task that makes the experts' towers encode where a clip happens.

Distillation trains LoRA on the student's language model only, with the towers frozen, so a
student can learn from a teacher only what its tower already encodes. Real audio towers know
"crowd" or "reverberant room" (audio taggers label them); the tiny towers here learn it from a
linear probe on their output: the media tokens' mean embedding, as they enter the language
model, is trained with cross-entropy toward the clip's venue (the ambience heard for audio
tokens, the scene seen for visual tokens). The pre-training questions never tie a venue to a
class, and clean audio pre-training hears venues unrelated to the class, so the experts learn to
*represent* the venue, not to answer from it.

Venue knowledge: a real LLM knows from text where a lacrosse game or a kettle usually is; the
tiny language models are given that knowledge in the embeddings of the class names (each name is
one token): a linear probe on a name's embedding is trained (KL) toward the class's venue mixture,
as the world draws it (:func:`knowledge_targets`; uniform in a world without class-correlated
venues, and for names that are no class of the world's). Nothing in pre-training ties the venue
heard or seen in a clip to this knowledge, so an expert has both halves but has not learned to
put them together; a teacher's labels can teach that (one rule for every class, unseen ones too).

The heads are not part of the saved checkpoint.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import WorldConfig
from .world.context import VENUE_NAMES, venue_weights

#: Weight of the venue loss (media tokens -> the clip's venue) in the experts' total loss.
#: (0.5 in the first version-2 runs: the audio tower's venue loss fell only from 2.08 to 1.4 nats.)
VENUE_WEIGHT = 1.0
#: Weight of the venue-knowledge loss (class names' embeddings -> where the class happens).
KNOWLEDGE_WEIGHT = 1.0
#: Which venue each kind of media token is trained toward (columns of the pretrain table).
TARGET_COLUMN = {"audio": "audio_venue", "visual": "venue"}


def venue_indices(names) -> torch.Tensor:
    """Venue names as indices of `VENUE_NAMES` (an unknown name is an error that names it)."""
    index = {name: i for i, name in enumerate(VENUE_NAMES)}
    unknown = sorted(set(names) - set(index))
    if unknown:
        raise ValueError(f"unknown venue(s) {unknown[:3]} in the clip table; venues are {VENUE_NAMES}")
    return torch.tensor([index[name] for name in names])


def knowledge_targets(world: WorldConfig, names, classes) -> torch.Tensor:
    """(len(names), n_venues): where each name's class happens, P(venue | class), as `world`
    draws its clips' venues. Uniform where the world has no class-correlated venues (the
    control world) and for option names not among the world's `classes`."""
    known = venue_weights(world, sorted(set(classes)))
    table = known.reindex(list(names)).fillna(1.0 / len(VENUE_NAMES))
    return torch.tensor(table.to_numpy(), dtype=torch.float32)


class VenueHeads(nn.Module):
    """One linear probe per kind of media token ("audio", "visual") over the venues, and one on
    the class names' embeddings (the venue knowledge)."""

    def __init__(self, hidden_size: int, kinds: tuple[str, ...], seed: int):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.heads = nn.ModuleDict({kind: nn.Linear(hidden_size, len(VENUE_NAMES)) for kind in kinds})
        self.knowledge = nn.Linear(hidden_size, len(VENUE_NAMES))
        for head in [*self.heads.values(), self.knowledge]:
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

    def knowledge_loss(self, name_embeds: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """KL(targets || the probe's venue distribution), mean over the names. `name_embeds`:
        (N, hidden) embeddings of the class-name tokens; `targets`: (N, n_venues)."""
        log_probs = self.knowledge(name_embeds.float()).log_softmax(-1)
        return nn.functional.kl_div(log_probs, targets, reduction="batchmean")
