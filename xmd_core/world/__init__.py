"""The embedded world (the book's chapter 00_world): simulated "visible sounds" whose structure comes from real
annotations, written as real mp4 clips with a VGGSound-format index.

API
- `select_classes(world_cfg)`: the world's classes, in groups heard / seen / both / unseen;
- `build_world(profile, workers=None, progress=True) -> WorldPaths`: clips + index on disk
  (idempotent, resumable; see `build`);
- `draw_clip`, `render_clip`: one clip's draw and its media (tests, notebooks);
- `load_clips(paths)`: the clip table with every draw.

The sensory gap, and where it comes from
1. The real rates. Each clip is `audible ~ Bernoulli(p_audible)` and `visible ~
   Bernoulli(p_visible)` with VGGSounder's per-class rates (`classes.RATE_GAMMA` = 1: used as
   they are, no sharpening was needed). An inaudible clip holds no sound of its class (at times
   a faint sound of another class); an invisible one no sight of it (at times a bystander).
2. Confusability by category (`classes.EAR_SPREAD`, `classes.EYE_SPREAD`). Sports and tools
   classes sound alike (their sound parameters lie close together, with a large per-clip
   jitter) but look different; people classes look alike (every people clip shows a person; the
   classes differ only by a badge's hue and the arms' pose) but sound different. Animals, music,
   others, vehicles sound and look distinct; nature and home are in between.

Version 2: the cues a student can learn from a teacher (`mechanisms.mechanisms_sentence`)
3. Venues (`context`): every clip happens at one of a shared pool of venues, drawn from its
   class's own mixture; the venue is heard as an ambience bed and seen as the scene, whether or
   not the class itself is. Informative, not a giveaway (`context.venue_only_accuracy`).
4. Recording domains (`domain`): the VGGSound-style splits and the unseen classes are recorded
   in the wild (loud ambience, reverberation, band limits, noise). Half the pre-training clips
   are web video, recorded so too; the other half curated audio, clean (faint ambience unrelated
   to the class, dry). Audio-only experts pre-train on the curated half alone, experts that see
   video on all (`expert_data.pretraining_domains`): only the audio-only expert is shifted.
Both can be switched off (`WorldConfig.context`, `WorldConfig.domain_shift`: the control world
of `profiles/tiny-nocontext.yaml`); every clip's draw of both is in the clip table.
"""

from .build import (
    GENERATOR_VERSION,
    WorldPaths,
    build_world,
    is_complete,
    load_clips,
    plan_world,
    world_paths,
    write_mp4,
)
from .classes import EAR_SPREAD, EYE_SPREAD, GROUPS, PRETRAIN_GROUPS, RATE_GAMMA, class_signature, select_classes
from .clips import ClipDraw, draw_clip, render_clip, signatures

__all__ = [
    "EAR_SPREAD",
    "EYE_SPREAD",
    "GENERATOR_VERSION",
    "GROUPS",
    "PRETRAIN_GROUPS",
    "RATE_GAMMA",
    "ClipDraw",
    "WorldPaths",
    "build_world",
    "class_signature",
    "draw_clip",
    "is_complete",
    "load_clips",
    "plan_world",
    "render_clip",
    "select_classes",
    "signatures",
    "world_paths",
    "write_mp4",
]
