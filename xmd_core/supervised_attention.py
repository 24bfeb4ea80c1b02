"""Attention probabilities of a few query rows, alongside fused attention (expert training only).

The tiny experts' attention supervision (:func:`xmd_core.expert_recipe.circuit_loss`) needs the
language model's attention probabilities at 11 query positions per clip (the ten option names
and the answer position), in the first and the last layer. Asking `transformers` for them with
`output_attentions=True` forces the eager kernel, which materialises every layer's full
(B, heads, L, L) probabilities and their gradients: about a fifth of a training step of the tiny
Qwen2-Audio (profile in the book's reproducibility appendix).

This module registers one more attention implementation, ``"xmd_rows"``, with `transformers`'
`AttentionInterface`: the layer's output comes from `torch`'s fused
`scaled_dot_product_attention` (the `"sdpa"` implementation, unchanged), and, while a
:func:`watch_rows` block is open, the probabilities of the watched rows are computed again from
the same queries and keys and kept for the loss. The math is the eager kernel's, so losses and
gradients equal those of the full probabilities (`tests/test_experts.py` checks both against
`attn_implementation="eager"`).
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface, sdpa_mask

IMPLEMENTATION = "xmd_rows"


@dataclass
class RowWatch:
    """Which query rows to keep, and the probabilities kept so far (layer index -> tensor)."""

    rows: torch.Tensor  # (B, R) query positions in the padded batch
    padding: torch.Tensor  # (B, L) the batch's attention mask (1: a real token)
    layers: tuple[int, ...]  # the layer indices to keep
    probs: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> (B, heads, R, L)


_WATCH: ContextVar[RowWatch | None] = ContextVar("xmd_row_watch", default=None)


def row_probabilities(query: torch.Tensor, key: torch.Tensor, scaling: float, rows: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
    """Causal attention probabilities of the query rows `rows` over every key, (B, heads, R, L).

    query, key: (B, heads, L, D) after rotary embedding (keys repeated to the query heads);
    padding: (B, L). A row attends to the real tokens at or before it, as the eager kernel does.
    """
    batch, heads, length, dim = query.shape
    picked = query.gather(2, rows[:, None, :, None].expand(batch, heads, rows.shape[1], dim))
    scores = picked @ key.transpose(-1, -2) * scaling  # (B, heads, R, L)
    positions = torch.arange(length, device=query.device)
    allowed = (positions[None, None, :] <= rows[:, :, None]) & padding.bool()[:, None, :]  # (B, R, L)
    scores = scores.masked_fill(~allowed[:, None], torch.finfo(scores.dtype).min)
    return scores.softmax(dim=-1, dtype=torch.float32).to(query.dtype)


def rows_attention_forward(module, query, key, value, attention_mask, scaling=None, **kwargs):
    """The `"sdpa"` output; with a watch open, the watched rows' probabilities are kept too."""
    output, _ = sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, **kwargs)
    watch = _WATCH.get()
    layer = getattr(module, "layer_idx", None)
    if watch is not None and layer in watch.layers:
        keys = repeat_kv(key, getattr(module, "num_key_value_groups", 1))
        scale = scaling if scaling is not None else query.shape[-1] ** -0.5
        watch.probs[layer] = row_probabilities(query, keys, scale, watch.rows, watch.padding)
    return output, None


AttentionInterface.register(IMPLEMENTATION, rows_attention_forward)
# the same masks as "sdpa" (registering is also what makes transformers build a mask at all)
AttentionMaskInterface.register(IMPLEMENTATION, sdpa_mask)
if IMPLEMENTATION not in ALL_MASK_ATTENTION_FUNCTIONS._global_mapping:
    raise RuntimeError(f"transformers did not register the attention mask of {IMPLEMENTATION!r}")


@contextmanager
def watch_rows(rows: torch.Tensor, padding: torch.Tensor, layers: tuple[int, ...]):
    """Keep the attention probabilities of `rows` in `layers` for forward passes in this block."""
    watch = RowWatch(rows=rows, padding=padding, layers=layers)
    token = _WATCH.set(watch)
    try:
        yield watch
    finally:
        _WATCH.reset(token)


def use_row_attention(model) -> None:
    """Fused attention everywhere, and `"xmd_rows"` in the language model (the text sub-config)."""
    model.set_attn_implementation("sdpa")
    model.set_attn_implementation({"text_config": IMPLEMENTATION})
    text = model.config.get_text_config()
    if text._attn_implementation != IMPLEMENTATION:
        raise RuntimeError(f"{type(model).__name__}: could not set the language model's attention to {IMPLEMENTATION!r}")
