"""Models by name (as lm-evaluation-harness does): the registry and the loader.

The full profile loads each model from its hub id; the embedded profiles load the tiny expert
checkpoint of the same class from `artifacts/<profile>/checkpoints/<name>/`. Both go through
`from_pretrained`; nothing else differs.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

from ..keys import key_digest
from ..config import Profile
from .adapters import (
    CONDITIONS, Adapter, ModelSpec, Qwen2AudioAdapter, Qwen2VLAdapter, Qwen25OmniAdapter, Qwen25VLAdapter, VideoLlama3Adapter,
)


class ModelUnavailable(RuntimeError):
    """A model cannot be loaded here: a missing package, checkpoint or unsupported profile."""


REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("qwen2-audio", "Qwen2-Audio-7B-Instruct", "Qwen/Qwen2-Audio-7B-Instruct", "audio", Qwen2AudioAdapter, ("audio",)),
        ModelSpec("qwen2-vl", "Qwen2-VL-7B-Instruct", "Qwen/Qwen2-VL-7B-Instruct", "visual", Qwen2VLAdapter, ("silent_video",)),
        ModelSpec("qwen2.5-vl", "Qwen2.5-VL-7B-Instruct", "Qwen/Qwen2.5-VL-7B-Instruct", "visual", Qwen25VLAdapter, ("silent_video",)),
        ModelSpec("qwen2.5-omni", "Qwen2.5-Omni", "Qwen/Qwen2.5-Omni-7B", "audio-visual", Qwen25OmniAdapter, CONDITIONS),
        # Remote-code models of Table 1: no tiny version (their code lives on the hub, not in
        # transformers), so they run in the full profile only, with their own packages installed.
        ModelSpec(
            "qwen-audio-chat", "Qwen-Audio-Chat", "Qwen/Qwen-Audio-Chat", "audio", None, ("audio",),
            tiny=False, remote_code=True, requires=("tiktoken", "transformers_stream_generator"),
        ),
        ModelSpec(
            "kimi-audio", "Kimi-Audio-7B-Instruct", "moonshotai/Kimi-Audio-7B-Instruct", "audio", None, ("audio",),
            tiny=False, remote_code=True, requires=("kimia_infer", "flash_attn"),
        ),
        # VideoLLaMA3 runs through the class transformers ships (`VideoLlama3ForConditionalGeneration`),
        # which loads checkpoints converted to its layout. The paper's model (DAMO-NLP-SG/VideoLLaMA3-7B)
        # is remote code with another layout: the full profile names a converted checkpoint
        # (`models.hub_ids`), and Table 1's row label says which one ran.
        ModelSpec(
            "videollama3", "VideoLLaMA3", "lkhl/VideoLLaMA3-2B-Image-HF", "visual", VideoLlama3Adapter, ("silent_video",),
            row_note="transformers' class; the paper ran the remote-code 7B",
        ),
    )
}

# The model family of each registry entry's tiny checkpoint.
TINY_FAMILY = {
    "qwen2-audio": "qwen2_audio", "qwen2-vl": "qwen2_vl", "qwen2.5-vl": "qwen2_5_vl", "qwen2.5-omni": "qwen2_5_omni",
    "videollama3": "video_llama_3",
}


def get_spec(name: str) -> ModelSpec:
    if name not in REGISTRY:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def missing_packages(spec: ModelSpec) -> list[str]:
    return [pkg for pkg in spec.requires if importlib.util.find_spec(pkg) is None]


def checkpoint_path(name: str, profile: Profile) -> str:
    """Where `from_pretrained` finds the model in this profile: a local folder or a hub id."""
    spec = get_spec(name)
    if profile.models.kind == "hub":
        return profile.models.hub_ids.get(name, spec.hub_id)
    return str(profile.artifacts_dir / "checkpoints" / name)


def unavailable_reason(spec: ModelSpec, profile: Profile) -> str:
    """Why the model cannot run in this profile whatever is on disk ('' when it can)."""
    if spec.adapter is None:
        missing = missing_packages(spec)
        needs = f"its packages ({', '.join(missing)} missing) and " if missing else ""
        return (f"{spec.display} ({spec.hub_id}) runs its own remote code; it needs {needs}the hub checkpoint, "
                "and has no letter-scoring adapter in xmd_core yet. It is registered so that Table 1 lists it.")
    if profile.models.kind == "tiny" and not spec.tiny:
        return f"{spec.display} has no tiny checkpoint; it runs in the full profile only"
    return ""


def load_model(name: str, profile: Profile, checkpoint: str | Path | None = None, adapter_dir: str | Path | None = None) -> Adapter:
    """Load a registered model and wrap it in its adapter.

    `checkpoint` overrides the profile's location (tests, an expert in training); `adapter_dir`
    is a LoRA adapter saved by `save_pretrained`, applied on top (distilled models).
    """
    import transformers

    spec = get_spec(name)
    reason = unavailable_reason(spec, profile)
    if reason:
        raise ModelUnavailable(reason)
    where = str(checkpoint or checkpoint_path(name, profile))
    if profile.models.kind == "tiny" and not Path(where).is_dir():
        raise ModelUnavailable(f"no checkpoint for {name!r} at {where}: build the tiny experts first (xmd experts --profile {profile.name})")
    dtype = getattr(torch, profile.models.dtype)
    model_class = getattr(transformers, spec.adapter.model_class)
    model = model_class.from_pretrained(where, dtype=dtype, device_map=profile.models.device_map or None)
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir))
    model.eval()
    processor = transformers.AutoProcessor.from_pretrained(where)
    adapter = spec.adapter(name, model, processor, spec.conditions)
    adapter.identity = model_identity(where, adapter_dir)
    return adapter


def load_model_quietly(name: str, profile: Profile) -> Adapter:
    """:func:`load_model` without transformers' checkpoint-loading bars (a book page shows tables,
    not bars); the bars' setting is restored afterwards."""
    import transformers

    shown = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()
    try:
        return load_model(name, profile)
    finally:
        if shown:
            transformers.utils.logging.enable_progress_bar()


def model_identity(checkpoint: str | Path, adapter_dir: str | Path | None = None) -> str:
    """What the weights are, for the evaluation's and distillation's keys: a hub id; a tiny
    expert's folder name and training hash (a retrained expert is another model); or, for any
    other local folder, its path. A LoRA adapter adds its key's digest. No path of a tiny expert
    or an adapter enters it, so results copied or moved with their artifacts stay valid."""
    expert = Path(checkpoint) / "expert.json"
    if expert.is_file():
        parts = [f"tiny expert {Path(checkpoint).name} {json.loads(expert.read_text()).get('hash')}"]
    else:
        parts = [str(checkpoint)]
    if adapter_dir is not None:
        record = Path(adapter_dir) / "distill.json"
        key = json.loads(record.read_text()).get("key") if record.is_file() else None
        parts.append(f"adapter {Path(adapter_dir).name} {key_digest(key, 16)}")
    return "; ".join(parts)
