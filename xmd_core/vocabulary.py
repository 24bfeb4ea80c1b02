"""The study's vocabulary: the names that the CLI, the stages and the book share.

Conditions, the distillation directions and recipes, and the name of a generation run are
written here once; everything else derives from them (the CLI's choices, the study's run order,
the chapters' tables). This module imports nothing of the project, so any layer may use it.
"""

from __future__ import annotations

#: What a model is given of a clip: the audio, the frames without sound, or both.
CONDITIONS = ("audio", "silent_video", "sounded_video")
#: The media each condition gives a model: the audio track, the frames, or both.
CONDITION_MEDIA = {"audio": ("audio",), "silent_video": ("frames",), "sounded_video": ("audio", "frames")}
#: The splits a model is evaluated on from the command line.
EVAL_SPLITS = ("analysis", "finetune", "test", "pretrain")
#: Every registered model, by name (`models.registry.REGISTRY` holds their specs, in this order).
MODEL_NAMES = ("qwen2-audio", "qwen2-vl", "qwen2.5-vl", "qwen2.5-omni", "qwen-audio-chat", "kimi-audio", "videollama3")
#: The study's distillation directions, (teacher, student): visual -> audio, then audio -> visual.
DIRECTIONS = (("qwen2-vl", "qwen2-audio"), ("qwen2-audio", "qwen2-vl"))
#: The direction whose recipes are compared (Table 2).
ABLATION_DIRECTION = DIRECTIONS[0]
#: Distillation recipes (Table 2's rows; `distill.RECIPES` defines them), the default first.
RECIPE_NAMES = ("teacher-labels", "teacher-kl", "teacher-kl+labels", "ground-truth", "no-anti-forgetting")
DEFAULT_RECIPE = RECIPE_NAMES[0]
#: Evaluation modes: letter scoring, or greedy generation with the letter parsed from the reply.
MODES = ("letters", "generate")


def run_for(model: str, mode: str = "letters") -> str:
    """The predictions folder of a model's evaluation in a mode ("qwen2-vl", "qwen2-vl@generate")."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES} (got {mode!r})")
    return model if mode == "letters" else f"{model}@generate"
