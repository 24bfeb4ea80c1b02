"""Decoding clips into the paper's model inputs: 16 kHz mono audio and 1-fps frames.

Frames are decoded with decord, audio with decord's ``AudioReader`` for mono streams. PyAV
checks every file first (:func:`probe`) because decord has no notion of a bad input: on
broken files it raises a C++ check failure at best, and at worst returns uninitialised memory
or the audio before the first damaged packet, silently. PyAV also writes the exported files.

decord 0.6.0 defects this module works around (each pinned by a test):

* ``AudioReader(mono=False)`` on a stream with more than one channel copies channel ``c`` to a
  byte offset where an element offset was meant, so rows overwrite each other and the last rows
  hold uninitialised memory (NaN, 3e38 and the like);
* ``AudioReader(mono=True)`` downmixes with libswresample's matrix, (L+R)/sqrt(2) for stereo
  and more for 5.1, which is louder than the channel average and clips;
* ``AudioReader`` stops at a damaged packet and returns the audio before it without an error;
* frames some widths wide (8, 12, 16, 24, 48, 72 ...) come back mis-shaped, and ``get_batch``
  fails on them.

So mono audio is read by decord and checked against its declared length, and multichannel
audio is decoded with PyAV and its channels averaged; both at the native rate, then resampled
with ``torchaudio.functional.resample`` (windowed sinc: pitch and length are kept).

Truncated files raise :class:`MediaError` rather than giving the part that decodes: a clip that
lost its tail would silently shorten every input built from it, so :func:`probe` refuses it and
the data index can drop it with a reason.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile
import torch
import torchaudio.functional
from decord import AudioReader, DECORDError, VideoReader, cpu

from .keys import key_digest
from .atomic import write_atomically

__all__ = [
    "MediaError",
    "ClipInfo",
    "probe",
    "load_audio",
    "load_frames",
    "export_inputs",
    "MediaCache",
]

# An index may list one packet more than the file holds without any damage (a VGGSound clip
# lists 476 audio packets and holds 475), so only a larger gap means truncation.
_MISSING_PACKETS_ALLOWED = 1

# How many samples (at the native rate) decoded audio may fall short of its declared duration:
# codec priming and padding trimmed by the decoder (VGGSound clips lose up to about 1,100).
_AUDIO_SHORTFALL_ALLOWED = 4096

# Part of every cache key: bump it when the decoded arrays would change for the same settings.
_CACHE_FORMAT = 1


class MediaError(ValueError):
    """A clip cannot give what was asked: missing, empty, unreadable, or lacking a stream."""


@dataclass(frozen=True)
class ClipInfo:
    """What :func:`probe` found in a clip; the stream fields are None when that stream is absent.

    width and height are those of the upright picture (as decord returns frames): a clip stored
    sideways with a quarter-turn display matrix reports its sides swapped.
    """

    path: Path
    duration_s: float
    has_audio: bool
    has_video: bool
    width: int | None
    height: int | None
    fps: float | None
    audio_rate: int | None
    audio_channels: int | None


def probe(path: str | os.PathLike) -> ClipInfo:
    """Describe a clip after checking that decord can safely be given it.

    Opens the container with PyAV, reads every packet (cheap: no decoding) to compare with the
    container's index, and decodes the first frame of the first video and audio stream.
    Raises MediaError for a missing, empty, unreadable, truncated or undecodable file.
    """
    return _inspect(path)[0]


def _inspect(path: str | os.PathLike) -> tuple[ClipInfo, float | None]:
    """:func:`probe`, plus the audio stream's declared duration in seconds (None without audio)."""
    path = Path(path)
    if not path.exists():
        raise MediaError(f"{path}: file not found")
    if not path.is_file():
        raise MediaError(f"{path}: not a regular file")
    size = path.stat().st_size
    if size == 0:
        raise MediaError(f"{path}: empty file (0 bytes)")
    try:
        # Metadata is not used; undecodable tag bytes (seen in damaged files) must not fail.
        container = av.open(str(path), metadata_errors="replace")
    except av.FFmpegError as err:
        raise MediaError(f"{path}: unreadable container ({err})") from err
    with container:
        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        if video is None and audio is None:
            raise MediaError(f"{path}: no audio or video stream (not a media file, or a damaged header)")
        streams = [s for s in (video, audio) if s is not None]
        first_frames = _check_packets_and_first_frames(path, container, streams)
        stream_s = {s.index: float(s.duration * s.time_base) for s in streams if s.duration}
        if container.duration is not None:
            duration_s = container.duration / av.time_base
        elif stream_s:
            duration_s = max(stream_s.values())
        else:
            raise MediaError(f"{path}: neither the container nor its streams declare a duration")
        audio_s = stream_s.get(audio.index, duration_s) if audio is not None else None
        fps = width = height = None
        if video is not None:
            rate = video.average_rate or video.guessed_rate
            fps = float(rate) if rate else None
            width, height = video.codec_context.width, video.codec_context.height
            # decord turns frames upright by the display matrix, so a quarter turn swaps sides.
            if round(first_frames[video.index].rotation) % 180 == 90:
                width, height = height, width
        info = ClipInfo(
            path=path,
            duration_s=float(duration_s),
            has_audio=audio is not None,
            has_video=video is not None,
            width=width,
            height=height,
            fps=fps,
            audio_rate=audio.codec_context.sample_rate if audio is not None else None,
            audio_channels=audio.codec_context.layout.nb_channels if audio is not None else None,
        )
        return info, audio_s


def _check_packets_and_first_frames(path: Path, container, streams: list) -> dict:
    """One demux pass: every indexed packet is present, and each stream decodes a first frame.

    Returns the first decoded frame of each stream, by stream index.
    """
    for stream in streams:
        if stream.codec_context is None:  # PyAV found no decoder for the stream's codec
            raise MediaError(f"{path}: {stream.type} stream has an unknown codec (no decoder)")
    counts = {s.index: 0 for s in streams}
    first = {}
    try:
        for packet in container.demux(*streams):
            if packet.size == 0:  # PyAV's end-of-stream flush packet
                continue
            counts[packet.stream.index] += 1
            if packet.stream.index not in first:
                frames = _decode_packet(path, packet)
                if frames:
                    first[packet.stream.index] = frames[0]
    except av.FFmpegError as err:
        raise MediaError(f"{path}: unreadable container while reading packets ({err})") from err
    for stream in streams:
        if stream.index not in first:
            try:
                frames = stream.codec_context.decode(None)
            except av.FFmpegError as err:
                raise MediaError(f"{path}: {stream.type} stream does not decode ({err})") from err
            if not frames:
                raise MediaError(f"{path}: {stream.type} stream has no decodable frame")
            first[stream.index] = frames[0]
        declared = stream.frames
        if declared and counts[stream.index] < declared - _MISSING_PACKETS_ALLOWED:
            raise MediaError(
                f"{path}: truncated or damaged file: the {stream.type} stream's index lists "
                f"{declared} packets but only {counts[stream.index]} are in the file"
            )
    return first


def _decode_packet(path: Path, packet) -> list:
    try:
        return packet.decode()
    except av.FFmpegError as err:
        raise MediaError(f"{path}: {packet.stream.type} stream does not decode ({err})") from err


def load_audio(path: str | os.PathLike, sample_rate: int = 16000) -> np.ndarray:
    """Decode a clip's audio as float32 mono 1-D samples at ``sample_rate``, within [-1, 1].

    Channels are averaged at the native rate, then resampled with torchaudio.
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    info, declared_s = _inspect(path)
    if not info.has_audio:
        raise MediaError(f"{info.path}: no audio stream (the file has only a video stream)")
    if info.audio_channels == 1:
        native = _decord_mono_audio(info.path)
    else:
        native = _pyav_channel_average(info.path)
    if not np.all(np.isfinite(native)):
        raise MediaError(f"{info.path}: audio stream decodes to non-finite samples")
    # decord stops at the first damaged packet and returns what came before it, without an error.
    if len(native) < declared_s * info.audio_rate - _AUDIO_SHORTFALL_ALLOWED:
        raise MediaError(
            f"{info.path}: audio stream decodes to {len(native) / info.audio_rate:.2f} s of its "
            f"declared {declared_s:.2f} s (a damaged packet stops the decoder)"
        )
    waveform = torch.from_numpy(native)
    if info.audio_rate != sample_rate:
        waveform = torchaudio.functional.resample(waveform, info.audio_rate, sample_rate)
    # AAC decoding and resampling ring slightly past full scale; the contract is [-1, 1].
    return np.ascontiguousarray(waveform.clamp_(-1.0, 1.0).numpy(), dtype=np.float32)


def _decord_mono_audio(path: Path) -> np.ndarray:
    """A mono stream at its native rate (sample_rate=-1 keeps decord's resampler out of it)."""
    try:
        reader = AudioReader(str(path), ctx=cpu(0), sample_rate=-1, mono=False)
        samples = reader[:].asnumpy()
    except (DECORDError, RuntimeError) as err:
        raise MediaError(f"{path}: decord could not decode the audio stream ({err})") from err
    if samples.ndim != 2 or samples.shape[0] != 1 or samples.shape[1] == 0:
        raise MediaError(f"{path}: decord returned audio of shape {samples.shape} for a mono stream")
    return samples[0].astype(np.float32, copy=False)


def _pyav_channel_average(path: Path) -> np.ndarray:
    """Average of all channels at the native rate (decord cannot return them, see module doc)."""
    chunks = []
    try:
        with av.open(str(path), metadata_errors="replace") as container:
            stream = container.streams.audio[0]
            # Planar float at the native layout and rate: a format change, never a resampling.
            to_planar = av.AudioResampler(format="fltp", layout=stream.layout, rate=stream.rate)
            for frame in container.decode(stream):
                for planar in to_planar.resample(frame):
                    chunks.append(planar.to_ndarray().mean(axis=0))
            for planar in to_planar.resample(None):
                chunks.append(planar.to_ndarray().mean(axis=0))
    except av.FFmpegError as err:
        raise MediaError(f"{path}: audio stream does not decode ({err})") from err
    if not chunks:
        raise MediaError(f"{path}: audio stream decodes to no samples")
    return np.concatenate(chunks).astype(np.float32, copy=False)


def fit_size(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    """Largest (width, height) with the same aspect ratio and at most ``max_pixels``; never larger."""
    if width * height <= max_pixels:
        return width, height
    scale = math.sqrt(max_pixels / (width * height))
    # Flooring both sides keeps the product within max_pixels, unless a side had to be raised
    # to one pixel; then the other side gives way.
    new_width, new_height = max(1, math.floor(width * scale)), max(1, math.floor(height * scale))
    if new_width * new_height > max_pixels:
        if new_width == 1:
            new_height = max_pixels
        else:
            new_width = max_pixels
    return new_width, new_height


def load_frames(path: str | os.PathLike, fps: float = 1.0, max_pixels: int = 262144) -> np.ndarray:
    """Decode ``fps`` frames per second of a clip as uint8 (T, H, W, 3), H*W <= max_pixels.

    The clip is cut into windows of 1/fps seconds; a window counts when the clip covers it
    (to within one source frame, since encoders drop or shorten the last one), so a 10-s clip
    gives 10 frames at fps=1, a 2.5-s clip 2, and a clip shorter than a window 1. Each window
    gives the frame on screen at its centre. Frames are resized by decord (FFmpeg's bicubic
    scaler) to :func:`fit_size`: aspect ratio kept, never upscaled.
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if max_pixels <= 0:
        raise ValueError(f"max_pixels must be positive, got {max_pixels}")
    info = probe(path)
    if not info.has_video:
        raise MediaError(f"{info.path}: no video stream (the file has only an audio stream)")
    width, height = fit_size(info.width, info.height, max_pixels)
    try:
        if (width, height) == (info.width, info.height):
            reader = VideoReader(str(info.path), ctx=cpu(0))
        else:
            reader = VideoReader(str(info.path), ctx=cpu(0), width=width, height=height)
        count = len(reader)
        if count == 0:
            raise MediaError(f"{info.path}: video stream has no frames")
        times = np.asarray(reader.get_frame_timestamp(list(range(count))), dtype=np.float64)
        # One frame at a time rather than get_batch: get_batch fails outright on the widths
        # _unpad_row fixes (as fast: decord seeks the same way for both).
        raw = [reader[int(i)].asnumpy() for i in _window_centre_frames(times, fps)]
    except (DECORDError, RuntimeError) as err:
        raise MediaError(f"{info.path}: decord could not decode the video stream ({err})") from err
    return np.stack([_unpad_row(info.path, frame, height, width) for frame in raw])


def _unpad_row(path: Path, frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """Undo decord 0.6.0's mis-shaping of frames whose RGB rows FFmpeg pads.

    FFmpeg pads each row of W*3 bytes to a multiple of 32; when the padded row divides evenly by
    W (widths 8, 12, 16, 24, 48, 72, ...) decord shapes the buffer as (H, W, row // W) instead of
    (H, W, 3). The first W*3 bytes of each row are the pixels.
    """
    if frame.shape == (height, width, 3) and frame.dtype == np.uint8:
        return frame
    if frame.dtype != np.uint8 or frame.shape[:2] != (height, width) or frame.shape[2] < 3:
        raise MediaError(
            f"{path}: decord returned a video frame of shape {frame.shape} and type {frame.dtype}, "
            f"expected {(height, width, 3)} uint8"
        )
    return frame.reshape(height, -1)[:, : width * 3].reshape(height, width, 3)


def _window_centre_frames(times: np.ndarray, fps: float) -> list[int]:
    """Index of the frame shown at the centre of each 1/fps window.

    ``times`` holds each frame's (start, end) in seconds. Frames before 0 are the pre-roll an
    edit list hides (real VGGSound clips have a second of them), so the clip starts at 0 or at
    its first frame, whichever is later. A centre on a frame boundary (0.5 s at 30 fps) takes
    the frame that starts there, the one on screen from that instant.
    """
    start = max(0.0, float(times[:, 0].min()))
    end = float(times[:, 1].max())
    window = 1.0 / fps
    # Encoders may drop or shorten the last frame, so a clip short of a whole window by less
    # than a frame (capped at half a window, for sources with long frames) still counts it.
    slack = min(float(np.median(times[:, 1] - times[:, 0])), window / 2)
    count = max(1, math.floor((end - start + slack) / window + 1e-9))
    lows = start + window * np.arange(count)
    # The last window is cut at the clip's end so a short clip gives its own middle frame.
    highs = np.minimum(lows + window, end)
    centres = (lows + highs) / 2
    order = np.argsort(times[:, 0], kind="stable")
    # decord's timestamps are float32: 0.1 ms of tolerance settles boundaries the same way
    # whatever the rounding (frames are far longer than that).
    shown = np.searchsorted(times[order, 0], centres + 1e-4, side="right") - 1
    return order[np.clip(shown, 0, len(order) - 1)].tolist()


def export_inputs(
    path: str | os.PathLike,
    out_dir: str | os.PathLike,
    sample_rate: int = 16000,
    fps: float = 1.0,
    max_pixels: int = 262144,
) -> dict[str, Path]:
    """Write the paper's three inputs for one clip into ``out_dir``.

    ``audio.wav`` is 16-bit PCM mono at ``sample_rate``; ``silent_video.mp4`` is H.264 holding
    exactly the frames of :func:`load_frames` at ``fps``; ``sounded_video.mp4`` is the same video
    plus the same mono audio as AAC, so all three conditions carry the signal the models get.
    H.264 (4:2:0) needs even sides: an odd last row or column is dropped from the mp4 files.
    Each file appears atomically, so a reader never sees a half-written one.
    """
    audio = load_audio(path, sample_rate)
    frames = load_frames(path, fps, max_pixels)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    targets = {
        "audio": out_dir / "audio.wav",
        "silent_video": out_dir / "silent_video.mp4",
        "sounded_video": out_dir / "sounded_video.mp4",
    }
    write_atomically(
        targets["audio"], lambda tmp: soundfile.write(tmp, audio, sample_rate, subtype="PCM_16", format="WAV")
    )
    write_atomically(targets["silent_video"], lambda tmp: _write_mp4(tmp, frames, fps, None, sample_rate))
    write_atomically(targets["sounded_video"], lambda tmp: _write_mp4(tmp, frames, fps, audio, sample_rate))
    return targets


def _write_mp4(target: str, frames: np.ndarray, fps: float, audio: np.ndarray | None, sample_rate: int) -> None:
    height, width = frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2
    rate = Fraction(fps).limit_denominator(1000)
    with av.open(target, "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = container.add_stream("aac", rate=sample_rate, layout="mono") if audio is not None else None
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:height, :width]), format="rgb24")
            frame.pts, frame.time_base = i, 1 / rate
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if sound is not None:
            frame = av.AudioFrame.from_ndarray(audio[None, :], format="flt", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = sample_rate, 0, Fraction(1, sample_rate)
            # PyAV re-chunks the samples into the encoder's 1024-sample frames.
            container.mux(sound.encode(frame))
            container.mux(sound.encode(None))


def _save_npy(target: str, array: np.ndarray) -> None:
    # Through a file object: given a name, np.save would append ".npy" to the temp name.
    with open(target, "wb") as handle:
        np.save(handle, array)


class MediaCache:
    """Disk cache of decoded arrays, so each clip is decoded once per settings in a study.

    An entry's key hashes the clip's resolved path, size and mtime_ns, the function and its
    settings, so rewriting or touching a clip, or changing a setting, misses the old entry
    (which stays on disk until the cache folder is removed). Entries are .npy files sharded by
    the key's first two hex digits. Several processes may fill the cache at once: each writes a
    private temp file and renames it into place, and the rename is atomic, so a reader sees
    either no entry or a whole one. Errors are not cached.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def audio(self, path: str | os.PathLike, sample_rate: int = 16000) -> np.ndarray:
        """:func:`load_audio`, through the cache."""
        settings = {"sample_rate": int(sample_rate)}
        return self._get(path, "load_audio", settings, lambda: load_audio(path, sample_rate))

    def frames(self, path: str | os.PathLike, fps: float = 1.0, max_pixels: int = 262144) -> np.ndarray:
        """:func:`load_frames`, through the cache."""
        settings = {"fps": float(fps), "max_pixels": int(max_pixels)}
        return self._get(path, "load_frames", settings, lambda: load_frames(path, fps, max_pixels))

    def entry_path(self, path: str | os.PathLike, function: str, settings: dict) -> Path:
        """Where the entry for (clip as it is now, function, settings) lives."""
        clip = Path(path)
        try:
            stat = clip.stat()
        except FileNotFoundError as err:
            raise MediaError(f"{clip}: file not found") from err
        identity = [str(clip.resolve()), stat.st_size, stat.st_mtime_ns, function, settings, _CACHE_FORMAT]
        key = key_digest(identity, None)
        return self.root / key[:2] / f"{key}.npy"

    def _get(self, path, function: str, settings: dict, decode) -> np.ndarray:
        entry = self.entry_path(path, function, settings)
        if entry.exists():
            return np.load(entry)
        array = decode()
        entry.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(entry, lambda tmp: _save_npy(tmp, array))
        return array
