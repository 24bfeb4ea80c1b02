"""The one sentence that every embedded page shows: which mechanisms are built into the world.

The world is built so that the paper's findings *can* arise; whether they do is up to the
pipeline (experts, switch, distillation), which is not told about them.
"""

from __future__ import annotations

from ..config import WorldConfig
from .context import MIXTURE_ALPHA, VENUE_NAMES


def mechanisms(world: WorldConfig) -> list[str]:
    """The mechanisms switched on in `world`, one phrase each."""
    built = [
        "each clip's class is heard or seen at VGGSounder's per-class rates (the sensory gap)",
        "classes of some categories sound alike, of others look alike",
    ]
    if world.context:
        built.append(
            f"every clip happens at one of {len(VENUE_NAMES)} venues, drawn from a class-specific mixture "
            f"(Dirichlet {MIXTURE_ALPHA}), heard as an ambience and seen as the scene whether or not the class is"
        )
        built.append(
            "the experts' language models know where each class usually happens (as a real LLM knows from text), "
            "but their pre-training never ties the venue heard or seen in a clip to a class"
        )
    if world.domain_shift:
        built.append(
            "the audio-only experts pre-train on clean curated clips, the experts that see video on web video too, while "
            "the VGGSound-style clips are recorded in the wild (louder ambience, reverberation, band limits, noise)"
        )
    return built


def mechanisms_sentence(world: WorldConfig) -> str:
    """A Markdown paragraph naming the mechanisms of `world` and those switched off."""
    off = [name for name, on in (("class-correlated venues", world.context), ("the recording-domain shift", world.domain_shift)) if not on]
    text = "**Built into this world:** " + "; ".join(mechanisms(world)) + "."
    if off:
        text += " **Switched off here (a control world):** " + " and ".join(off) + "."
    return text + " The world makes the paper's findings possible; the pipeline has to find and use these cues itself."


def embedded_notice(world: WorldConfig) -> str:
    """The warning at the top of every embedded chapter: what the numbers are, and the
    mechanisms built into the world (MyST)."""
    return (
        "```{warning}\nEmbedded profile: the models are **tiny experts** of the real model classes, trained on the "
        "simulated world, whose clips they answer. These numbers show the pipeline at work, not the behaviour of the "
        f"real 7B models.\n\n{mechanisms_sentence(world)}\n```"
    )
