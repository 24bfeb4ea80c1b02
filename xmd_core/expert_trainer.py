"""The trainer of the tiny experts (`ExpertTrainer`): batches of fresh questions, the recipe's
losses, held-out evaluation, the learning-rate schedule and the restarts of a run left on the
plateau. The recipe and why it looks as it does: `experts`' module docstring; its pure tensor
pieces: `expert_recipe`; storage and the API: `experts`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from .config import Profile
from .mcq import LETTERS
from .models.adapters import last_position_logits
from .models.registry import REGISTRY, TINY_FAMILY
from .models.tiny import FAMILY_TOKENS
from .expert_recipe import (
    alignment_loss,
    circuit_forward,
    circuit_loss,
    circuit_rows,
    init_expert_weights,
    language_model,
)
from .expert_context import KNOWLEDGE_WEIGHT, TARGET_COLUMN, VENUE_WEIGHT, VenueHeads, knowledge_targets, venue_indices
from .expert_data import Batch, Encoded, ExpertData, QuestionSampler, append_token, collate, encode, for_model, informative, load_media
from .supervised_attention import use_row_attention

#: Held-out accuracy on informative clips above which a run has left the plateau (chance: 0.1).
ESCAPE_ACCURACY = 0.3
#: Phase 2 starts at this fraction of the peak learning rate and decays (cosine) to zero.
MIX_LR_FRACTION = 0.25
#: Phase 1's cosine decays to this fraction of the peak learning rate.
FINAL_LR_FRACTION = 0.05
GRAD_CLIP = 1.0
#: Weight of the attention supervision of the retrieval circuit (see :func:`circuit_loss`).
ATTENTION_WEIGHT = 1.0
#: Target of the answer on clips without signal under the condition (phase 2): "uniform" over the
#: options' letters, or "truth" (the answer letter). With "truth" the experts learn the world's
#: base rates instead of answering at chance: an inaudible clip is most likely of a mostly-seen
#: class, an invisible one of a mostly-heard class (measured: the audio expert then answered 42%
#: of inaudible mostly-seen clips right, the visual expert 31% of invisible mostly-heard ones).
UNINFORMATIVE_TARGET = "uniform"
#: How the attention supervision gets its probabilities: "rows" (fused attention, the watched rows
#: computed again: `supervised_attention`) or "eager" (every layer's full probabilities; the
#: reference that `make bench` and the tests compare against).
ATTENTION_KERNELS = ("rows", "eager")
EVAL_BATCH = 64

GROUPS = ("heard", "seen", "both")
LOSS_PARTS = ("answer", "end", "align", "attention", "venue", "knowledge")

CURVE_COLUMNS = [
    "attempt",
    "seed",
    "phase",
    "step",
    "condition",
    "loss",
    "end_loss",
    "align_loss",
    "attention_loss",
    "venue_loss",
    "knowledge_loss",
    "lr",
    "heldout_acc",
    "heldout_acc_informative",
    "heldout_acc_uninformative",
    "heldout_acc_heard",
    "heldout_acc_seen",
    "heldout_acc_both",
    "entropy_uninformative",
]



class _MediaTokens:
    """Captures the embeddings the language model receives (media tokens already merged in)."""

    def __init__(self, decoder: nn.Module):
        self.embeds: torch.Tensor | None = None
        self.handle = decoder.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs):
        self.embeds = kwargs.get("inputs_embeds")
        if self.embeds is None:
            raise RuntimeError("the language model was called without inputs_embeds")

    def close(self):
        self.handle.remove()


class ExpertTrainer:
    def __init__(self, name: str, profile: Profile, data: ExpertData, checkpoint_dir: Path, progress: bool, attention: str = "rows"):
        import transformers

        if attention not in ATTENTION_KERNELS:
            raise ValueError(f"attention must be one of {ATTENTION_KERNELS}, not {attention!r}")
        self.attention = attention
        self.bar_position: int | None = None  # a line of its own when experts train side by side
        self.name = name
        self.profile = profile
        self.cfg = profile.experts
        self.data = data = for_model(data, tuple(REGISTRY[name].conditions))
        self.progress = progress
        self.spec = REGISTRY[name]
        self.family = TINY_FAMILY[name]
        self.conditions = tuple(self.spec.conditions)
        self.checkpoint_dir = checkpoint_dir
        self.model_class = getattr(transformers, self.spec.adapter.model_class)
        processor = transformers.AutoProcessor.from_pretrained(checkpoint_dir)
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.pad_id = self.tokenizer.pad_token_id
        self.class_ids = torch.tensor([self._single_token(n) for n in data.class_names])
        self.class_index = {n: i for i, n in enumerate(data.class_names)}
        self.token_of = dict(zip(data.class_names, self.class_ids.tolist()))
        self.letter_ids = torch.tensor([self._single_token(letter) for letter in LETTERS])
        self.end_id = self.tokenizer.convert_tokens_to_ids("<|im_end|>")
        table = data.table
        self.labels = table.label.tolist()
        self.targets = torch.tensor([self.class_index[label] for label in self.labels])
        self.answer_index = table.answer_index.to_numpy(int)
        self.n_options = len(table.options.iloc[0])
        self.sampler = QuestionSampler(data.class_counts, self.n_options)
        tokens = FAMILY_TOKENS[self.family]
        self.media_tokens = {"audio": [self.tokenizer.convert_tokens_to_ids(tokens["audio_token"])] if "audio_token" in tokens else []}
        self.media_tokens["visual"] = [self.tokenizer.convert_tokens_to_ids(tokens[k]) for k in ("video_token", "image_token") if k in tokens]
        self.audible = torch.tensor(table.audible.to_numpy(bool))
        self.visible = torch.tensor(table.visible.to_numpy(bool))
        self.venues = {kind: venue_indices(table[column]) for kind, column in TARGET_COLUMN.items() if self.media_tokens[kind]}
        self.knowledge = knowledge_targets(profile.world, data.class_names, data.class_counts)
        # one adapter (with the untrained model) only to run the processor: encoding is model-free
        adapter = self.spec.adapter(name, self.model_class.from_pretrained(checkpoint_dir), processor, self.conditions)
        needs_audio = any("audio" in adapter.media_kinds(c) for c in self.conditions)
        needs_frames = any("video" in adapter.media_kinds(c) for c in self.conditions)
        samples = load_media(data, profile, needs_audio, needs_frames, progress)
        option_ids = [[self.token_of[o] for o in options] for options in table.options]
        self.encoded: dict[str, Encoded] = {c: encode(adapter, samples, c, option_ids, progress) for c in self.conditions}
        self.forward_kwargs = {c: adapter.forward_kwargs(c) for c in self.conditions}
        self.heldout = data.heldout
        self.informative = {c: informative(table, c) for c in self.conditions}

    def _single_token(self, text: str) -> int:
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        if len(ids) != 1:
            raise ValueError(f"{text!r} is {len(ids)} tokens for the tiny tokenizer of {self.name}; it must be one")
        return ids[0]

    # -- one batch ----------------------------------------------------------------------------
    def batch(self, condition: str, rows: np.ndarray, rng: np.random.Generator | None) -> "Batch":
        """Collated inputs for `rows`; with `rng`, each clip gets a fresh question."""
        encoded = self.encoded[condition]
        items, answers = [], []
        for row in rows:
            item = encoded.items[row]
            if rng is None:
                answers.append(int(self.answer_index[row]))
            else:
                options, answer = self.sampler.draw(self.labels[row], rng)
                ids = item["input_ids"].clone()
                ids[torch.from_numpy(encoded.option_positions[row])] = torch.tensor([self.token_of[o] for o in options])
                item = {**item, "input_ids": ids}
                answers.append(answer)
            items.append(item)
        inputs = collate(items, self.pad_id)
        length = inputs["input_ids"].shape[1]
        shift = torch.tensor([length - item["input_ids"].shape[0] for item in items])[:, None]  # left padding
        return Batch(
            inputs=inputs,
            rows=np.asarray(rows),
            answers=torch.tensor(answers),
            names=torch.from_numpy(encoded.option_positions[rows]) + shift,
            letters=torch.from_numpy(encoded.letter_positions[rows]) + shift,
        )

    def kind_masks(self, input_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """Positions of each kind of media token ("audio", "visual") that the model has."""
        return {kind: torch.isin(input_ids, torch.tensor(ids)) for kind, ids in self.media_tokens.items() if ids}

    def media_masks(self, kinds: dict[str, torch.Tensor], rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(positions of all media tokens, positions of the media tokens that carry the class)."""
        rows_t = torch.from_numpy(np.asarray(rows))
        carries = {"audio": self.audible[rows_t], "visual": self.visible[rows_t]}
        media = torch.zeros(next(iter(kinds.values())).shape, dtype=torch.bool)
        carrying = torch.zeros_like(media)
        for kind, here in kinds.items():
            media |= here
            carrying |= here & carries[kind][:, None]
        return media, carrying

    def losses(self, model, embeddings: nn.Embedding, capture: "_MediaTokens", batch: "Batch", condition: str, heads: VenueHeads) -> dict[str, torch.Tensor]:
        """The answer's cross-entropy, the end of the turn after it, and the recipe's auxiliary
        losses (alignment, attention, venue) for one batch. On clips without signal under the condition (phase 2 only: phase 1
        samples informative clips) the answer's target is uniform over the options' letters.

        The answer letter is appended to each row (teacher forcing): the position before it
        must predict the letter, the letter must predict `<|im_end|>`, so that greedy generation
        answers with the letter alone. The appended token is after every other, so (causal
        attention) the letter's prediction is exactly the one made without it.
        """
        letters = self.letter_ids[batch.answers]
        inputs = append_token(batch.inputs, letters)
        rows = circuit_rows(batch.names, inputs["input_ids"].shape[1] - 2)
        logits, first, last = circuit_forward(model, inputs, self.forward_kwargs[condition], rows, self.attention)
        log_probs = logits[:, -2].log_softmax(-1)
        truth = -log_probs.gather(1, letters[:, None])[:, 0]
        # no signal under this condition: every option's letter alike (UNINFORMATIVE_TARGET)
        uniform = -log_probs[:, self.letter_ids[: self.n_options]].mean(-1)
        blind = torch.from_numpy(~self.informative[condition][batch.rows])
        answer = torch.where(blind, uniform, truth).mean() if UNINFORMATIVE_TARGET == "uniform" else truth.mean()
        end = nn.functional.cross_entropy(logits[:, -1], torch.full_like(letters, self.end_id))
        kinds = self.kind_masks(inputs["input_ids"])
        media, carrying = self.media_masks(kinds, batch.rows)
        classes = self.targets[torch.from_numpy(batch.rows)]
        per_token = classes[:, None].expand_as(carrying)[carrying]
        align = alignment_loss(capture.embeds[carrying].float(), embeddings.weight[self.class_ids].float(), per_token)
        informative_rows = carrying.any(dim=1)
        attention = circuit_loss(first, last, batch.names, batch.letters, batch.answers, media, informative_rows)
        rows_t = torch.from_numpy(batch.rows)
        venue = heads.loss(capture.embeds, kinds, {kind: target[rows_t] for kind, target in self.venues.items()})
        knowledge = heads.knowledge_loss(embeddings.weight[self.class_ids], self.knowledge)
        return {"answer": answer, "end": end, "align": align, "attention": attention, "venue": venue, "knowledge": knowledge}

    # -- evaluation ---------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, model) -> dict[str, dict[str, float]]:
        model.eval()
        table = self.data.table.iloc[self.heldout]
        out = {}
        for condition in self.conditions:
            letters = []
            for start in range(0, len(self.heldout), EVAL_BATCH):
                rows = self.heldout[start : start + EVAL_BATCH]
                batch = self.batch(condition, rows, None)
                logits = last_position_logits(model, batch.inputs, keep=1, **self.forward_kwargs[condition], use_cache=False)[:, -1]
                letters.append(logits[:, self.letter_ids[: self.n_options]].float())
            letters = torch.cat(letters)
            correct = (letters.argmax(-1).numpy() == table.answer_index.to_numpy())
            probs = letters.softmax(-1)
            entropy = -(probs * probs.clamp_min(1e-12).log()).sum(-1).numpy()
            info = self.informative[condition][self.heldout]
            groups = table.group.to_numpy()
            out[condition] = {
                "heldout_acc": float(correct.mean()),
                "heldout_acc_informative": _mean(correct[info]),
                "heldout_acc_uninformative": _mean(correct[~info]),
                **{f"heldout_acc_{g}": _mean(correct[groups == g]) for g in GROUPS},
                "entropy_uninformative": _mean(entropy[~info]),
                "entropy_informative": _mean(entropy[info]),
                "n_informative": int(info.sum()),
                "n_uninformative": int((~info).sum()),
            }
        model.train()
        return out

    @torch.no_grad()
    def check_generation(self, model, clips: int = 64) -> dict[str, dict]:
        """Greedy generation on held-out clips: how often it parses to a letter, and to the letter
        that letter scoring picks (the expert should answer with the letter and end its turn)."""
        from .scoring import parse_letter

        model.eval()
        adapter = self.spec.adapter(self.name, model, self.processor, self.conditions)
        rows = self.heldout[:clips]
        out = {}
        for condition in self.conditions:
            scored, texts = [], []
            for start in range(0, len(rows), EVAL_BATCH):
                part = self.batch(condition, rows[start : start + EVAL_BATCH], None)
                logits = last_position_logits(model, part.inputs, keep=1, **self.forward_kwargs[condition], use_cache=False)[:, -1]
                scored += logits[:, self.letter_ids[: self.n_options]].argmax(-1).tolist()
                generated = model.generate(
                    **part.inputs,
                    **self.forward_kwargs[condition],
                    max_new_tokens=4,
                    do_sample=False,
                    eos_token_id=[self.end_id],
                    pad_token_id=self.pad_id,
                )
                texts += adapter.decode(generated[:, part.inputs["input_ids"].shape[1] :])
            parsed = [parse_letter(t, self.n_options) for t in texts]
            out[condition] = {
                "clips": len(texts),
                "parsed": float(np.mean([p is not None for p in parsed])),
                "agrees_with_scoring": float(np.mean([p == LETTERS[i] for p, i in zip(parsed, scored)])),
                "examples": texts[:3],
            }
        return out

    # -- one attempt --------------------------------------------------------------------------
    def new_model(self, seed: int):
        # the attention supervision needs probabilities: of a few rows ("rows"), or all ("eager")
        model = self.model_class.from_pretrained(self.checkpoint_dir, dtype=torch.float32, attn_implementation="eager")
        if self.attention == "rows":
            use_row_attention(model)
        self.natively_tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
        init_expert_weights(model, seed)
        model.train()
        return model

    def optimizer(self, model, heads: VenueHeads) -> torch.optim.AdamW:
        """AdamW over the model and the venue heads; no weight decay on biases and norms."""
        decay, no_decay = [], []
        for param in [*model.parameters(), *heads.parameters()]:
            (no_decay if param.ndim < 2 else decay).append(param)
        groups = [{"params": decay, "weight_decay": self.cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=self.cfg.lr)

    def informative_pools(self) -> dict[str, np.ndarray]:
        """Phase 1's training clips under each condition: those that carry their class."""
        train = self.data.train
        pools = {c: train[self.informative[c][train]] for c in self.conditions}
        for c, pool in pools.items():
            if len(pool) == 0:
                raise ValueError(f"{self.name}: no informative training clip under {c}")
        return pools

    def step(self, model, optimizer, parts: dict[str, torch.Tensor]) -> None:
        """One optimizer step on the weighted sum of the loss parts (gradients clipped)."""
        cfg = self.cfg
        weights = {"answer": 1.0, "end": 1.0, "align": cfg.align_weight, "attention": ATTENTION_WEIGHT, "venue": VENUE_WEIGHT, "knowledge": KNOWLEDGE_WEIGHT}
        total_loss = sum(weights[part] * parts[part] for part in LOSS_PARTS)
        optimizer.zero_grad(set_to_none=True)
        total_loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        optimizer.step()

    def run_attempt(self, attempt: int, seed: int, last: bool, curves: list[dict], bar) -> tuple[object, dict]:
        """One training run from `seed`; appends its curve rows to `curves`; returns the model and
        a summary (escaped at which step, or left on the plateau)."""
        cfg = self.cfg
        model = self.new_model(seed)
        embeddings = model.get_input_embeddings()
        capture = _MediaTokens(language_model(model))
        heads = VenueHeads(embeddings.weight.shape[1], tuple(self.venues), seed)
        optimizer = self.optimizer(model, heads)
        rng = np.random.default_rng([seed, 1])
        train = self.data.train
        pools = self.informative_pools()
        total = cfg.steps + cfg.mix_steps
        escaped_at: int | None = None
        decay_from: int | None = None  # phase-1 step at which the cosine decay starts
        sums = dict.fromkeys(LOSS_PARTS, 0.0) | {"n": 0}
        outcome = "done"
        step_seconds = []
        step = 0
        for step in range(1, total + 1):
            phase = 1 if step <= cfg.steps else 2
            lr = self.lr_at(step, decay_from)
            for group in optimizer.param_groups:
                group["lr"] = lr
            condition = self.conditions[(step - 1) % len(self.conditions)]
            pool = pools[condition] if phase == 1 else train
            rows = rng.choice(pool, size=cfg.batch_size, replace=len(pool) < cfg.batch_size)
            started = time.perf_counter()
            parts = self.losses(model, embeddings, capture, self.batch(condition, rows, rng), condition, heads)
            self.step(model, optimizer, parts)
            step_seconds.append(time.perf_counter() - started)
            for key, value in parts.items():
                sums[key] += float(value.detach())
            sums["n"] += 1
            bar.update()
            if step % cfg.eval_every == 0 or step == total or step == cfg.steps:
                figures = self.evaluate(model)
                mean = {k: sums[k] / sums["n"] for k in LOSS_PARTS}
                sums = dict.fromkeys(LOSS_PARTS, 0.0) | {"n": 0}
                at = {"attempt": attempt, "seed": seed, "phase": phase, "step": step}
                curves += [{**at, "condition": c, **{f"{k}_loss": mean[k] for k in LOSS_PARTS if k != "answer"}, "loss": mean["answer"], "lr": lr,
                            **{k: f[k] for k in CURVE_COLUMNS if k in f}} for c, f in figures.items()]
                informative_acc = min(f["heldout_acc_informative"] for f in figures.values())
                bar.set_postfix(attempt=attempt, loss=f"{mean['answer']:.3f}", acc_inf=f"{informative_acc:.2f}")
                if escaped_at is None and informative_acc >= ESCAPE_ACCURACY:
                    escaped_at = step
                    decay_from = min(step, cfg.steps)
                if phase == 1 and escaped_at is None and step >= cfg.plateau_steps and not last:
                    outcome = "plateau"
                    break
        capture.close()
        model.eval()
        summary = {
            "attempt": attempt,
            "seed": seed,
            "steps_run": step,
            "escaped_at_step": escaped_at,
            "outcome": outcome,
            "ms_per_step": round(1000 * float(np.median(step_seconds)), 1) if step_seconds else None,
        }
        return model, summary

    def lr_at(self, step: int, decay_from: int | None) -> float:
        """Warm-up, then held until the escape, then cosine to the end of phase 1; phase 2 decays
        from `MIX_LR_FRACTION` of the peak to zero. Without an escape, phase 1 decays from half-way."""
        cfg = self.cfg
        if step <= cfg.steps:
            if cfg.warmup_steps and step <= cfg.warmup_steps:
                return cfg.lr * step / cfg.warmup_steps
            start = decay_from if decay_from is not None else max(cfg.warmup_steps, cfg.steps // 2, cfg.plateau_steps)
            if step <= start or start >= cfg.steps:
                return cfg.lr
            progress = (step - start) / (cfg.steps - start)
            return cfg.lr * (FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * progress)))
        progress = (step - cfg.steps) / max(cfg.mix_steps, 1)
        return cfg.lr * MIX_LR_FRACTION * 0.5 * (1 + math.cos(math.pi * progress))

    def fit(self) -> tuple[object, pd.DataFrame, list[dict]]:
        cfg = self.cfg
        curves: list[dict] = []
        attempts = []
        model = None
        bar_options = {"desc": f"expert {self.name}", "unit": "step", "disable": not self.progress, "position": self.bar_position}
        with tqdm(total=cfg.steps + cfg.mix_steps, **bar_options) as bar:
            for attempt in range(cfg.max_restarts + 1):
                seed = cfg.seed + 1000 * attempt
                bar.reset()
                model, summary = self.run_attempt(attempt, seed, attempt == cfg.max_restarts, curves, bar)
                attempts.append(summary)
                if summary["outcome"] != "plateau":
                    break
        return model, pd.DataFrame(curves, columns=CURVE_COLUMNS), attempts


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if len(values) else float("nan")
