"""Decoding speed on the real VGGSound clips: 1-fps frames and 16 kHz audio versus a full decode.

Run with ``python -m benchmarks.bench_media`` (or through ``benchmarks.run``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from decord import VideoReader, cpu

import xmd_core
from xmd_core.media import load_audio, load_frames

CLIPS_DIR = Path(xmd_core.__file__).resolve().parents[2] / "shared" / "media" / "vggsound_clips"
REPEATS = 2


def _clips_per_second(clips: list[Path], decode) -> tuple[float, float]:
    """(clips/s, seconds) for decoding every clip REPEATS times."""
    start = time.perf_counter()
    for _ in range(REPEATS):
        for clip in clips:
            decode(clip)
    seconds = time.perf_counter() - start
    return REPEATS * len(clips) / seconds, seconds


def _decode_every_frame(clip: Path) -> np.ndarray:
    reader = VideoReader(str(clip), ctx=cpu(0))
    return reader.get_batch(range(len(reader))).asnumpy()


def run() -> dict:
    """Print and return clips/s of load_frames (1 fps, 262,144 px), a full decord decode, and load_audio."""
    clips = sorted(CLIPS_DIR.glob("*.mp4"))
    if not clips:
        raise FileNotFoundError(f"no real VGGSound clips in {CLIPS_DIR}: shared/ must sit beside the repo")
    load_frames(clips[0])  # warm-up: first decord and torch calls pay one-off start-up costs
    load_audio(clips[0])
    frames_rate, frames_s = _clips_per_second(clips, lambda c: load_frames(c, fps=1.0, max_pixels=262144))
    full_rate, full_s = _clips_per_second(clips, _decode_every_frame)
    audio_rate, audio_s = _clips_per_second(clips, load_audio)
    figures = {
        "clips": len(clips),
        "repeats": REPEATS,
        "load_frames_1fps_clips_per_s": round(frames_rate, 2),
        "decord_all_frames_clips_per_s": round(full_rate, 2),
        "load_frames_speedup": round(frames_rate / full_rate, 2),
        "load_audio_clips_per_s": round(audio_rate, 2),
        "seconds": {"load_frames": round(frames_s, 1), "all_frames": round(full_s, 1), "load_audio": round(audio_s, 1)},
    }
    print(f"{len(clips)} real clips x {REPEATS} repeats")
    print(f"load_frames (1 fps, <= 262,144 px): {frames_rate:6.2f} clips/s")
    speedup = frames_rate / full_rate
    print(f"decord, every frame, native size:   {full_rate:6.2f} clips/s  (load_frames {speedup:.1f}x faster)")
    print(f"load_audio (16 kHz mono):           {audio_rate:6.2f} clips/s")
    return figures


if __name__ == "__main__":
    run()
