"""Tiny checkpoints of the real `transformers` classes, for the embedded profiles.

Each tiny checkpoint is a folder written with `save_pretrained` (model, tokenizer, processor,
chat template), so that the adapters load it with `from_pretrained` exactly as they load the
hub's 7B checkpoints. The tokenizer is a byte-level BPE trained here on the prompt's words, with
every class name added as one token (the experts module docstring: the tiny experts learn the
multiple-choice step far more easily when an option's name is a single token). The chat
templates are our own, with the real checkpoints' layout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

from ..mcq import LETTERS, PROMPT_HEAD, prompt_tail

# The Qwen2 pre-tokenisation pattern (letters, digits, punctuation runs, whitespace).
_PRETOKENIZE = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

CHAT_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")

# The media tokens each family's processor reads from its tokenizer, by attribute name.
FAMILY_TOKENS: dict[str, dict[str, str]] = {
    "qwen2_audio": {"audio_token": "<|AUDIO|>", "audio_bos_token": "<|audio_bos|>", "audio_eos_token": "<|audio_eos|>"},
    "qwen2_vl": {
        "image_token": "<|image_pad|>",
        "video_token": "<|video_pad|>",
        "vision_start_token": "<|vision_start|>",
        "vision_end_token": "<|vision_end|>",
    },
    "qwen2_5_omni": {
        "image_token": "<|IMAGE|>",
        "audio_token": "<|AUDIO|>",
        "video_token": "<|VIDEO|>",
        "vision_bos_token": "<|vision_bos|>",
        "vision_eos_token": "<|vision_eos|>",
        "audio_bos_token": "<|audio_bos|>",
        "audio_eos_token": "<|audio_eos|>",
    },
    # VideoLLaMA3's processor reads only these two; no vision start/end tokens
    "video_llama_3": {"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"},
}

_SYSTEM = {
    "qwen2_audio": "You are a helpful assistant.",
    "qwen2_vl": "You are a helpful assistant.",
    "qwen2_5_omni": (
        "You are Qwen, a virtual human developed by the Qwen Team, Alibaba Group, capable of perceiving "
        "auditory and visual inputs, as well as generating text and speech."
    ),
    "video_llama_3": None,  # the real template writes a system turn only when asked (add_system_prompt)
}

# Media placeholders per family, in the real checkpoints' layout.
_MEDIA = {
    "qwen2_audio": {"audio": "Audio {{ audio_count.value }}: <|audio_bos|><|AUDIO|><|audio_eos|>\n"},
    "qwen2_vl": {"video": "<|vision_start|><|video_pad|><|vision_end|>", "image": "<|vision_start|><|image_pad|><|vision_end|>"},
    "qwen2_5_omni": {
        "audio": "<|audio_bos|><|AUDIO|><|audio_eos|>",
        "video": "<|vision_bos|><|VIDEO|><|vision_eos|>",
        "image": "<|vision_bos|><|IMAGE|><|vision_eos|>",
    },
    # one placeholder per medium; the processor expands a video's into "Time 0.0s:<frame tokens>,..."
    "video_llama_3": {"video": "<|video_pad|>\n", "image": "<|image_pad|>\n"},
}


# Qwen2.5-VL keeps Qwen2-VL's tokens, system prompt and placeholders.
for _table in (FAMILY_TOKENS, _SYSTEM, _MEDIA):
    _table["qwen2_5_vl"] = _table["qwen2_vl"]


def chat_template(family: str) -> str:
    """A Jinja chat template: system turn, `<|im_start|>role` turns, media placeholders first."""
    branches = ""
    for i, (kind, text) in enumerate(_MEDIA[family].items()):
        keyword = "if" if i == 0 else "elif"
        counter = "{% set audio_count.value = audio_count.value + 1 %}" if kind == "audio" else ""
        branches += "{% " + keyword + " content['type'] == '" + kind + "' %}" + counter + text
    system = "" if _SYSTEM[family] is None else (
        "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n" + _SYSTEM[family] + "<|im_end|>\n{% endif %}"
    )
    return (
        "{% set audio_count = namespace(value=0) %}"
        "{% for message in messages %}"
        + system +
        "<|im_start|>{{ message['role'] }}\n"
        "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
        "{% else %}{% for content in message['content'] %}"
        + branches +
        "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
        "{% endfor %}<|im_end|>\n{% endif %}"
        "{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )


def _corpus() -> list[str]:
    """Text the BPE is trained on: the prompt, the chat scaffolding, letters and digits."""
    # (the Qwen families' system prompts only: a new family must not change the others' tokenizers)
    lines = [PROMPT_HEAD, prompt_tail(10), *(t for t in _SYSTEM.values() if t), "system user assistant Audio 1: 2: 3:"]
    lines += [f"{letter}. " for letter in LETTERS] + [" ".join(LETTERS), "0 1 2 3 4 5 6 7 8 9"]
    return lines * 4


def build_tokenizer(class_names: list[str], family: str, vocab_size: int = 320):
    """A Qwen2 tokenizer (the real class) over a locally trained byte-level BPE.

    Every class name is one (non-special) added token; the letters A-J are single tokens.
    """
    from transformers import Qwen2Tokenizer

    media = FAMILY_TOKENS[family]
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(_PRETOKENIZE), behavior="isolated"), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[CHAT_TOKENS[0]], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    bpe.train_from_iterator(_corpus(), trainer)
    trained = json.loads(bpe.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in trained["merges"]]
    tokenizer = Qwen2Tokenizer(vocab=trained["vocab"], merges=merges, extra_special_tokens=media, padding_side="left")
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in (*CHAT_TOKENS[1:], *media.values())])
    tokenizer.add_tokens([AddedToken(name, special=False, normalized=False) for name in sorted(class_names)])
    tokenizer.chat_template = chat_template(family)
    for letter in LETTERS:
        ids = tokenizer.encode(letter, add_special_tokens=False)
        if len(ids) != 1:
            raise AssertionError(f"letter {letter!r} is {len(ids)} tokens in the tiny tokenizer")
    return tokenizer


@dataclass(frozen=True)
class TinySizes:
    """Sizes of a tiny checkpoint (the same for every family)."""

    hidden_size: int = 64
    layers: int = 2
    heads: int = 2
    intermediate_size: int = 128
    encoder_dim: int = 64  # audio encoder width; the vision tower's embed width is half of it
    encoder_layers: int = 2
    audio_seconds: int = 2  # Whisper window of the tiny audio encoder (the real ones use 30 s)
    frame_pixels: int = 56 * 56  # the tiny vision processor's budget per frame
    mel_bins: int = 64


def _text_config(sizes: TinySizes, tokenizer, mrope: bool) -> dict:
    head_dim = sizes.hidden_size // sizes.heads
    text = dict(
        bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
        hidden_size=sizes.hidden_size,
        intermediate_size=sizes.intermediate_size,
        num_hidden_layers=sizes.layers,
        num_attention_heads=sizes.heads,
        num_key_value_heads=sizes.heads,
        vocab_size=len(tokenizer),
        max_position_embeddings=2048,
        tie_word_embeddings=True,
    )
    if mrope:  # temporal, height and width sections of the rotary half-dimension
        third = head_dim // 2 // 3
        text["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [head_dim // 2 - 2 * third, third, third]}
    return text


def _audio_encoder(sizes: TinySizes) -> dict:
    return dict(
        d_model=sizes.encoder_dim,
        encoder_layers=sizes.encoder_layers,
        encoder_attention_heads=sizes.heads,
        encoder_ffn_dim=2 * sizes.encoder_dim,
        num_mel_bins=sizes.mel_bins,
        # the Whisper encoder always sees its whole window: 100 mel frames per second, halved by the conv
        max_source_positions=sizes.audio_seconds * 50,
    )


def _feature_extractor(sizes: TinySizes):
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(
        feature_size=sizes.mel_bins, sampling_rate=16000, hop_length=160, chunk_length=sizes.audio_seconds, n_fft=400
    )


def _vision_processors(sizes: TinySizes):
    from transformers import Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    size = {"shortest_edge": sizes.frame_pixels // 2, "longest_edge": sizes.frame_pixels}
    common = dict(size=size, patch_size=14, merge_size=2, temporal_patch_size=2)
    return Qwen2VLImageProcessor(**common), Qwen2VLVideoProcessor(**common, do_sample_frames=False, cap_pixels_per_frame=True)


def build_tiny_checkpoint(family: str, out_dir: str | Path, class_names: list[str], sizes: TinySizes = TinySizes(), seed: int = 0) -> Path:
    """Write an untrained tiny checkpoint of `family` (model + processor) to `out_dir`."""
    import torch

    if family not in _BUILDERS:
        raise ValueError(f"no tiny checkpoint for model family {family!r}")
    torch.manual_seed(seed)
    out_dir = Path(out_dir)
    tokenizer = build_tokenizer(class_names, family)
    ids = {name: tokenizer.convert_tokens_to_ids(tok) for name, tok in FAMILY_TOKENS[family].items()}
    model, processor = _BUILDERS[family](family, sizes, tokenizer, ids)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


def _qwen2_audio(family: str, sizes: TinySizes, tokenizer, ids: dict[str, int]):
    import transformers as tf

    config = tf.Qwen2AudioConfig(
        audio_config=_audio_encoder(sizes), text_config=_text_config(sizes, tokenizer, mrope=False), audio_token_index=ids["audio_token"]
    )
    model = tf.Qwen2AudioForConditionalGeneration(config)
    processor = tf.Qwen2AudioProcessor(feature_extractor=_feature_extractor(sizes), tokenizer=tokenizer, chat_template=tokenizer.chat_template)
    return model, processor


def _qwen_vl(family: str, sizes: TinySizes, tokenizer, ids: dict[str, int]):
    """Qwen2-VL and Qwen2.5-VL: the same layout, their own vision towers."""
    import transformers as tf

    vision = dict(depth=sizes.encoder_layers, num_heads=sizes.heads, patch_size=14, spatial_merge_size=2, temporal_patch_size=2)
    common = dict(
        text_config=_text_config(sizes, tokenizer, mrope=True),
        image_token_id=ids["image_token"],
        video_token_id=ids["video_token"],
        vision_start_token_id=ids["vision_start_token"],
        vision_end_token_id=ids["vision_end_token"],
    )
    image_proc, video_proc = _vision_processors(sizes)
    if family == "qwen2_vl":
        vision.update(embed_dim=sizes.encoder_dim // 2, hidden_size=sizes.hidden_size, mlp_ratio=2)
        model = tf.Qwen2VLForConditionalGeneration(tf.Qwen2VLConfig(vision_config=vision, **common))
        processor = tf.Qwen2VLProcessor(image_processor=image_proc, video_processor=video_proc, tokenizer=tokenizer, chat_template=tokenizer.chat_template)
        return model, processor
    vision.update(
        hidden_size=sizes.encoder_dim // 2,
        out_hidden_size=sizes.hidden_size,
        intermediate_size=sizes.encoder_dim,
        window_size=56,
        fullatt_block_indexes=[sizes.encoder_layers - 1],
    )
    model = tf.Qwen2_5_VLForConditionalGeneration(tf.Qwen2_5_VLConfig(vision_config=vision, **common))
    processor = tf.Qwen2_5_VLProcessor(image_processor=image_proc, video_processor=video_proc, tokenizer=tokenizer, chat_template=tokenizer.chat_template)
    return model, processor


def _qwen2_5_omni(family: str, sizes: TinySizes, tokenizer, ids: dict[str, int]):
    """The Omni thinker (the part that answers in text)."""
    import transformers as tf

    audio = {**_audio_encoder(sizes), "output_dim": sizes.hidden_size, "n_window": 50}
    vision = dict(
        depth=sizes.encoder_layers,
        hidden_size=sizes.encoder_dim // 2,
        out_hidden_size=sizes.hidden_size,
        intermediate_size=sizes.encoder_dim,
        num_heads=sizes.heads,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        window_size=56,
        fullatt_block_indexes=[sizes.encoder_layers - 1],
    )
    config = tf.Qwen2_5OmniThinkerConfig(
        audio_config=audio,
        vision_config=vision,
        text_config=_text_config(sizes, tokenizer, mrope=True),
        audio_token_index=ids["audio_token"],
        image_token_index=ids["image_token"],
        video_token_index=ids["video_token"],
        audio_start_token_id=ids["audio_bos_token"],
        audio_end_token_id=ids["audio_eos_token"],
        vision_start_token_id=ids["vision_bos_token"],
        vision_end_token_id=ids["vision_eos_token"],
        tie_word_embeddings=True,  # the thinker ties at its own level, not the text config's
    )
    model = tf.Qwen2_5OmniThinkerForConditionalGeneration(config)
    image_proc, video_proc = _vision_processors(sizes)
    processor = tf.Qwen2_5OmniProcessor(
        image_processor=image_proc,
        video_processor=video_proc,
        feature_extractor=_feature_extractor(sizes),
        tokenizer=tokenizer,
        chat_template=tokenizer.chat_template,
    )
    return model, processor


#: Frames the tiny VideoLLaMA3 video budget is cut for: the embedded clips' 2 s at 1 fps. Its video
#: processor's `longest_edge` is a budget per video, divided among the frames (`shortest_edge` is
#: the least per frame), so these clips get `frame_pixels` a frame, as the Qwen tiny processors do.
VIDEO_LLAMA_3_FRAMES = 2


def _video_llama_3(family: str, sizes: TinySizes, tokenizer, ids: dict[str, int]):
    """VideoLLaMA3 (the class transformers ships): a Qwen2 text model (1-D RoPE) and a SigLIP-like
    vision tower; its video processor drops a frame's patches that barely changed since the last
    frame (token compression, on by default as in the real checkpoint)."""
    import transformers as tf

    vision = dict(
        hidden_size=sizes.encoder_dim // 2,  # head size 16: the tower's axial 2-D RoPE needs a multiple of 4
        intermediate_size=sizes.encoder_dim,
        num_hidden_layers=sizes.encoder_layers,
        num_attention_heads=sizes.heads,
        patch_size=14,
    )
    config = tf.VideoLlama3Config(
        text_config=_text_config(sizes, tokenizer, mrope=False),
        vision_config=vision,
        image_token_id=ids["image_token"],
        video_token_id=ids["video_token"],
    )
    model = tf.VideoLlama3ForConditionalGeneration(config)
    least = 28 * 28  # one merged token
    processor = tf.VideoLlama3Processor(
        image_processor=tf.VideoLlama3ImageProcessor(size={"shortest_edge": least, "longest_edge": sizes.frame_pixels}),
        video_processor=tf.VideoLlama3VideoProcessor(size={"shortest_edge": least, "longest_edge": sizes.frame_pixels * VIDEO_LLAMA_3_FRAMES}),
        tokenizer=tokenizer,
        chat_template=tokenizer.chat_template,
    )
    return model, processor


#: The builder of each model family's tiny checkpoint: (family, sizes, tokenizer, token ids) -> (model, processor).
_BUILDERS = {
    "qwen2_audio": _qwen2_audio, "qwen2_vl": _qwen_vl, "qwen2_5_vl": _qwen_vl, "qwen2_5_omni": _qwen2_5_omni,
    "video_llama_3": _video_llama_3,
}
