"""Answering a question: letter scoring (one forward pass, the next-token logits of A-J) and,
for comparison, free generation followed by parsing a letter (as lmms-eval does)."""

from __future__ import annotations

import re

import numpy as np
import torch

from .mcq import LETTERS
from .models.adapters import Adapter, Sample


@torch.inference_mode()
def score_letters(adapter: Adapter, samples: list[Sample], condition: str) -> np.ndarray:
    """(B, 10) float32 logits of the letters A-J at the answer position, one forward pass.

    All ten are kept (not only the options' argmax): the distillation KL needs them.
    """
    batch = adapter.inputs(samples, condition)
    logits = adapter.next_token_logits(batch, condition)
    return logits[:, adapter.letter_ids.to(logits.device)].float().cpu().numpy()


def predicted_letters(letter_logits: np.ndarray, n_options: int = 10) -> list[str]:
    """The argmax letter among the first `n_options` letters of each row."""
    return [LETTERS[i] for i in np.asarray(letter_logits)[:, :n_options].argmax(axis=1)]


@torch.inference_mode()
def generate_answers(adapter: Adapter, samples: list[Sample], condition: str, max_new_tokens: int = 32) -> list[str]:
    """Greedy generation up to `max_new_tokens`, stopping at the end of the turn; decoded text."""
    batch = adapter.inputs(samples, condition)
    tokenizer = adapter.processor.tokenizer
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    out = adapter.model.generate(
        **batch,
        **adapter.forward_kwargs(condition),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        eos_token_id=[end_of_turn, tokenizer.eos_token_id],
        pad_token_id=tokenizer.pad_token_id,
    )
    return adapter.decode(out[:, batch["input_ids"].shape[1] :])


_LETTER_PATTERNS = (
    re.compile(r"^\s*\(?([A-J])\)?(?:[.):\s]|$)"),  # "A", "A.", "(A)", "A) piano"
    re.compile(r"answer(?: is)?[:\s]*\(?([A-J])\b"),  # "The answer is A"
    re.compile(r"\b([A-J])\b"),  # a lone capital letter anywhere
)


def parse_letter(text: str, n_options: int = 10) -> str | None:
    """The letter a free-form answer chose, or None when it names none of A.. (unparseable)."""
    allowed = LETTERS[:n_options]
    for pattern in _LETTER_PATTERNS:
        match = pattern.search(text)
        if match and match.group(1) in allowed:
            return match.group(1)
    return None
