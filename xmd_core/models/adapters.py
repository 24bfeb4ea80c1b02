"""Adapters: turn (clip media, question, condition) into a model's inputs through the model's
own processor and chat template, and read the next-token logits of the letters A-J.

One adapter per model family. The same adapter serves the tiny checkpoints of the embedded
profiles and the hub's 7B checkpoints: only the folder or id given to `from_pretrained` differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..mcq import LETTERS

from ..vocabulary import CONDITION_MEDIA, CONDITIONS  # noqa: F401 (the adapters' conditions)


@dataclass
class Sample:
    """One question about one clip, with the media the condition needs already decoded."""

    clip: str
    prompt: str
    audio: np.ndarray | None = None  # float32 mono at 16 kHz
    frames: np.ndarray | None = None  # uint8 (T, H, W, 3) at 1 fps

    @classmethod
    def decoded(cls, cache, media, clip: str, prompt: str, path: str, condition: str) -> Sample:
        """The question with the media `condition` gives (`vocabulary.CONDITION_MEDIA`), decoded
        through `cache` (a `media.MediaCache`) with the profile's `media` settings."""
        kinds = CONDITION_MEDIA[condition]
        audio = cache.audio(path, media.sample_rate) if "audio" in kinds else None
        frames = cache.frames(path, media.fps, media.max_pixels) if "frames" in kinds else None
        return cls(clip, prompt, audio, frames)


class Adapter:
    """A loaded model with its processor; subclasses say how media enter the prompt."""

    family: str = ""
    model_class: str = ""  # the transformers class name
    conditions: tuple[str, ...] = ()

    def __init__(self, name: str, model, processor, conditions: tuple[str, ...] | None = None):
        self.name = name
        self.identity = name  # what the weights are (set by `load_model`); part of an evaluation's plan
        self.model = model
        self.processor = processor
        if conditions is not None:
            self.conditions = conditions
        tokenizer = processor.tokenizer
        tokenizer.padding_side = "left"  # the last position must be the answer's for every row
        self.letter_ids = letter_token_ids(tokenizer)

    # -- inputs ---------------------------------------------------------------------------------
    def media_kinds(self, condition: str) -> tuple[str, ...]:
        """Which placeholders the chat turn holds under `condition` ("audio", "video")."""
        self.check_condition(condition)
        return {"audio": ("audio",), "silent_video": ("video",), "sounded_video": ("video", "audio")}[condition]

    def check_condition(self, condition: str) -> None:
        if condition not in self.conditions:
            raise ValueError(f"model {self.name!r} takes conditions {self.conditions}, not {condition!r}")

    def chat_text(self, prompt: str, condition: str) -> str:
        content = [{"type": kind} for kind in self.chat_media(condition)] + [{"type": "text", "text": prompt}]
        messages = [{"role": "user", "content": content}]
        return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def chat_media(self, condition: str) -> tuple[str, ...]:
        """Placeholders written into the chat turn (may differ from the media passed)."""
        return self.media_kinds(condition)

    def processor_kwargs(self, samples: list[Sample], condition: str) -> dict[str, Any]:
        kinds = self.media_kinds(condition)
        kwargs: dict[str, Any] = {}
        if "audio" in kinds:
            kwargs.update(audio=[_require(s, "audio") for s in samples], sampling_rate=16000)
        if "video" in kinds:
            kwargs.update(videos=[_require(s, "frames") for s in samples])
        return kwargs

    def inputs(self, samples: list[Sample], condition: str):
        """A left-padded batch for `samples` under `condition`, on the model's device."""
        texts = [self.chat_text(s.prompt, condition) for s in samples]
        batch = self.processor(text=texts, return_tensors="pt", padding=True, **self.processor_kwargs(samples, condition))
        return batch.to(self.model.device)

    def forward_kwargs(self, condition: str) -> dict[str, Any]:
        """Extra keyword arguments of the model's forward and generate under `condition`."""
        return {}

    # -- outputs --------------------------------------------------------------------------------
    def next_token_logits(self, batch, condition: str) -> torch.Tensor:
        """Logits over the whole vocabulary at the last position, (B, V)."""
        return last_position_logits(self.model, batch, keep=1, **self.forward_kwargs(condition), use_cache=False)[:, -1]

    def decode(self, token_ids: torch.Tensor) -> list[str]:
        return self.processor.tokenizer.batch_decode(token_ids, skip_special_tokens=True)


def last_position_logits(model, inputs: dict, keep: int, **kwargs) -> torch.Tensor:
    """Logits of the last `keep` positions, (B, keep, V): the inner model, then the output head
    on those positions only. (`logits_to_keep` does the same for most classes, but
    Qwen2-Audio's forward ignores it and projects every position onto the vocabulary.) A PEFT
    model's LoRA layers sit inside its base model, so they are used too."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = base.model(**inputs, **kwargs).last_hidden_state
    return base.get_output_embeddings()(hidden[:, -keep:])


def _require(sample: Sample, field_name: str):
    value = getattr(sample, field_name)
    if value is None:
        raise ValueError(f"clip {sample.clip}: the condition needs {field_name}, which was not loaded")
    return value


def letter_token_ids(tokenizer) -> torch.Tensor:
    """Token ids of "A".."J", encoded without a leading space; each must be one token."""
    ids = []
    for letter in LETTERS:
        encoded = tokenizer.encode(letter, add_special_tokens=False)
        if len(encoded) != 1:
            raise ValueError(f"letter {letter!r} is {len(encoded)} tokens ({encoded}) for this tokenizer")
        ids.append(encoded[0])
    if len(set(ids)) != len(ids):
        raise ValueError(f"letters share token ids: {ids}")
    return torch.tensor(ids)


class Qwen2AudioAdapter(Adapter):
    family = "qwen2_audio"
    model_class = "Qwen2AudioForConditionalGeneration"
    conditions = ("audio",)


class Qwen2VLAdapter(Adapter):
    family = "qwen2_vl"
    model_class = "Qwen2VLForConditionalGeneration"
    conditions = ("silent_video",)

    def processor_kwargs(self, samples, condition):
        kwargs = super().processor_kwargs(samples, condition)
        # frames arrive at 1 fps (the paper's preprocessing); the processor must not resample them
        kwargs["videos_kwargs"] = {"do_sample_frames": False, "fps": 1.0}
        return kwargs


class Qwen25VLAdapter(Qwen2VLAdapter):
    family = "qwen2_5_vl"
    model_class = "Qwen2_5_VLForConditionalGeneration"


class Qwen25OmniAdapter(Adapter):
    """The Omni thinker (text output only; the talker is not needed for letters)."""

    family = "qwen2_5_omni"
    model_class = "Qwen2_5OmniThinkerForConditionalGeneration"
    conditions = CONDITIONS

    def chat_media(self, condition):
        # a sounded video is one video placeholder whose audio track is interleaved with it
        return ("video",) if condition == "sounded_video" else self.media_kinds(condition)

    def processor_kwargs(self, samples, condition):
        kwargs = super().processor_kwargs(samples, condition)
        if "videos" in kwargs:
            # Omni's processor overrides the checkpoint's video size unless it is passed each call
            size = dict(self.processor.video_processor.size)
            kwargs["videos_kwargs"] = {"size": size, "do_sample_frames": False, "fps": 1.0}
        if condition == "sounded_video":
            kwargs.update(load_audio_from_video=True, audio_from_video_indices=list(range(len(samples))))
        return kwargs

    def forward_kwargs(self, condition):
        return {"use_audio_in_video": condition == "sounded_video"}


class VideoLlama3Adapter(Adapter):
    """VideoLLaMA3 through the class transformers ships (silent video).

    Frames arrive decoded at the profile's rate (1 fps, the paper's) and pass unsampled
    (`do_sample_frames` is off by default, so `min_frames` = 4 never pads a clip: a 2-s
    embedded clip is 2 frames, a 10-s VGGSound clip 10). Their metadata gives the processor the
    frame times it writes into the prompt ("Time 0.0s:", "Time 1.0s:", ...); without it the
    processor warns and assumes 1 fps. Each frame is resized within the processor's pixel limits
    (the per-video budget `longest_edge` divided among the frames, at least `shortest_edge`
    each: with the real checkpoint's defaults a 10-s clip's frames are each resized to about
    100k pixels, 140 tokens a frame, 1,400 in all; the tiny checkpoint's budget gives a 2-s clip
    2 tokens a frame), and patches that barely changed since the previous frame are dropped (token
    compression, the processor's default): the processor returns which were kept
    (`video_compression_mask`), and the model takes it with the other inputs.
    """

    family = "video_llama_3"
    model_class = "VideoLlama3ForConditionalGeneration"
    conditions = ("silent_video",)
    fps = 1.0  # the rate the frames were decoded at (the profile's media.fps, the paper's 1 fps)

    def processor_kwargs(self, samples, condition):
        kwargs = super().processor_kwargs(samples, condition)
        if "videos" in kwargs:
            kwargs["video_metadata"] = [
                {"total_num_frames": len(frames), "fps": self.fps, "frames_indices": list(range(len(frames)))} for frames in kwargs["videos"]
            ]
        return kwargs


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry: what the model is, where the full profile finds it, how it loads."""

    name: str
    display: str
    hub_id: str
    modality: str  # "audio", "visual" or "audio-visual"
    adapter: type[Adapter] | None
    conditions: tuple[str, ...]
    tiny: bool = True  # the embedded profiles build a tiny checkpoint of it
    remote_code: bool = False
    requires: tuple[str, ...] = field(default_factory=tuple)  # extra packages (pip names)
    row_note: str = ""  # how the model that runs here differs from the paper's (Table 1's row label says it)
