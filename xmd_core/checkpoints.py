"""The profile's checkpoints, made loadable: the embedded profiles train their tiny experts (cached
by config hash, `expert_pool`); the full profile's hub checkpoints load by id and need nothing.

A layer of its own between the experts and the stages that load models (evaluation, switch,
distillation), so that none of them reaches up into the study's orchestration (`study_pool`) and
the shared inputs (`study`) stay below the experts that read them.
"""

from __future__ import annotations

from .config import Profile


def ensure_models(profile: Profile, names: tuple[str, ...] | None = None, progress: bool = True, jobs: int | None = None) -> None:
    """Make the checkpoints of `names` (default: the profile's evaluated models) loadable; the
    tiny ones are trained `jobs` at a time (default one per core)."""
    if profile.models.kind == "tiny":
        from .expert_pool import train_experts
        from .models.registry import REGISTRY

        wanted = [n for n in (names or profile.models.evaluate) if REGISTRY[n].tiny]
        train_experts(profile, names=wanted, progress=progress, jobs=jobs)
