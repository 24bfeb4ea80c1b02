"""The pieces of the tiny experts' training recipe (`experts` has the recipe and the trainer):
the initialisation, the tied output head, the alignment loss, and the attention supervision of
the two-layer retrieval circuit with the forward pass that feeds it.

The supervision reads 11 query rows (the option names and the answer position) of the first and
the last layer's attention probabilities. :func:`circuit_forward` gets them from
`supervised_attention` beside fused attention, or (`attention="eager"`, the reference that the
tests and `make bench` compare against) from every layer's full probabilities.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .models.adapters import last_position_logits
from .supervised_attention import IMPLEMENTATION as ROWS_IMPLEMENTATION
from .supervised_attention import watch_rows


def init_expert_weights(model: nn.Module, seed: int) -> None:
    """The recipe's initialisation, in place.

    Linear and conv weights ~ N(0, 1/sqrt(fan_in)) (std 1/sqrt(fan_in)), the language model's
    token embeddings ~ N(0, 1) (the tied output head follows), and in each attention layer of the
    language model `k_proj` = `q_proj` (weight and bias), so that at the start a token attends to
    tokens that resemble it. Biases, norms and position tables keep their values.
    """
    generator = torch.Generator().manual_seed(seed)
    tie_output_head(model)
    embeddings = model.get_input_embeddings()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                if module.weight is embeddings.weight:
                    continue  # the tied output head is the embedding table
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) / math.sqrt(fan_in))
        embeddings.weight.copy_(torch.randn(embeddings.weight.shape, generator=generator))
        tie_keys_to_queries(language_model(model))
    head = model.get_output_embeddings()
    if head is not None and head.weight is not embeddings.weight:
        raise RuntimeError(f"{type(model).__name__}: the output head is not tied to the token embeddings")


def tie_output_head(model: nn.Module) -> bool:
    """Make the output head share the token embeddings' parameter; True when it already did.

    Qwen2-Audio's class declares no tied weights, so it loads with a separate head even from a
    tiny config that asks for tied embeddings: the trainer ties them itself, and
    :func:`untie_for_saving` then writes both (equal) tables.
    """
    head, embeddings = model.get_output_embeddings(), model.get_input_embeddings()
    if head.weight is embeddings.weight:
        return True
    head.weight = embeddings.weight
    return False


def untie_for_saving(model: nn.Module, natively_tied: bool) -> None:
    """Give a head tied by :func:`tie_output_head` its own copy, so `save_pretrained` writes it
    (equal to the embeddings) and `from_pretrained` loads the same model."""
    if not natively_tied:
        head = model.get_output_embeddings()
        head.weight = nn.Parameter(model.get_input_embeddings().weight.detach().clone())


def tie_keys_to_queries(decoder: nn.Module) -> int:
    """Copy `q_proj` into `k_proj` in every attention layer of `decoder`; returns the count."""
    count = 0
    with torch.no_grad():
        for module in decoder.modules():
            q, k = getattr(module, "q_proj", None), getattr(module, "k_proj", None)
            if isinstance(q, nn.Linear) and isinstance(k, nn.Linear):
                if q.weight.shape != k.weight.shape:
                    raise ValueError(f"k_proj {tuple(k.weight.shape)} cannot start equal to q_proj {tuple(q.weight.shape)}")
                k.weight.copy_(q.weight)
                if (q.bias is None) != (k.bias is None):
                    raise ValueError("q_proj and k_proj differ in having a bias")
                if q.bias is not None:
                    k.bias.copy_(q.bias)
                count += 1
    if count == 0:
        raise ValueError(f"{type(decoder).__name__} has no attention layer with q_proj and k_proj")
    return count


def language_model(model: nn.Module) -> nn.Module:
    """The decoder inside a multimodal model (it receives the merged media and text embeddings)."""
    inner = getattr(model, "model", None)
    decoder = getattr(inner, "language_model", None)
    if decoder is None:
        raise ValueError(f"{type(model).__name__} has no model.language_model")
    return decoder


def alignment_loss(media: torch.Tensor, class_embeddings: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of media tokens toward their class, scored by dot products with the
    class-name embeddings.

    media: (N, H) media tokens as the language model receives them; class_embeddings: (C, H);
    target: (N,) class index of each token. Returns the mean over tokens (0 when N is 0).
    """
    if media.shape[0] == 0:
        return media.sum() * 0.0
    return nn.functional.cross_entropy(media @ class_embeddings.T, target)


def circuit_rows(names: torch.Tensor, query: int) -> torch.Tensor:
    """(B, n + 1) query rows the attention supervision reads: each option's name, then `query`."""
    return torch.cat([names, torch.full_like(names[:, :1], query)], dim=1)


def take_rows(attention: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Rows `rows` ((B, R)) of full attention probabilities (B, heads, L, L): (B, heads, R, L)."""
    batch, heads, _, length = attention.shape
    return attention.gather(2, rows[:, None, :, None].expand(batch, heads, rows.shape[1], length))


def circuit_loss(
    first: torch.Tensor,
    last: torch.Tensor,
    names: torch.Tensor,
    letters: torch.Tensor,
    answers: torch.Tensor,
    media: torch.Tensor,
    informative_rows: torch.Tensor,
) -> torch.Tensor:
    """Attention supervision of the retrieval circuit (a training aid, like the alignment loss).

    `first` and `last` are the first and the last layer's attention probabilities at the rows of
    :func:`circuit_rows` ((B, heads, n + 1, L): the n option names, then the answer position).
    They are pulled toward the circuit that answers a multiple-choice question in two layers:

    - first layer, head 0: each option's name attends to its own letter (`letters`, (B, n));
    - first layer, last head: the answer position attends to the media tokens (`media`, (B, L));
    - last layer, mean over heads: the answer position attends to the answer's name, in rows whose
      media carry the class (`informative_rows`, (B,)).

    Each term is -log of the probability mass on its targets; the loss is their sum.
    """
    if first.shape[1] < 2:
        raise ValueError("attention supervision needs at least two heads in the first layer")
    n = names.shape[1]
    to_letter = first[:, 0, :n].gather(-1, letters[..., None])[..., 0]  # (B, n)
    terms = [-(to_letter.clamp_min(1e-9).log()).mean()]
    if media.any():
        to_media = (first[:, -1, n, :] * media).sum(-1)
        has_media = media.any(dim=1)
        terms.append(-(to_media[has_media].clamp_min(1e-9).log()).mean())
    if informative_rows.any():
        answer_name = names[torch.arange(names.shape[0]), answers]
        to_answer = last[:, :, n, :].mean(1).gather(-1, answer_name[:, None])[:, 0]
        terms.append(-(to_answer[informative_rows].clamp_min(1e-9).log()).mean())
    return torch.stack(terms).sum()


def attention_loss(
    attentions: tuple[torch.Tensor, ...],
    names: torch.Tensor,
    letters: torch.Tensor,
    answers: torch.Tensor,
    media: torch.Tensor,
    informative_rows: torch.Tensor,
    query: int = -1,
) -> torch.Tensor:
    """:func:`circuit_loss` from every layer's full attention probabilities ((B, heads, L, L)
    each, as `output_attentions=True` returns them); "the answer position" is `query` (-2 when
    the answer letter is appended after it)."""
    first, last = attentions[0], attentions[-1]
    rows = circuit_rows(names, first.shape[-1] + query if query < 0 else query)
    return circuit_loss(take_rows(first, rows), take_rows(last, rows), names, letters, answers, media, informative_rows)


def circuit_forward(model, inputs: dict, forward_kwargs: dict, rows: torch.Tensor, attention: str = "rows") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A training forward pass: the logits of the last two positions, and the first and last
    layer's attention probabilities at `rows` ((B, heads, R, L) each).

    `attention="rows"` (the model loaded with :func:`use_row_attention`): fused attention in every
    layer, only the watched rows' probabilities computed, the output head on the last two
    positions only. `"eager"` (the model loaded with eager attention) is the reference: every
    layer's full probabilities, and the model's own head (Qwen2-Audio's ignores
    `logits_to_keep` and projects every position).
    """
    kwargs = {**forward_kwargs, "use_cache": False}
    if attention == "eager":
        out = model(**inputs, **kwargs, logits_to_keep=2, output_attentions=True)
        first, last = (take_rows(a, rows) for a in (out.attentions[0], out.attentions[-1]))
        return out.logits[:, -2:].float(), first, last
    layers = (0, len(language_model(model).layers) - 1)
    with watch_rows(rows, inputs["attention_mask"], layers) as watch:
        logits = last_position_logits(model, inputs, keep=2, **kwargs)
    if set(watch.probs) != set(layers):
        raise RuntimeError(f"{type(model).__name__}: the language model's attention is not {ROWS_IMPLEMENTATION!r} (use_row_attention)")
    return logits.float(), watch.probs[layers[0]], watch.probs[layers[1]]
