"""Cross-modal distillation (Sec. 4.1, 4.3): a student learns from a teacher of the other
modality, with LoRA on the student's language model.

Teacher and student see the same clip, each in its own modality, with the same question. Where
the switch (`xmd_core.switch`) says the teacher is better, the student learns the teacher's
answer; elsewhere it learns its own (the anti-forgetting loss). No ground truth is used, except
by the upper-bound recipe.

Three things are computed once and reused by every recipe and epoch:

- the teacher's and the student's answers on the finetune split, through the evaluation path
  (`xmd_core.evaluate`: resumable shards under `results/<profile>/predictions/`);
- the switch's decision per clip (`switch.load_decisions`);
- the student's frozen towers: LoRA sits on the language model only, so everything below it
  (token embeddings, the audio or vision tower, the projector) gives the same input embeddings
  for a clip at every step. `tower_cache.TowerCache` stores them per clip on disk, and training
  runs the language model alone on them (`CachedStudent`); `FullStudent` recomputes the towers.

Data parallel under `accelerate launch`: each process takes its share of every effective batch;
gradients are averaged across processes, so the effective batch (`distill.batch_size`) and the
trained adapter do not depend on the number of processes.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from . import store
from .config import Profile
from .mcq import LETTERS
from .models.adapters import Sample
from .tower_cache import CachedStudent, FullStudent, TowerCache, capture_embeddings, collate_embeddings, split_rows  # noqa: F401 (re-exported)
from .vocabulary import ABLATION_DIRECTION, DEFAULT_RECIPE, DIRECTIONS

#: Bump when a change here changes the trained adapters: every adapter is then retrained.
DISTILL_VERSION = "1"
#: The language model's linear layers get LoRA; the towers and projectors stay frozen.
LORA_TARGETS = r".*language_model\.layers\.\d+\.(self_attn\.(q_proj|k_proj|v_proj|o_proj)|mlp\.(gate_proj|up_proj|down_proj))"
N_LETTERS = len(LETTERS)


# --- recipes and losses -------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipe:
    """What the student learns on each clip (Table 2's rows)."""

    name: str
    title: str
    target: str  # cross-entropy target where the switch is open: "teacher", "truth" (every clip) or ""
    kl: bool  # KL on the teacher's 10 letter logits at the temperature, where the switch is open
    anti_forgetting: bool  # where the switch is closed: the student's own answer


RECIPES = {
    r.name: r
    for r in (
        Recipe("teacher-labels", "teacher's labels (default)", "teacher", False, True),
        Recipe("teacher-kl", "KL on teacher's logits (T = 2)", "", True, True),
        Recipe("teacher-kl+labels", "KL on teacher's logits + labels", "teacher", True, True),
        Recipe("ground-truth", "ground-truth labels (upper bound)", "truth", False, False),
        Recipe("no-anti-forgetting", "teacher's labels without anti-forgetting loss", "teacher", False, False),
    )
}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise KeyError(f"unknown distillation recipe {name!r}; known: {', '.join(RECIPES)}")
    return RECIPES[name]


@dataclass
class Targets:
    """Per-clip targets of a batch (letter indices 0-9; `open`: the switch says teacher better)."""

    teacher_logits: torch.Tensor  # (B, 10) float
    teacher: torch.Tensor  # (B,) long
    own: torch.Tensor  # (B,) long
    truth: torch.Tensor  # (B,) long
    open: torch.Tensor  # (B,) bool

    def to(self, device) -> "Targets":
        return Targets(*(getattr(self, f).to(device) for f in ("teacher_logits", "teacher", "own", "truth", "open")))


def distillation_loss(logits: torch.Tensor, letter_ids: torch.Tensor, targets: Targets, recipe: Recipe, temperature: float) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss of one batch: the sum of every clip's terms over the batch size.

    `logits` (B, V) are the student's next-token logits at the answer position. Cross-entropy
    terms are over the whole vocabulary (the letter is the next token to produce); the KL term
    is over the 10 letter logits only (the vocabularies of the teacher and the student differ),
    scaled by T^2 as usual so its gradients keep their size across temperatures.
    """
    logits = logits.float()
    batch = logits.shape[0]
    ce = lambda letters: nn.functional.cross_entropy(logits, letter_ids[letters], reduction="none")  # noqa: E731
    zeros = logits.new_zeros(batch)
    opened = targets.open.float()
    closed = 1.0 - opened
    parts = {}
    if recipe.target == "truth":
        parts["truth"] = ce(targets.truth)
    if recipe.target == "teacher":
        parts["teacher_labels"] = ce(targets.teacher) * opened
    if recipe.kl:
        t = temperature
        student = (logits[:, letter_ids] / t).log_softmax(-1)
        teacher = (targets.teacher_logits.float() / t).log_softmax(-1)
        kl = (teacher.exp() * (teacher - student)).sum(-1) * t * t
        parts["teacher_kl"] = kl * opened
    if recipe.anti_forgetting:
        parts["anti_forgetting"] = ce(targets.own) * closed
    total = sum(parts.values(), zeros).sum() / batch
    return total, {k: float(v.detach().sum() / batch) for k, v in parts.items()}


# --- the training set ----------------------------------------------------------------------------


def own_condition(name: str) -> str:
    """The condition a model is distilled under: its own modality (the first it takes)."""
    from .models.registry import get_spec

    return get_spec(name).conditions[0]


def run_name(teacher: str, student: str, recipe: str = DEFAULT_RECIPE) -> str:
    """The predictions folder and adapter name of a distilled student."""
    base = f"{student}@from-{teacher}"
    return base if recipe == DEFAULT_RECIPE else f"{base}-{recipe}"


def finetune_clips(profile: Profile, inputs=None) -> pd.DataFrame:
    """The clips distillation trains on: the finetune split (sorted; the first `max_clips`)."""
    from .study import prepare

    inputs = inputs if inputs is not None else prepare(profile, progress=False)
    clips = inputs.split("finetune").sort_values("clip").reset_index(drop=True)
    return clips.head(profile.distill.max_clips) if profile.distill.max_clips else clips


def answers_on(profile: Profile, name: str, clips: pd.DataFrame, split: str, progress: bool = True, adapter_dir=None, run=None) -> pd.DataFrame:
    """A model's answers on `clips` under its own condition, through the evaluation path
    (stored and resumable: a second call reads them back)."""
    from .evaluate import model_answers

    return model_answers(profile, name, clips, split, own_condition(name), run=run, adapter_dir=adapter_dir, progress=progress)


def training_table(profile: Profile, teacher: str, student: str, recipe: Recipe, progress: bool = True, inputs=None) -> tuple[pd.DataFrame, dict]:
    """One row per finetune clip: the question, the teacher's letter logits and answer, the
    student's own answer, the switch's decision. Clips either model could not answer are left
    out and counted in the returned report."""
    from .checkpoints import ensure_models

    ensure_models(profile, (teacher, student), progress=progress)  # the embedded experts, trained once
    clips = finetune_clips(profile, inputs)
    taught = answers_on(profile, teacher, clips, "finetune", progress)
    own = answers_on(profile, student, clips, "finetune", progress)
    table = clips.merge(
        taught[["clip", "letter_logits", "predicted", "error"]].rename(
            columns={"letter_logits": "teacher_logits", "predicted": "teacher_letter", "error": "teacher_error"}
        ),
        on="clip",
    ).merge(own[["clip", "predicted", "error"]].rename(columns={"predicted": "own_letter", "error": "own_error"}), on="clip")
    if recipe.target == "truth":
        table["open"] = True  # the upper bound ignores the switch
    else:
        from .switch import load_decisions

        decisions = load_decisions(profile, teacher, student)
        decisions = decisions[decisions.split == "finetune"][["clip", "open"]]
        table = table.merge(decisions, on="clip", how="left")
        if table["open"].isna().any():
            raise ValueError(f"the switch {teacher}->{student} has no decision for {int(table['open'].isna().sum())} finetune clips; retrain it")
        table["open"] = table["open"].astype(bool)
    failed = (table.teacher_error != "") | (table.own_error != "")
    report = {"clips": int(len(table)), "left_out": int(failed.sum()), "left_out_examples": table.loc[failed, "clip"].head(5).tolist()}
    table = table[~failed].reset_index(drop=True)
    table["teacher"] = table.teacher_letter.map(LETTERS.index)
    table["own"] = table.own_letter.map(LETTERS.index)
    table["truth"] = table.answer.map(LETTERS.index)
    report["switch_open"] = float(table["open"].mean()) if len(table) else float("nan")
    report["teacher_agrees_with_student"] = float((table.teacher == table.own).mean()) if len(table) else float("nan")
    return table, report


def batch_targets(table: pd.DataFrame, rows: np.ndarray) -> Targets:
    part = table.iloc[rows]
    return Targets(
        teacher_logits=torch.tensor(np.stack(part.teacher_logits.to_numpy()), dtype=torch.float32),
        teacher=torch.tensor(part.teacher.to_numpy(), dtype=torch.long),
        own=torch.tensor(part.own.to_numpy(), dtype=torch.long),
        truth=torch.tensor(part.truth.to_numpy(), dtype=torch.long),
        open=torch.tensor(part["open"].to_numpy(), dtype=torch.bool),
    )


def micro_batches(n_clips: int, batch_size: int, micro_batch_size: int, processes: int, rank: int, epochs: int, seed: int):
    """The rows of every micro-batch one process computes, in order, as (step, rows).

    Every epoch is a seeded permutation cut into effective batches of `batch_size` (an
    incomplete last batch is dropped); each effective batch is cut into micro-batches of
    `micro_batch_size`, dealt to the processes in turn, so every process runs
    batch_size / (micro_batch_size x processes) micro-batches per optimizer step.
    """
    per_step = micro_batch_size * processes
    if batch_size % per_step:
        raise ValueError(
            f"the effective batch ({batch_size}) must be a multiple of micro_batch_size x processes ({micro_batch_size} x {processes})"
        )
    steps_per_epoch = n_clips // batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"{n_clips} clips make no effective batch of {batch_size}")
    rng = np.random.default_rng(seed)
    step = 0
    for _ in range(epochs):
        order = rng.permutation(n_clips)
        for s in range(steps_per_epoch):
            batch = order[s * batch_size : (s + 1) * batch_size]
            for j in range(batch_size // per_step):
                start = (j * processes + rank) * micro_batch_size
                yield step, batch[start : start + micro_batch_size]
            step += 1


def gradient_accumulation(profile: Profile, processes: int) -> int:
    cfg = profile.distill
    if cfg.batch_size % (cfg.micro_batch_size * processes):
        raise ValueError(
            f"distill.batch_size ({cfg.batch_size}) must be a multiple of micro_batch_size x processes "
            f"({cfg.micro_batch_size} x {processes})"
        )
    return cfg.batch_size // (cfg.micro_batch_size * processes)


# --- training ------------------------------------------------------------------------------------


def adapter_dir(profile: Profile, teacher: str, student: str, recipe: str = DEFAULT_RECIPE) -> Path:
    return profile.artifacts_dir / "adapters" / run_name(teacher, student, recipe)


def distill_key(profile: Profile, teacher: str, student: str, recipe: str, table_digest: str) -> dict:
    from .models.registry import checkpoint_path, model_identity

    return {
        "version": DISTILL_VERSION,
        "teacher": teacher,
        "student": student,
        "student_weights": model_identity(checkpoint_path(student, profile)),  # LoRA sits on these
        "recipe": asdict(get_recipe(recipe)),
        "distill": profile.config_hash("distill"),
        "targets": table_digest,
    }


def _digest(table: pd.DataFrame) -> str:
    """A hash of what the student is taught (clips, teacher logits, own answers, switch)."""
    h = hashlib.sha256()
    for column in ("clip", "teacher", "own", "truth", "open"):
        h.update(table[column].astype(str).str.cat(sep="|").encode())
    h.update(np.stack(table.teacher_logits.to_numpy()).astype(np.float32).round(4).tobytes())
    return h.hexdigest()[:16]


#: The record of an adapter folder, written last (`store`).
DISTILL_RECORD = "distill.json"


def is_distilled(folder: Path, key: dict) -> bool:
    return store.finished(folder, DISTILL_RECORD, key)


def distill(
    profile: Profile,
    teacher: str = "qwen2-vl",
    student: str = "qwen2-audio",
    recipe: str = DEFAULT_RECIPE,
    tower_cache: bool = True,
    progress: bool = True,
    out: Path | None = None,
    inputs=None,
) -> Path:
    """Train the student's LoRA adapter from the teacher (one epoch over the finetune split by
    default); returns its folder (`save_pretrained` files, `distill.json`, `history.csv`).

    Idempotent: an adapter trained with the same key (recipe, config, targets) is returned at
    once. Runs data parallel under `accelerate launch`. `inputs`: the study's shared tables
    (`study.StudyInputs`), built here when not given.
    """
    from accelerate import Accelerator

    from .evaluate import load_model_here, process_state

    started = time.perf_counter()
    rec = get_recipe(recipe)
    table, report = training_table(profile, teacher, student, rec, progress, inputs)
    key = distill_key(profile, teacher, student, recipe, _digest(table))
    out = Path(out) if out is not None else adapter_dir(profile, teacher, student, recipe)
    if is_distilled(out, key):
        return out

    processes = process_state().num_processes  # joins the launcher's process group, if any
    accelerator = Accelerator(gradient_accumulation_steps=gradient_accumulation(profile, processes))
    condition = own_condition(student)
    adapter = load_model_here(student, profile)  # with several processes: a whole copy per device
    cache = TowerCache.for_student(profile, student, condition) if tower_cache else None
    fill_started = time.perf_counter()
    computed = _fill_share(cache, adapter, table, condition, profile, accelerator, processes, progress)
    fill_seconds = time.perf_counter() - fill_started
    run = _Run(profile, table, rec, adapter, condition, cache, accelerator, processes)
    train_started = time.perf_counter()
    history = run.train(f"distill {run_name(teacher, student, recipe)}", progress and accelerator.is_main_process)
    train_seconds = time.perf_counter() - train_started

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:

        def save(work: Path) -> dict:
            accelerator.unwrap_model(run.module).model.save_pretrained(work)
            pd.DataFrame(history).to_csv(work / "history.csv", index=False)
            return {
                "teacher": teacher,
                "student": student,
                "recipe": asdict(rec),
                "condition": condition,
                "config": asdict(profile.distill),
                "processes": processes,
                "gradient_accumulation": gradient_accumulation(profile, processes),
                "optimizer_steps": run.steps,
                "training_set": report,
                "tower_cache": None if cache is None else {"folder": str(cache.folder), "computed_here": computed},
                "seconds": {"total": round(time.perf_counter() - started, 2), "tower_cache_fill": round(fill_seconds, 2), "training": round(train_seconds, 2)},
                "steps_per_second": round(run.steps / train_seconds, 2) if train_seconds > 0 else None,
            }

        store.publish(out, DISTILL_RECORD, key, save)
    accelerator.wait_for_everyone()
    return out


def _fill_share(cache: TowerCache | None, adapter, table: pd.DataFrame, condition: str, profile: Profile, accelerator, processes: int, progress: bool) -> int:
    """Each process fills its share of the tower cache (none without a cache); returns how many
    clips this process computed."""
    if cache is None:
        return 0
    mine = table.iloc[accelerator.process_index :: processes]
    computed = cache.fill(adapter, mine, condition, profile, progress=progress and accelerator.is_main_process)
    accelerator.wait_for_everyone()
    return computed


class _Run:
    """One distillation run: the LoRA-wrapped student, its optimizer and schedule, and the loop
    over this process's micro-batches."""

    def __init__(self, profile: Profile, table: pd.DataFrame, recipe: Recipe, adapter, condition: str, cache: TowerCache | None, accelerator, processes: int):
        from peft import LoraConfig, get_peft_model
        from transformers import get_cosine_schedule_with_warmup

        cfg = self.cfg = profile.distill
        self.profile, self.table, self.recipe, self.adapter, self.condition, self.cache = profile, table, recipe, adapter, condition, cache
        self.accelerator, self.processes = accelerator, processes
        lora = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, target_modules=LORA_TARGETS, bias="none")
        torch.manual_seed(cfg.seed)  # LoRA's initial A (here: data loaders above draw from the same generator)
        peft_model = get_peft_model(adapter.model, lora)
        peft_model.train()
        module = CachedStudent(peft_model) if cache is not None else FullStudent(peft_model, adapter.forward_kwargs(condition))
        optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=0.0)
        self.steps = (len(table) // cfg.batch_size) * cfg.epochs
        # stepped once per optimizer step by this loop (not prepared: accelerate would step it per process)
        self.scheduler = get_cosine_schedule_with_warmup(optimizer, round(cfg.warmup_fraction * self.steps), self.steps)
        self.module, self.optimizer = accelerator.prepare(module, optimizer)
        self.letter_ids = adapter.letter_ids.to(accelerator.device)
        if cache is None:
            from .media import MediaCache

            self.media = MediaCache(profile.media_cache_dir)

    def forward(self, rows: np.ndarray) -> torch.Tensor:
        """The student's letter-position logits on these rows of the training table."""
        part = self.table.iloc[rows]
        if self.cache is not None:
            batch = {k: v.to(self.accelerator.device) for k, v in self.cache.load(part["clip"].tolist()).items()}
            return self.module(**batch)
        media = self.profile.media
        samples = [Sample.decoded(self.media, media, r.clip, r.prompt, r.path, self.condition) for r in part.itertuples()]
        return self.module(**self.adapter.inputs(samples, self.condition))

    def train(self, desc: str, progress: bool) -> list[dict]:
        """The loop; returns one history row per optimizer step (this process's micro-batches:
        under a launcher, the main process's share)."""
        cfg, accelerator = self.cfg, self.accelerator
        history, sums, micro = [], {}, 0
        bar = tqdm(total=self.steps, desc=desc, disable=not progress, unit="step")
        batches = micro_batches(len(self.table), cfg.batch_size, cfg.micro_batch_size, self.processes, accelerator.process_index, cfg.epochs, cfg.seed)
        for step, rows in batches:
            with accelerator.accumulate(self.module):
                targets = batch_targets(self.table, rows).to(accelerator.device)
                loss, parts = distillation_loss(self.forward(rows), self.letter_ids, targets, self.recipe, cfg.temperature)
                accelerator.backward(loss)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
            micro += 1
            for k, v in {"loss": float(loss.detach()), **parts}.items():
                sums[k] = sums.get(k, 0.0) + v
            if accelerator.sync_gradients:
                self.scheduler.step()
                history.append({"step": step + 1, "lr": self.scheduler.get_last_lr()[0], **{k: v / micro for k, v in sums.items()}})
                sums, micro = {}, 0
                bar.update()
        bar.close()
        return history


def load_info(folder: Path) -> dict:
    path = Path(folder) / "distill.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no trained adapter here; run xmd_core.distill.distill first")
    return json.loads(path.read_text())


def evaluate_distilled(
    profile: Profile,
    teacher: str,
    student: str,
    recipe: str = DEFAULT_RECIPE,
    splits: tuple[str, ...] = ("analysis", "test", "unseen"),
    progress: bool = True,
    inputs=None,
) -> dict[str, pd.DataFrame]:
    """The distilled student's answers on `splits`, through the same evaluation path as the
    original models (its predictions folder is `run_name(...)`)."""
    from .study import prepare

    inputs = inputs if inputs is not None else prepare(profile, progress=False)
    folder = adapter_dir(profile, teacher, student, recipe)
    load_info(folder)
    out = {}
    for split in splits:
        clips = inputs.split(split)
        if clips.empty:
            continue
        out[split] = answers_on(profile, student, clips, split, progress, adapter_dir=folder, run=run_name(teacher, student, recipe))
    return out


# --- the whole experiment --------------------------------------------------------------------------


def run_distillation(profile: Profile, progress: bool = True, inputs=None) -> None:
    """Everything the switch, distillation and ablation chapters read, computed once (each step
    is idempotent): both switches, both directions' default students, the ablations of the
    first direction, every student evaluated on the analysis, test and unseen splits, and the
    original models on the unseen split (`study_results.distillation_summary` reads them back)."""
    from .study import prepare
    from .switch import train_switch

    inputs = inputs if inputs is not None else prepare(profile, progress=False)
    unseen = inputs.split("unseen")
    for teacher, student in DIRECTIONS:
        if not unseen.empty:
            for name in (teacher, student):
                answers_on(profile, name, unseen, "unseen", progress)
        train_switch(profile, teacher=teacher, student=student, progress=progress, inputs=inputs)
        recipes = tuple(RECIPES) if (teacher, student) == ABLATION_DIRECTION else (DEFAULT_RECIPE,)
        for recipe in recipes:
            distill(profile, teacher, student, recipe, progress=progress, inputs=inputs)
            evaluate_distilled(profile, teacher, student, recipe, progress=progress, inputs=inputs)
