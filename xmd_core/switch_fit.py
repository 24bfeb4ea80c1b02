"""The switch's and the tagger's training loop: Adam with the paper's schedule (linear warm-up,
then cosine decay to zero), binary cross-entropy on one logit for the switch (optionally with each
label weighing half: `label_weights`) or cross-entropy over the classes for the tagger."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .cnn14 import Cnn14
from .switch_audio import Features


def make_schedule(optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float):
    """The paper's schedule: linear warm-up over `warmup_fraction` of the steps, then a cosine
    decay to zero (Hugging Face's `get_cosine_schedule_with_warmup`)."""
    from transformers import get_cosine_schedule_with_warmup

    return get_cosine_schedule_with_warmup(optimizer, round(warmup_fraction * total_steps), total_steps)


def label_weights(target: torch.Tensor) -> torch.Tensor:
    """Per-label loss weights that make each binary label weigh as much in total as the other:
    n / (2 n_label), so a label held by a quarter of the clips weighs 2 and the other 2/3.
    A label no clip holds gets n / 2; it weighs nothing, since no clip is weighted by it."""
    counts = torch.bincount(target.long(), minlength=2).float()
    return counts.sum() / (2 * counts.clamp(min=1))


def loss_and_hits(kind: str, logits: torch.Tensor, target: torch.Tensor,
                  weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    if kind == "binary":
        logit = logits[:, 0]
        per_clip = None if weights is None else weights[target]
        loss = F.binary_cross_entropy_with_logits(logit, target.float(), weight=per_clip)
        return loss, ((logit >= 0).long() == target).sum()
    return F.cross_entropy(logits, target, weight=weights), (logits.argmax(dim=1) == target).sum()


@torch.no_grad()
def predict_logits(model: Cnn14, features: Features, batch_size: int = 64, progress: bool = False, desc: str = "predict") -> torch.Tensor:
    """The output layer's logits for every clip of `features`, in eval mode (CPU tensor)."""
    model.eval()
    out = []
    for s in tqdm(range(0, len(features), batch_size), desc=desc, unit="batch", disable=not progress, leave=False):
        out.append(model.forward_logmel(features.get(np.arange(s, min(s + batch_size, len(features)))))["logits"].cpu())
    return torch.cat(out) if out else torch.empty(0, model.config["classes_num"])


def accuracy(kind: str, logits: torch.Tensor, target: torch.Tensor) -> float:
    if len(target) == 0:
        return float("nan")
    hits = (logits[:, 0] >= 0).long() == target if kind == "binary" else logits.argmax(dim=1) == target  # p >= 0.5
    return float(hits.float().mean())


def fit(
    model: Cnn14,
    train: Features,
    target: torch.Tensor,
    kind: str,
    epochs: int,
    batch_size: int,
    lr: float,
    warmup_fraction: float,
    seed: int,
    val: tuple[Features, torch.Tensor] | None = None,
    progress: bool = True,
    desc: str = "train",
    balanced: bool = False,
) -> list[dict]:
    """Train every trainable parameter with Adam and the cosine-with-warm-up schedule; returns
    one record per epoch (epoch, train_loss, train_acc in train mode, val_acc, lr at its end).
    `balanced` weighs each label by its inverse frequency in `target` (`label_weights`)."""
    device = next(model.parameters()).device
    target = target.to(device)
    if balanced and kind != "binary":
        raise ValueError(f"balanced applies to the binary switch, not to {kind!r} training")
    weights = label_weights(target).to(device) if balanced else None
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    steps_per_epoch = math.ceil(len(train) / batch_size)
    schedule = make_schedule(optimizer, epochs * steps_per_epoch, warmup_fraction)
    order_rng = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # dropout
    history = []
    bar = tqdm(total=epochs * steps_per_epoch, desc=desc, unit="step", disable=not progress, leave=False)
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(train), generator=order_rng).numpy()
        total_loss, hits = 0.0, 0
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            logits = model.forward_logmel(train.get(idx))["logits"]
            loss, batch_hits = loss_and_hits(kind, logits, target[torch.as_tensor(idx, device=device)], weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += loss.item() * len(idx)
            hits += int(batch_hits)
            bar.update(1)
        record = {"epoch": epoch, "train_loss": total_loss / len(train), "train_acc": hits / len(train), "val_acc": float("nan"),
                  "lr": schedule.get_last_lr()[0]}
        if val is not None and len(val[0]):
            record["val_acc"] = accuracy(kind, predict_logits(model, val[0], batch_size), val[1])
        bar.set_postfix(loss=f"{record['train_loss']:.3f}", val=f"{record['val_acc']:.3f}")
        history.append(record)
    bar.close()
    return history


def pick_device(device: str | None) -> torch.device:
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
