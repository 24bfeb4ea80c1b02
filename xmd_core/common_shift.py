"""How much of the student's domain shift one fix for every class could undo (chapter 04, F9).

Distillation trains LoRA on the student's language model with the finetune classes only. What it
learns can lift the unseen classes only where the error it corrects is the same for every class.
In the embedded world the audio expert pre-trained on clean clips and hears the wild ones through
a recording chain; this module splits what the chain does to the expert's media into a part
common to every class and a part of each class's own, and scores how much undoing each would
give back.

The tiny experts score an option by the dot product of the media tokens' mean (as they enter the
language model) with the option name's embedding (their alignment objective; every class name is
one token). For each distilled class, its *shift* is the mean summary of its wild finetune clips
minus that of its clean pre-training clips. Each wild clip is then scored among the distilled
classes' names as it is, minus the mean shift of the *other* classes (one correction for all
classes, learned without the clip's own: what could carry over to an unseen class), minus the
mean shift of the other classes' wild clips at the clip's venue (a correction per venue: a rule
that would carry over too, since the unseen classes are heard at the same venues), and minus its
own class's shift (a correction per class: what distillation can learn class by class). The
shifts are estimated on one half of each class's clips and applied to the other (both ways), so a
clip never corrects itself. All three corrections use the clean clips, which distillation never
sees: they are ceilings, not what a student learns.

A proxy: LoRA changes the language model, not the media. Measured in the embedded world only (real
class names are several tokens, and real experts were not trained to score this way).
"""

from __future__ import annotations

import pandas as pd
import torch
from tqdm.auto import tqdm

from .config import Profile
from .distill import own_condition
from .media import MediaCache
from .models.adapters import Adapter, Sample
from .signal_split import own_draw
from .study_results import load_inputs
from .tower_cache import capture_embeddings
from .world import load_clips, world_paths

#: Clips per class and domain (clean pre-training, wild finetune) that the probe reads.
CLIPS_PER_CLASS = 40
#: Fewest clips per class and domain: two halves, one to estimate the shifts and one to score.
MIN_CLIPS = 2
MEDIA_TOKENS = ("audio_token", "video_token", "image_token")
DOMAIN_SPLIT = {"pretrain": "clean", "finetune": "wild"}
ROWS = {
    "clean": "clean pre-training clips, as trained",
    "wild": "wild clips, as trained",
    "common": "wild clips minus the other classes' common shift (one fix for every class)",
    "venue": "wild clips minus the other classes' shift at their venue (a fix per venue)",
    "own": "wild clips minus their class's own shift (a fix per class)",
}


def unmeasurable_reason(profile: Profile) -> str | None:
    """Why the probe cannot run on this profile, or None when it can."""
    if profile.data.source != "world":
        return "the probe reads the tiny experts' one-token class names; real experts name a class in several tokens"
    if not profile.world.domain_shift:
        return "this world records every clip in one domain (`world.domain_shift` off), so there is no shift to split"
    return None


def several_token_names(tokenizer, labels) -> list[str]:
    """The labels that are not one token in `tokenizer`'s vocabulary."""
    return [label for label in labels if len(tokenizer.tokenize(label)) != 1]


def name_embeddings(adapter: Adapter, labels: list[str]) -> torch.Tensor:
    """(C, H) input embeddings of the one-token class names."""
    tokenizer = adapter.processor.tokenizer
    several = several_token_names(tokenizer, labels)
    if several:
        raise ValueError(f"class names must be one token each in {adapter.name}'s vocabulary; {several[0]!r} is not")
    ids = [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(label)[0]) for label in labels]
    return adapter.model.get_input_embeddings().weight[ids].detach().float()


@torch.no_grad()
def media_summaries(adapter: Adapter, samples: list[Sample], condition: str, batch_size: int, progress: bool = True) -> torch.Tensor:
    """(N, H): each sample's media tokens averaged, as the language model receives them."""
    processor, tokenizer = adapter.processor, adapter.processor.tokenizer
    media_ids = torch.tensor([tokenizer.convert_tokens_to_ids(getattr(processor, k)) for k in MEDIA_TOKENS if hasattr(processor, k)])
    rows = []
    for start in tqdm(range(0, len(samples), batch_size), desc=f"media summaries {adapter.name}", leave=False, disable=not progress):
        batch = adapter.inputs(samples[start : start + batch_size], condition)
        embeds = capture_embeddings(adapter.model, batch, adapter.forward_kwargs(condition))["inputs_embeds"].float()
        media = torch.isin(batch["input_ids"], media_ids)
        if not media.any(dim=1).all():
            raise RuntimeError(f"{adapter.name}: a {condition!r} sample without media tokens")
        rows.append((embeds * media[..., None]).sum(1) / media.sum(1, keepdim=True))
    return torch.cat(rows)


def domain_means(summaries: torch.Tensor, clips: pd.DataFrame, labels: list[str], domain: str) -> torch.Tensor:
    """(C, H): per class, the mean summary of its `domain` clips (`clips`: columns `label`,
    `domain`, aligned with `summaries`)."""
    def mean(label: str) -> torch.Tensor:
        mask = torch.tensor(((clips["domain"] == domain) & (clips["label"] == label)).to_numpy())
        if not mask.any():
            raise ValueError(f"no {domain} clip of class {label!r} to estimate its shift from")
        return summaries[mask].mean(0)

    return torch.stack([mean(label) for label in labels])


def class_shifts(summaries: torch.Tensor, clips: pd.DataFrame, labels: list[str]) -> torch.Tensor:
    """(C, H): per class, the mean wild summary minus the mean clean one, over `clips` (columns
    `label`, `domain`; aligned with `summaries`)."""
    return domain_means(summaries, clips, labels, "wild") - domain_means(summaries, clips, labels, "clean")


def venue_shifts(summaries: torch.Tensor, clips: pd.DataFrame, labels: list[str]) -> dict[str, torch.Tensor]:
    """Per venue, (C, H): for each class, the mean shift (a wild summary minus its class's mean
    clean one) of the *other* classes' wild clips at that venue; NaN rows where there are none.
    `clips` needs a `venue` column besides `label` and `domain`."""
    wild = (clips["domain"] == "wild").to_numpy()
    targets = torch.tensor([labels.index(label) for label in clips.loc[wild, "label"]], dtype=torch.long)
    residuals = summaries[torch.tensor(wild)] - domain_means(summaries, clips, labels, "clean")[targets]
    venues = clips.loc[wild, "venue"].to_numpy()
    by_venue = {}
    for venue in sorted(set(venues)):
        here = torch.tensor(venues == venue)
        sums = torch.zeros(len(labels), summaries.shape[1]).index_add_(0, targets[here], residuals[here])
        counts = torch.bincount(targets[here], minlength=len(labels)).float()
        others = counts.sum() - counts
        by_venue[venue] = (sums.sum(0, keepdim=True) - sums) / others[:, None].clamp(min=1)
        by_venue[venue][others == 0] = float("nan")
    return by_venue


def correct_counts(summaries: torch.Tensor, clips: pd.DataFrame, shifts: torch.Tensor, by_venue: dict[str, torch.Tensor],
                   names: torch.Tensor, labels: list[str]) -> dict[str, int]:
    """How many of `clips` the best-scoring name gets right, per row of `ROWS`, with `shifts` and
    `by_venue` (:func:`venue_shifts`, estimated on other clips) subtracted as each row says."""
    targets = torch.tensor([labels.index(label) for label in clips["label"]])
    wild = torch.tensor((clips["domain"] == "wild").to_numpy())
    # per class, the mean shift of the others: a fix learned without the class, as for an unseen one
    others = (shifts.sum(0, keepdim=True) - shifts) / (len(labels) - 1)
    at_venue = torch.stack([_venue_fix(by_venue, venue, int(k), others) for venue, k in zip(clips.loc[wild.numpy(), "venue"], targets[wild])])

    def right(x: torch.Tensor, rows: torch.Tensor) -> int:
        return int(((x @ names.T).argmax(1) == targets[rows]).sum())

    return {
        "clean": right(summaries[~wild], ~wild),
        "wild": right(summaries[wild], wild),
        "common": right(summaries[wild] - others[targets[wild]], wild),
        "venue": right(summaries[wild] - at_venue, wild),
        "own": right(summaries[wild] - shifts[targets[wild]], wild),
    }


def _venue_fix(by_venue: dict[str, torch.Tensor], venue: str, target: int, others: torch.Tensor) -> torch.Tensor:
    """The fix per venue for a clip of class `target`; where no other class was heard at the
    venue in the clips that estimate it, the fix for every class (nothing to tell venues apart)."""
    fix = by_venue.get(venue)
    if fix is None or torch.isnan(fix[target]).any():
        return others[target]
    return fix[target]


def both_folds(summaries: torch.Tensor, clips: pd.DataFrame, names: torch.Tensor, labels: list[str]) -> dict[str, int]:
    """:func:`correct_counts` summed over the two folds: shifts estimated on one, clips scored on
    the other, so that no clip corrects itself."""
    counts = dict.fromkeys(ROWS, 0)
    for fold in (0, 1):
        estimate, scored = (clips["fold"] == 1 - fold).to_numpy(), (clips["fold"] == fold).to_numpy()
        part = summaries[torch.tensor(estimate)], clips[estimate].reset_index(drop=True), labels
        shifts, by_venue = class_shifts(*part), venue_shifts(*part)
        for row, n in correct_counts(summaries[torch.tensor(scored)], clips[scored].reset_index(drop=True), shifts, by_venue, names, labels).items():
            counts[row] += n
    return counts


def world_draws(profile: Profile, clips: pd.DataFrame) -> pd.DataFrame:
    """The world's clip table (every draw) for `clips` (column `clip`), in their order."""
    world = load_clips(world_paths(profile)).set_index("clip")
    missing = sorted(set(clips["clip"]) - set(world.index))
    if missing:
        raise KeyError(f"{len(missing)} clip(s) are not in the world's clip table, e.g. {missing[0]!r}: rebuild the world")
    return world.reindex(clips["clip"])


def clip_summaries(profile: Profile, adapter: Adapter, clips: pd.DataFrame, progress: bool) -> torch.Tensor:
    """(N, H) :func:`media_summaries` of `clips` (columns `clip`, `path`) in `adapter`'s own
    condition, each asked its question of the study's question table."""
    prompts = load_inputs(profile).questions.drop_duplicates("clip").set_index("clip")["prompt"].reindex(clips["clip"])
    if prompts.isna().any():
        raise KeyError(f"no question for clip {prompts.index[prompts.isna()][0]!r} in {profile.results_dir}")
    condition = own_condition(adapter.name)
    cache = MediaCache(profile.media_cache_dir)
    samples = [Sample.decoded(cache, profile.media, c, q, p, condition) for c, q, p in zip(clips["clip"], prompts, clips["path"])]
    return media_summaries(adapter, samples, condition, profile.models.batch_size, progress)


def probe_clips(profile: Profile, student: str, per_class: int, seed: int) -> tuple[pd.DataFrame, list[str]]:
    """Clips of the distilled classes whose `student`'s input carries the class: up to `per_class`
    each of the clean pre-training clips and of the wild finetune clips, with their venue and
    `fold` (0 or 1, alternating within a class and domain); and the classes left out because
    fewer than `MIN_CLIPS` of their clips in a domain carry them."""
    clips = load_inputs(profile).clips
    distilled = set(clips.loc[clips["split"] == "finetune", "label"])
    wanted = clips[clips["split"].isin(list(DOMAIN_SPLIT)) & clips["label"].isin(distilled)]
    draws = world_draws(profile, wanted)
    carries = draws[own_draw(student)].astype(bool).to_numpy()
    # in the wild the venue heard is the venue seen (`audio_venue` differs on clean clips only)
    wanted = wanted.assign(domain=wanted["split"].map(DOMAIN_SPLIT), venue=draws["venue"].astype(object).to_numpy())[carries]
    sampled = wanted.sample(frac=1.0, random_state=seed).groupby(["domain", "label"]).head(per_class)
    sampled = sampled.sort_values(["domain", "label", "clip"]).reset_index(drop=True)
    sampled["fold"] = sampled.groupby(["domain", "label"]).cumcount() % 2
    counts = sampled.groupby(["label", "domain"]).size().unstack("domain").reindex(columns=list(DOMAIN_SPLIT.values())).fillna(0)
    thin = sorted(counts.index[(counts < MIN_CLIPS).any(axis=1)])
    return sampled[~sampled["label"].isin(thin)].reset_index(drop=True), thin


def shift_fixes(profile: Profile, adapter: Adapter, per_class: int = CLIPS_PER_CLASS, seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """Accuracy (%) of name scoring on the student's media summaries (:data:`ROWS`), and the share
    of a class's shift that lies along the common shift (`attrs["common share"]`, %), and the
    classes left out for want of clips (`attrs["left out"]`)."""
    reason = unmeasurable_reason(profile)
    if reason:
        raise ValueError(f"common_shift is not measurable in profile {profile.name!r}: {reason}")
    clips, left_out = probe_clips(profile, adapter.name, per_class, seed)
    if clips["label"].nunique() < 2:
        raise ValueError(f"common_shift needs two classes with {MIN_CLIPS} clips carrying them per domain; profile {profile.name!r} has {clips['label'].nunique()}")
    labels = sorted(clips["label"].unique())
    names = name_embeddings(adapter, labels)
    summaries = clip_summaries(profile, adapter, clips, progress)
    counts = both_folds(summaries, clips, names, labels)
    totals = {"clean": int((clips["domain"] == "clean").sum())}
    totals.update(dict.fromkeys(("wild", "common", "venue", "own"), int((clips["domain"] == "wild").sum())))
    table = pd.DataFrame({"accuracy (%)": [round(100 * counts[r] / totals[r], 1) for r in ROWS], "clips": [totals[r] for r in ROWS]}, index=list(ROWS.values()))
    table.attrs["common share"] = common_share(class_shifts(summaries, clips, labels))
    table.attrs["left out"] = left_out
    return table


def student_fixes(profile: Profile, student: str, progress: bool = False) -> pd.DataFrame:
    """:func:`shift_fixes` of `student` as the profile's checkpoints hold it (no loading or
    progress bars unless `progress`: the book shows the table only)."""
    from .models.registry import load_model, load_model_quietly

    adapter = load_model(student, profile) if progress else load_model_quietly(student, profile)
    return shift_fixes(profile, adapter, progress=progress)


def common_share(shifts: torch.Tensor) -> float:
    """Mean over classes of the share (%) of a class's shift (its squared norm) along the common one."""
    common = shifts.mean(0)
    if float(common.norm()) == 0.0:
        return 0.0
    along = (shifts @ common / common.norm()) ** 2
    return round(100 * float((along / (shifts**2).sum(1)).mean()), 1)


def common_shift_line(table: pd.DataFrame) -> str:
    """The table of :func:`shift_fixes` as one line (the findings table's F9 row)."""
    value = table["accuracy (%)"]
    return (f"wild clips {value[ROWS['wild']]:.1f}% as trained (clean {value[ROWS['clean']]:.1f}%); "
            f"one fix for every class {value[ROWS['common']]:.1f}%, a fix per venue {value[ROWS['venue']]:.1f}%, "
            f"a fix per class {value[ROWS['own']]:.1f}%")
