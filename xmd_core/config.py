"""Profiles: one YAML file per profile, loaded into a frozen, validated configuration.

A profile changes sizes, paths and model ids only, never code paths. Every key is checked on
load; a wrong or unknown key raises :class:`ConfigError` naming the file and the key. Every
section must be stated (:func:`required_sections`; `<section>: {}` takes its defaults): a
profile that forgot its `world:` would otherwise build a world of default sizes over its own.
Relative paths (artifacts, results, data) resolve against the repository root for the profiles
in `profiles/`, and against the profile file's own folder for a file elsewhere (:func:`path_base`).
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from .keys import key_digest
from .vocabulary import MODEL_NAMES

REPO_ROOT = Path(__file__).resolve().parents[1]
PROFILES_DIR = REPO_ROOT / "profiles"
PACKAGE_DATA = Path(__file__).resolve().parent / "data_files"


class ConfigError(ValueError):
    """A profile file holds a missing, unknown or invalid key."""


@dataclass(frozen=True)
class WorldConfig:
    """Sizes of the embedded world (`xmd_core.world`); ignored when the data source is `vggsound`."""

    seed: int = 0
    classes_per_group: int = 10  # mostly-heard, mostly-seen and both: three groups
    unseen_classes: int = 5  # kept out of distillation, asked with AudioSet options
    pretrain_per_class: int = 150
    train_per_class: int = 250  # analysis + finetune pool, as VGGSound's `train`
    test_per_class: int = 50
    # clips per unseen class (0: as many as test_per_class); the unseen split is the only
    # measure of transfer to classes outside distillation, so a profile may make it larger
    unseen_per_class: int = 0
    duration_s: float = 2.0
    fps: int = 8
    width: int = 128
    height: int = 96
    audio_rate: int = 22050  # written rate; loaders resample to media.sample_rate
    context: bool = True  # venues drawn from each class's mixture (False: uniformly, no cue)
    domain_shift: bool = True  # audio pre-training clean, the VGGSound-style splits wild

    def validate(self, where: str) -> None:
        _positive(where, "classes_per_group", self.classes_per_group)
        _at_least(where, "unseen_classes", self.unseen_classes, 0)
        for name in ("pretrain_per_class", "train_per_class", "test_per_class"):
            _positive(where, name, getattr(self, name))
        _at_least(where, "unseen_per_class", self.unseen_per_class, 0)
        _positive(where, "duration_s", self.duration_s)
        _positive(where, "fps", self.fps)
        for name in ("width", "height"):
            value = getattr(self, name)
            if value < 16 or value % 2:
                raise ConfigError(f"{where}.{name} must be an even number >= 16 (got {value!r})")
        if self.audio_rate not in (8000, 16000, 22050, 24000, 32000, 44100, 48000):
            raise ConfigError(f"{where}.audio_rate must be a standard AAC rate (got {self.audio_rate!r})")


@dataclass(frozen=True)
class DataConfig:
    """Where the clips and the index come from."""

    source: str = "world"  # "world" (embedded profiles) or "vggsound" (full profile)
    clips_dir: str = ""  # vggsound: folder of `{ytid}_{start:06d}.mp4`; world: set by the generator
    index_csv: str = ""  # vggsound: `vggsound.csv` (ytid,start,label,split) or `test.csv`
    stat_csv: str = ""  # empty: the packaged VGGSound stat.csv
    unseen_csv: str = ""  # vggsound: optional index of clips of classes outside VGGSound (split `unseen`)

    def validate(self, where: str) -> None:
        if self.source not in ("world", "vggsound"):
            raise ConfigError(f"{where}.source must be 'world' or 'vggsound' (got {self.source!r})")
        if self.source == "vggsound" and not (self.clips_dir and self.index_csv):
            raise ConfigError(f"{where}: source 'vggsound' needs clips_dir and index_csv")


@dataclass(frozen=True)
class SplitConfig:
    """How the paper's splits are drawn (Sec. 3.1 and 4.2)."""

    seed: int = 0
    analysis_per_class: int = 50  # drawn out of train, excluded from finetuning
    switch_val_per_class: int = 5  # of the analysis clips: 45 train / 5 validation in the paper

    def validate(self, where: str) -> None:
        _positive(where, "analysis_per_class", self.analysis_per_class)
        _positive(where, "switch_val_per_class", self.switch_val_per_class)
        if self.switch_val_per_class >= self.analysis_per_class:
            raise ConfigError(
                f"{where}.switch_val_per_class ({self.switch_val_per_class}) must be smaller than "
                f"analysis_per_class ({self.analysis_per_class})"
            )


@dataclass(frozen=True)
class MediaConfig:
    """The paper's preprocessing: 16 kHz mono audio, 1 fps video of at most 512x512 pixels."""

    sample_rate: int = 16000
    fps: float = 1.0
    max_pixels: int = 262144
    workers: int = 2

    def validate(self, where: str) -> None:
        _positive(where, "sample_rate", self.sample_rate)
        _positive(where, "fps", self.fps)
        _at_least(where, "max_pixels", self.max_pixels, 256)
        _positive(where, "workers", self.workers)


#: Where the unseen classes' distractors come from (`McqConfig.unseen_options`), in words.
UNSEEN_OPTION_POOLS = {
    "audioset": "AudioSet's 527 display names",
    "audioset-known": "AudioSet's label set as the experts know it (the unseen classes; VGGSound's classes at their share of AudioSet's names, 31 of 527)",
    "classes": "the profile's own classes",
}


@dataclass(frozen=True)
class McqConfig:
    """The 10-option multiple-choice questions."""

    n_options: int = 10
    seed: int = 0
    # draw distractors from outside the clip's other labels (`clip_labels`); off: the paper's protocol
    exclude_present: bool = False
    # the unseen classes' distractors: "audioset", AudioSet's display names (the paper's Fig. 3);
    # "audioset-known", the same label set restricted to names the embedded experts learned (the
    # unseen classes, and VGGSound's at their share of AudioSet's names); "classes", the profile's own
    unseen_options: str = "audioset"

    def validate(self, where: str) -> None:
        if not 2 <= self.n_options <= 10:
            raise ConfigError(f"{where}.n_options must be between 2 and 10 (got {self.n_options!r})")
        if self.unseen_options not in UNSEEN_OPTION_POOLS:
            raise ConfigError(f"{where}.unseen_options must be one of {sorted(UNSEEN_OPTION_POOLS)} (got {self.unseen_options!r})")


@dataclass(frozen=True)
class ModelsConfig:
    """Which checkpoints the adapters load, and how."""

    kind: str = "tiny"  # "tiny": the embedded experts under artifacts/; "hub": the registry's hub ids
    dtype: str = "float32"  # "bfloat16" on GPUs
    device_map: str = ""  # "" keeps the model on the CPU; "auto" spreads it over the GPUs
    batch_size: int = 16
    generate_clips: int = 256  # analysis clips also answered by generation, to compare readings
    evaluate: tuple[str, ...] = ("qwen2-audio", "qwen2-vl", "qwen2.5-vl", "qwen2.5-omni")
    # hub checkpoints other than the registry's (kind "hub"): model name -> hub id or local folder
    hub_ids: dict[str, str] = field(default_factory=dict)

    def validate(self, where: str) -> None:
        if self.kind not in ("tiny", "hub"):
            raise ConfigError(f"{where}.kind must be 'tiny' or 'hub' (got {self.kind!r})")
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ConfigError(f"{where}.dtype must be float32, bfloat16 or float16 (got {self.dtype!r})")
        _positive(where, "batch_size", self.batch_size)
        _positive(where, "generate_clips", self.generate_clips)
        unknown = [name for name in self.evaluate if name not in MODEL_NAMES]
        if unknown:
            raise ConfigError(f"{where}.evaluate: unknown model(s) {unknown}; registered: {', '.join(MODEL_NAMES)}")
        unknown = [name for name in self.hub_ids if name not in MODEL_NAMES]
        if unknown:
            raise ConfigError(f"{where}.hub_ids: unknown model(s) {unknown}; registered: {', '.join(MODEL_NAMES)}")


@dataclass(frozen=True)
class ExpertsConfig:
    """Training of the tiny modality experts (embedded profiles only; see `xmd_core.experts`)."""

    seed: int = 0
    steps: int = 4000  # phase 1: informative clips only (the class is heard / seen)
    mix_steps: int = 800  # phase 2: the world's real mix, so uninformative clips give flat answers
    batch_size: int = 32
    lr: float = 2e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01
    align_weight: float = 1.0  # auxiliary loss: media tokens toward the class-name embedding
    eval_every: int = 200
    eval_clips: int = 256
    max_restarts: int = 2  # a run still at chance after `plateau_steps` restarts with a new seed
    plateau_steps: int = 3000

    def validate(self, where: str) -> None:
        for name in ("steps", "batch_size", "eval_every", "eval_clips", "plateau_steps"):
            _positive(where, name, getattr(self, name))
        for name in ("mix_steps", "warmup_steps", "max_restarts"):
            _at_least(where, name, getattr(self, name), 0)
        _positive(where, "lr", self.lr)
        _at_least(where, "weight_decay", self.weight_decay, 0)
        _at_least(where, "align_weight", self.align_weight, 0)


@dataclass(frozen=True)
class SwitchConfig:
    """The heuristic switch (Sec. 4.2): a Cnn14 on the clip's audio that predicts whether the
    teacher beats the student on the clip's class. The paper's recipe are the defaults."""

    width: int = 64  # channels of Cnn14's first block (PANNs: 64); the embedding has 32 x width
    pretrained: str = ""  # PANNs' Cnn14_16k_mAP=0.438.pth; "" = pre-train a tagger (embedded profiles)
    tagger_epochs: int = 0  # audio tagging on the pretrain split, standing in for AudioSet pre-training
    tagger_lr: float = 1e-3
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-4
    warmup_fraction: float = 0.1
    seed: int = 0
    # weigh "teacher better" and "not better" clips equally in the loss (inverse label frequency);
    # the paper's plain loss (False) leans toward the majority label ("teacher better", 226 of 286
    # classes), which opens the gate on classes where the student is better and teaches it the
    # worse teacher's labels there
    balanced: bool = False

    def validate(self, where: str) -> None:
        for name in ("width", "epochs", "batch_size"):
            _positive(where, name, getattr(self, name))
        _at_least(where, "tagger_epochs", self.tagger_epochs, 0)
        _positive(where, "lr", self.lr)
        _positive(where, "tagger_lr", self.tagger_lr)
        if not 0 <= self.warmup_fraction < 1:
            raise ConfigError(f"{where}.warmup_fraction must be in [0, 1) (got {self.warmup_fraction})")


@dataclass(frozen=True)
class DistillConfig:
    """Cross-modal LoRA distillation (Sec. 4.1, 4.3). The paper's recipe are the defaults."""

    lora_rank: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lr: float = 1e-4
    warmup_fraction: float = 0.1
    batch_size: int = 8  # effective batch: micro_batch_size x gradient accumulation x processes
    micro_batch_size: int = 8  # clips per forward pass and process
    epochs: int = 1
    temperature: float = 2.0  # of the KL on the teacher's 10 letter logits
    max_clips: int = 0  # 0: the whole finetune split; else the first max_clips clips (tests)
    seed: int = 0

    def validate(self, where: str) -> None:
        for name in ("lora_rank", "lora_alpha", "batch_size", "micro_batch_size", "epochs"):
            _positive(where, name, getattr(self, name))
        _positive(where, "lr", self.lr)
        _positive(where, "temperature", self.temperature)
        _at_least(where, "max_clips", self.max_clips, 0)
        _at_least(where, "lora_dropout", self.lora_dropout, 0)
        if not 0 <= self.warmup_fraction < 1:
            raise ConfigError(f"{where}.warmup_fraction must be in [0, 1) (got {self.warmup_fraction})")
        if self.batch_size % self.micro_batch_size:
            raise ConfigError(
                f"{where}.batch_size ({self.batch_size}) must be a multiple of micro_batch_size ({self.micro_batch_size})"
            )


@dataclass(frozen=True)
class Profile:
    name: str
    artifacts_dir: Path
    results_dir: Path
    data: DataConfig = field(default_factory=DataConfig)
    world: WorldConfig = field(default_factory=WorldConfig)
    splits: SplitConfig = field(default_factory=SplitConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    mcq: McqConfig = field(default_factory=McqConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    experts: ExpertsConfig = field(default_factory=ExpertsConfig)
    switch: SwitchConfig = field(default_factory=SwitchConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    source_file: Path | None = None

    @property
    def world_dir(self) -> Path:
        return self.artifacts_dir / "world"

    @property
    def media_cache_dir(self) -> Path:
        return self.artifacts_dir / "media_cache"

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        return json.loads(json.dumps(out, default=str))

    def config_hash(self, *sections: str) -> str:
        """A short, stable hash of the named sections (all when none), for cache keys.

        A setting of `LATE_SETTINGS` is hashed only when it differs from its value there, so that
        the results a profile stored before the setting existed stay valid while it is unused."""
        full = self.to_dict()
        full.pop("source_file", None)
        for section, defaults in LATE_SETTINGS.items():
            for key, value in defaults.items():
                if full[section].get(key) == value:
                    del full[section][key]
        part = {s: full[s] for s in sections} if sections else full
        return key_digest(part, 12)


#: Settings added after results were stored, with the value under which nothing changes.
LATE_SETTINGS = {"mcq": {"exclude_present": False, "unseen_options": "audioset"}, "world": {"unseen_per_class": 0}}


_SECTIONS = {
    "data": DataConfig,
    "world": WorldConfig,
    "splits": SplitConfig,
    "media": MediaConfig,
    "mcq": McqConfig,
    "models": ModelsConfig,
    "experts": ExpertsConfig,
    "switch": SwitchConfig,
    "distill": DistillConfig,
}


def _positive(where: str, key: str, value: Any) -> None:
    if not value > 0:
        raise ConfigError(f"{where}.{key} must be > 0 (got {value!r})")


def _at_least(where: str, key: str, value: Any, low: Any) -> None:
    if not value >= low:
        raise ConfigError(f"{where}.{key} must be >= {low} (got {value!r})")


def _coerce(where: str, key: str, value: Any, kind: Any) -> Any:
    """Check one YAML value against the dataclass field's type (ints are accepted for floats)."""
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if typing.get_origin(kind) is tuple:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}.{key} must be a list of strings (got {value!r})")
        return tuple(value)
    if typing.get_origin(kind) is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise ConfigError(f"{where}.{key} must be a mapping of names to strings (got {value!r})")
        return dict(value)
    if kind in (int, float, str, bool):
        if isinstance(value, bool) and kind is not bool:
            raise ConfigError(f"{where}.{key} must be {kind.__name__} (got {value!r})")
        if not isinstance(value, kind):
            raise ConfigError(f"{where}.{key} must be {kind.__name__} (got {value!r})")
    return value


def _build_section(cls: type, raw: Any, where: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping (got {type(raw).__name__})")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    values = {k: _coerce(where, k, v, hints[k]) for k, v in raw.items()}
    section = cls(**values)
    section.validate(where)
    return section


def profile_argument(profile: Profile) -> str:
    """What names `profile` on a command line: its name when it is one of the repository's
    profiles, else its file's path."""
    if profile.source_file == (PROFILES_DIR / f"{profile.name}.yaml").resolve():
        return profile.name
    return str(profile.source_file)


def path_base(profile_file: Path) -> Path:
    """What relative paths in a profile resolve against: the repository root for the profiles in
    `profiles/`, the profile file's own folder for one elsewhere (never the current directory)."""
    folder = Path(profile_file).resolve().parent
    return REPO_ROOT if folder == PROFILES_DIR.resolve() else folder


def _resolve_data_paths(data: DataConfig, base: Path) -> DataConfig:
    paths = {k: str((base / v).resolve()) for k in ("clips_dir", "index_csv", "stat_csv", "unseen_csv") if (v := getattr(data, k))}
    return dataclasses.replace(data, **paths)


def required_sections(data: DataConfig) -> tuple[str, ...]:
    """The sections a profile must state: all of them, except the embedded world's and the tiny
    experts' when it reads VGGSound from disk."""
    embedded_only = () if data.source == "world" else ("world", "experts")
    return tuple(name for name in _SECTIONS if name not in embedded_only)


def profile_path(name_or_path: str | Path) -> Path:
    """A profile name (`tiny`) names `profiles/tiny.yaml`; anything else is a path."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml"):
        path = candidate
    else:
        path = PROFILES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))
        raise ConfigError(f"no profile file {path} (known profiles: {', '.join(known)})")
    return path


def load_profile(name_or_path: str | Path = "tiny") -> Profile:
    path = profile_path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a profile must be a mapping of sections")
    top = {"name", "artifacts_dir", "results_dir", *_SECTIONS}
    unknown = sorted(set(raw) - top)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(top))}")
    for key in ("name", "artifacts_dir", "results_dir"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise ConfigError(f"{path}: {key} must be a non-empty string (got {raw.get(key)!r})")
    base = path_base(path)
    sections = {name: _build_section(cls, raw.get(name), f"{path.name}:{name}") for name, cls in _SECTIONS.items()}
    sections["data"] = _resolve_data_paths(sections["data"], base)
    missing = [name for name in required_sections(sections["data"]) if name not in raw]
    if missing:
        raise ConfigError(
            f"{path}: missing section(s) {', '.join(missing)}; a profile states each of its sections "
            "(`<section>: {}` takes every default), so that a forgotten one cannot fall back to default sizes"
        )
    return Profile(
        name=raw["name"],
        artifacts_dir=(base / raw["artifacts_dir"]).resolve(),
        results_dir=(base / raw["results_dir"]).resolve(),
        source_file=path.resolve(),
        **sections,
    )


def replace(profile: Profile, **sections: dict[str, Any]) -> Profile:
    """A copy of `profile` with some section keys changed, validated like a file (for tests)."""
    changes = {}
    for name, updates in sections.items():
        if name not in _SECTIONS:
            raise ConfigError(f"unknown section {name!r}")
        merged = {**dataclasses.asdict(getattr(profile, name)), **updates}
        changes[name] = _build_section(_SECTIONS[name], merged, f"{profile.name}:{name}")
    return dataclasses.replace(profile, **changes)


__all__ = [
    "ConfigError",
    "DataConfig",
    "DistillConfig",
    "ExpertsConfig",
    "McqConfig",
    "ModelsConfig",
    "MediaConfig",
    "PACKAGE_DATA",
    "Profile",
    "SwitchConfig",
    "SplitConfig",
    "WorldConfig",
    "load_profile",
    "profile_path",
    "replace",
]
