"""The switch's audio: every clip decoded once through the media cache (a clip that cannot be
decoded is reported and skipped, never silently dropped), cropped or padded to one length, and
turned into log-mel features by the Cnn14's fixed front end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .cnn14 import Cnn14
from .config import Profile
from .media import MediaCache, MediaError
from .workers import die_with_parent

MAX_SECONDS = 10.0  # longest audio fed to the switch (VGGSound clips are 10 s)
FEATURE_MEMORY_BYTES = 2 * 1024**3  # log-mel features of a training set are kept in memory up to this size
EXAMPLES_SHOWN = 5  # skipped clips named in the report


class _Probe(Dataset):
    """Decodes each clip once through the cache (filling it) and reports its length or error."""

    def __init__(self, cache: MediaCache, paths: list[str], sample_rate: int):
        self.cache, self.paths, self.sample_rate = cache, paths, sample_rate

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, int, str]:
        try:
            return i, int(self.cache.audio(self.paths[i], self.sample_rate).shape[0]), ""
        except MediaError as exc:
            return i, 0, str(exc)


def decode_clips(profile: Profile, rows: pd.DataFrame, progress: bool, desc: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Decode every clip of `rows`; returns (rows that decoded, with a `samples` column;
    the skipped ones: clip, split, reason). Skipped clips are reported, never silently dropped."""
    rows = rows.reset_index(drop=True)
    cache = MediaCache(profile.media_cache_dir)
    probe = _Probe(cache, rows["path"].astype(str).tolist(), profile.media.sample_rate)
    workers = min(profile.media.workers, max(len(rows) // 64, 0))
    loader = DataLoader(probe, batch_size=16, num_workers=workers, collate_fn=list, worker_init_fn=die_with_parent)
    lengths = np.zeros(len(rows), dtype=np.int64)
    errors = [""] * len(rows)
    for batch in tqdm(loader, desc=desc, unit="batch", disable=not progress, leave=False):
        for i, n, error in batch:
            lengths[i], errors[i] = n, error
    errors = pd.Series(errors, index=rows.index)
    bad = (errors != "") | (lengths == 0)
    errors[bad & (errors == "")] = "no audio samples"
    skipped = pd.DataFrame({"clip": rows["clip"][bad], "split": rows["split"][bad], "reason": errors[bad]})
    if len(skipped):
        shown = "; ".join(f"{c}: {r}" for c, r in zip(skipped["clip"][:EXAMPLES_SHOWN], skipped["reason"][:EXAMPLES_SHOWN]))
        tqdm.write(f"switch: skipped {len(skipped)} of {len(rows)} clip(s) ({desc}) that could not be decoded: {shown}")
    return rows[~bad].assign(samples=lengths[~bad]).reset_index(drop=True), skipped.reset_index(drop=True)


def fixed_length(lengths: np.ndarray, sample_rate: int) -> int:
    """The number of samples every clip is padded or cropped to: the most common clip length,
    at most MAX_SECONDS."""
    if len(lengths) == 0:
        raise ValueError("no decodable clips to take a length from")
    values, counts = np.unique(lengths, return_counts=True)
    return int(min(values[counts.argmax()], round(MAX_SECONDS * sample_rate)))


def fit_length(wave: np.ndarray, length: int) -> np.ndarray:
    """`wave` cropped to its first `length` samples or zero-padded at the end."""
    if len(wave) >= length:
        return wave[:length]
    return np.pad(wave, (0, length - len(wave)))


class Features:
    """Log-mel features of a list of clips, from the model's fixed front end. When the whole set
    fits in FEATURE_MEMORY_BYTES they are computed once and kept (the front end is fixed, so an
    epoch need not recompute them); otherwise each batch is decoded and transformed anew."""

    def __init__(self, model: Cnn14, profile: Profile, paths: list[str], length: int, device: torch.device,
                 progress: bool = False, desc: str = "features", keep: bool = True, chunk: int = 64):
        self.model, self.paths, self.length, self.device = model, paths, length, device
        self.cache = MediaCache(profile.media_cache_dir)
        self.sample_rate = profile.media.sample_rate
        frames = length // model.config["hop_size"] + 1
        self.kept: torch.Tensor | None = None
        if keep and len(paths) * frames * model.config["mel_bins"] * 4 <= FEATURE_MEMORY_BYTES:
            parts = [self._compute(np.arange(s, min(s + chunk, len(paths))))
                     for s in tqdm(range(0, len(paths), chunk), desc=desc, unit="chunk", disable=not progress, leave=False)]
            self.kept = torch.cat(parts).cpu() if parts else torch.empty(0, 1, frames, model.config["mel_bins"])

    def __len__(self) -> int:
        return len(self.paths)

    def _compute(self, idx: np.ndarray) -> torch.Tensor:
        waves = np.stack([fit_length(self.cache.audio(self.paths[i], self.sample_rate), self.length) for i in idx])
        return self.model.logmel(torch.from_numpy(waves).float().to(self.device))

    def get(self, idx: np.ndarray) -> torch.Tensor:
        if self.kept is not None:
            return self.kept[torch.as_tensor(idx)].to(self.device)
        return self._compute(idx)


def skip_report(skipped: pd.DataFrame) -> dict:
    return {
        "count": int(len(skipped)),
        "by_split": {str(k): int(v) for k, v in skipped["split"].value_counts().items()} if len(skipped) else {},
        "examples": skipped.head(EXAMPLES_SHOWN).to_dict(orient="records"),
    }
