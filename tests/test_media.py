"""Tests of xmd_core.media on the real VGGSound clips and on odd clips written here with PyAV."""

from __future__ import annotations

import math
import multiprocessing
import os
import struct
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile
from decord import AudioReader, cpu

import xmd_core
from xmd_core import media
from xmd_core.media import MediaCache, MediaError, export_inputs, load_audio, load_frames, probe

REAL_CLIPS_DIR = Path(xmd_core.__file__).resolve().parents[2] / "shared" / "media" / "vggsound_clips"
REAL_CLIPS = sorted(REAL_CLIPS_DIR.glob("*.mp4")) if REAL_CLIPS_DIR.is_dir() else []
needs_real_clips = pytest.mark.skipif(
    not REAL_CLIPS, reason=f"real VGGSound clips not found in {REAL_CLIPS_DIR} (shared/ is not beside the repo)"
)
MAX_PIXELS = 262144


# --- clip writers -------------------------------------------------------------------------------


def write_clip(
    path: Path,
    *,
    duration: float = 2.0,
    size: tuple[int, int] = (96, 160),
    fps: int = 25,
    audio_rate: int = 44100,
    layout: str = "stereo",
    tone_hz: float = 440.0,
    video: bool = True,
    audio: bool = True,
    faststart: bool = False,
) -> Path:
    """An mp4 (H.264 + AAC) whose frame i is flat grey at level 10 + 4*i and whose audio is a
    tone of amplitude 0.5 on every channel."""
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", format="mp4", options=options) as container:
        if video:
            vstream = container.add_stream("libx264", rate=fps)
            vstream.width, vstream.height, vstream.pix_fmt = size[0], size[1], "yuv420p"
            vstream.options = {"preset": "ultrafast", "qp": "0"}
        if audio:
            astream = container.add_stream("aac", rate=audio_rate, layout=layout)
        if video:
            frame_count = int(round(duration * fps))
            assert 10 + 4 * (frame_count - 1) <= 255, "clip too long for the frame-index encoding"
            for i in range(frame_count):
                image = np.full((size[1], size[0], 3), 10 + 4 * i, np.uint8)
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts = i
                container.mux(vstream.encode(frame))
            container.mux(vstream.encode(None))
        if audio:
            channels = av.AudioLayout(layout).nb_channels
            samples = np.repeat(0.5 * tone(tone_hz, duration, audio_rate)[None, :], channels, axis=0)
            for start in range(0, samples.shape[1], 1024):
                chunk = np.ascontiguousarray(samples[:, start : start + 1024])
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
                frame.sample_rate, frame.pts = audio_rate, start
                container.mux(astream.encode(frame))
            container.mux(astream.encode(None))
    return path


def tone(hz: float, duration: float, rate: int) -> np.ndarray:
    return np.sin(2 * np.pi * hz * np.arange(int(round(duration * rate))) / rate).astype(np.float32)


def dominant_hz(samples: np.ndarray, rate: int = 16000) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()])


def frame_index(frame: np.ndarray) -> int:
    """Inverse of write_clip's grey level."""
    return int(round((float(frame.mean()) - 10) / 4))


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """The odd clips, written once for the module."""
    root = tmp_path_factory.mktemp("clips")
    made = {
        "portrait": write_clip(root / "portrait.mp4", size=(96, 160)),
        "landscape": write_clip(root / "landscape.mp4", size=(160, 96)),
        "surround": write_clip(root / "surround.mp4", layout="5.1", audio_rate=48000),
        "narrowband": write_clip(root / "narrowband.mp4", layout="mono", audio_rate=8000),
        "no_audio": write_clip(root / "no_audio.mp4", audio=False),
        "audio_only": write_clip(root / "audio_only.mp4", video=False),
        "short": write_clip(root / "short.mp4", duration=0.6),
        "two_and_a_half": write_clip(root / "two_and_a_half.mp4", duration=2.5),
        "faststart": write_clip(root / "faststart.mp4", duration=2.0, faststart=True),
    }
    # Truncations: moov at the end (PyAV's default, like VGGSound) and moov at the start, where
    # the index survives and promises packets that are gone.
    for name in ("portrait", "faststart"):
        data = made[name].read_bytes()
        made[f"truncated_{name}"] = root / f"truncated_{name}.mp4"
        made[f"truncated_{name}"].write_bytes(data[: int(len(data) * 0.4)])
    data = bytearray(made["faststart"].read_bytes())
    rng = np.random.default_rng(0)
    quarter = len(data) // 4
    data[quarter : 3 * quarter] = rng.integers(0, 256, 2 * quarter, dtype=np.uint8).tobytes()
    made["garbled"] = root / "garbled.mp4"
    made["garbled"].write_bytes(bytes(data))
    made["empty"] = root / "empty.mp4"
    made["empty"].write_bytes(b"")
    made["text"] = root / "text.mp4"
    made["text"].write_text("this is a text file, not a video\n" * 20)
    made["missing"] = root / "missing.mp4"
    return made


# --- real VGGSound clips ------------------------------------------------------------------------


@needs_real_clips
@pytest.mark.parametrize("clip", REAL_CLIPS, ids=lambda p: p.stem)
def test_real_clip_audio_is_16k_mono_float32(clip: Path) -> None:
    samples = load_audio(clip)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(len(samples) - 10 * 16000) <= 0.01 * 10 * 16000
    assert np.all(np.abs(samples) <= 1.0) and np.abs(samples).max() > 0.01


@needs_real_clips
@pytest.mark.parametrize("clip", REAL_CLIPS, ids=lambda p: p.stem)
def test_real_clip_frames_one_per_second_within_pixel_budget(clip: Path) -> None:
    info = probe(clip)
    frames = load_frames(clip)
    count, height, width, channels = frames.shape
    assert (count, channels) == (10, 3) and frames.dtype == np.uint8
    assert height * width <= MAX_PIXELS
    assert width <= info.width and height <= info.height  # never upscaled
    if info.width * info.height <= MAX_PIXELS:
        assert (width, height) == (info.width, info.height)
    # Aspect kept to within one pixel of rounding.
    assert abs(width * info.height - height * info.width) <= max(info.width, info.height)
    if (info.width, info.height) == (1280, 720):
        assert abs(width - 682) <= 1 and abs(height - 384) <= 1


@needs_real_clips
def test_real_clip_probe() -> None:
    info = probe(REAL_CLIPS[0])
    assert info.path == REAL_CLIPS[0]
    assert info.has_audio and info.has_video
    assert 9.9 < info.duration_s < 10.2
    assert info.audio_rate == 44100 and info.audio_channels in (1, 2)
    assert info.fps is not None and 20 < info.fps < 31


@needs_real_clips
def test_real_clip_export_inputs_decode_back(tmp_path: Path) -> None:
    clip = min(REAL_CLIPS, key=lambda p: p.stat().st_size)
    written = export_inputs(clip, tmp_path / "out")
    assert set(written) == {"audio", "silent_video", "sounded_video"}
    assert written["audio"].name == "audio.wav"
    wav = soundfile.info(str(written["audio"]))
    assert (wav.samplerate, wav.channels, wav.subtype) == (16000, 1, "PCM_16")
    assert abs(wav.frames - len(load_audio(clip))) == 0
    frames = load_frames(clip)
    with av.open(str(written["silent_video"])) as silent:
        assert not silent.streams.audio
        (video,) = silent.streams.video
        assert video.codec_context.name == "h264"
        even_size = (frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2)
        assert (video.codec_context.height, video.codec_context.width) == even_size
        assert sum(1 for _ in silent.decode(video)) == len(frames)
    with av.open(str(written["sounded_video"])) as sounded:
        assert sounded.streams.video[0].codec_context.name == "h264"
        assert sounded.streams.audio[0].codec_context.name == "aac"
        assert sounded.streams.audio[0].codec_context.sample_rate == 16000
    # Our own loaders read the exports back to the same inputs.
    again = load_frames(written["silent_video"])
    assert again.shape == frames.shape
    assert np.abs(again.astype(int) - frames.astype(int)).mean() < 6
    assert np.all(np.isfinite(load_audio(written["sounded_video"])))
    assert not list((tmp_path / "out").glob("*.tmp"))


# --- audio: pitch, length, downmix --------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "channels"), [(8000, 1), (44100, 1), (44100, 2), (48000, 2), (8000, 6), (48000, 6)]
)
def test_resampling_keeps_pitch_and_length_exactly(tmp_path: Path, rate: int, channels: int) -> None:
    # PCM in WAV has no codec padding, so the expected length is exact.
    source = tone(440.0, 1.5, rate)
    path = tmp_path / f"tone_{rate}_{channels}.wav"
    soundfile.write(str(path), np.repeat(0.5 * source[:, None], channels, axis=1), rate, subtype="FLOAT")
    samples = load_audio(path)
    assert len(samples) == math.ceil(len(source) * 16000 / rate)
    assert abs(dominant_hz(samples) - 440.0) <= 2.0


@pytest.mark.parametrize("name", ["portrait", "surround", "narrowband"])
def test_aac_tone_keeps_pitch(clips: dict[str, Path], name: str) -> None:
    info = probe(clips[name])
    samples = load_audio(clips[name])
    assert abs(dominant_hz(samples) - 440.0) <= 2.0
    # AAC pads its last frame of 1024 source samples; the decoder may keep that padding.
    assert 0 <= len(samples) - 2.0 * 16000 <= math.ceil(1024 * 16000 / info.audio_rate)


def test_downmix_is_the_channel_average(tmp_path: Path) -> None:
    # Tone in the first channel only: the average is 1/6 of it. decord's own mono downmix would
    # give about 0.6 (libswresample's matrix), and the stereo one sqrt(2) times the average.
    path = tmp_path / "one_loud_channel.wav"
    data = np.zeros((16000, 6), np.float32)
    data[:, 0] = 0.6 * tone(440.0, 1.0, 16000)
    soundfile.write(str(path), data, 16000, subtype="FLOAT")
    samples = load_audio(path)
    assert abs(np.abs(samples).max() - 0.1) < 0.002
    stereo = tmp_path / "stereo.wav"
    soundfile.write(str(stereo), np.stack([data[:, 0], data[:, 0]], axis=1), 16000, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(stereo), data[:, 0], atol=1e-6)


def test_decord_multichannel_audio_is_still_broken(tmp_path: Path) -> None:
    """Why load_audio decodes multichannel audio with PyAV: if this starts failing, decord was
    fixed and the PyAV branch in load_audio can go."""
    path = tmp_path / "two_tones.wav"
    left, right = 0.5 * tone(440.0, 1.0, 16000), 0.5 * tone(660.0, 1.0, 16000)
    soundfile.write(str(path), np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    rows = AudioReader(str(path), ctx=cpu(0), sample_rate=-1, mono=False)[:].asnumpy()
    assert rows.shape == (2, 16000)
    assert not np.allclose(rows[0], left, atol=1e-3)


def test_audio_is_clamped_to_unit_range(tmp_path: Path) -> None:
    path = tmp_path / "loud.wav"
    soundfile.write(str(path), np.clip(1.2 * tone(440.0, 0.5, 44100), -1, 1), 44100, subtype="FLOAT")
    samples = load_audio(path)
    assert samples.max() <= 1.0 and samples.min() >= -1.0


# --- frames: count, choice, size ----------------------------------------------------------------


@pytest.mark.parametrize(("name", "count"), [("portrait", 2), ("two_and_a_half", 2), ("short", 1)])
def test_one_frame_per_second(clips: dict[str, Path], name: str, count: int) -> None:
    assert load_frames(clips[name]).shape[0] == count


def test_frames_are_taken_at_window_centres(clips: dict[str, Path]) -> None:
    # 25 fps: the frame shown at 0.5 s is 12, at 1.5 s 37; a 0.6-s clip's centre is at 0.3 s.
    assert [frame_index(f) for f in load_frames(clips["two_and_a_half"])] == [12, 37]
    assert [frame_index(f) for f in load_frames(clips["short"])] == [7]
    # fps=2 on a 2-s clip: windows of 0.5 s centred at 0.25, 0.75, 1.25, 1.75 s.
    assert [frame_index(f) for f in load_frames(clips["portrait"], fps=2.0)] == [6, 18, 31, 43]


def test_portrait_frames_keep_orientation_and_are_not_upscaled(clips: dict[str, Path]) -> None:
    frames = load_frames(clips["portrait"])
    assert frames.shape[1:] == (160, 96, 3)
    small = load_frames(clips["portrait"], max_pixels=4000)
    height, width = small.shape[1:3]
    assert height * width <= 4000 and height > width
    assert abs(width * 160 - height * 96) <= 160
    assert load_frames(clips["landscape"], max_pixels=4000).shape[1:3] == (width, height)


@pytest.mark.parametrize("width", [48, 50, 72])
def test_narrow_frames_survive_decord_row_padding(tmp_path: Path, width: int) -> None:
    # decord mis-shapes frames 48 or 72 pixels wide (its rows are padded); 50 is a control.
    path = tmp_path / f"narrow_{width}.mp4"
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=2)
        stream.width, stream.height, stream.pix_fmt = width, 32, "yuv420p"
        stream.options = {"qp": "0", "preset": "ultrafast"}
        for i in range(4):
            image = np.zeros((32, width, 3), np.uint8)
            image[..., 0] = (np.arange(width) * 5 + 40 * i)[None, :] % 256
            image[..., 1] = (np.arange(32) * 7)[:, None]
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with av.open(str(path)) as container:
        reference = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    frames = load_frames(path)  # 2 s at 2 fps: the frames shown at 0.5 s and 1.5 s
    np.testing.assert_array_equal(frames, np.stack([reference[1], reference[3]]))
    # And when decord's scaler is asked for such a width (48 -> 24 is another bad one).
    resized = load_frames(path, max_pixels=(width // 2) * 16)
    assert resized.shape == (2, 16, width // 2, 3)
    assert abs(float(resized[0].mean()) - float(reference[1].mean())) < 3


def test_rotated_clip_is_sized_upright(tmp_path: Path) -> None:
    # A clip coded 96x160 with a quarter-turn display matrix: decord turns it to 160x96, so the
    # size must come from the upright picture or decord would squeeze it.
    path = write_clip(tmp_path / "sideways.mp4", duration=1.0, size=(96, 160), audio=False)
    data = bytearray(path.read_bytes())
    tkhd = data.find(b"tkhd")
    assert tkhd > 0 and data[tkhd + 4] == 0  # version 0 track header
    matrix = tkhd + 4 + 4 + 5 * 4 + 8 + 4 * 2  # after the times, ids, layer, group, volume
    assert struct.unpack(">9i", data[matrix : matrix + 36]) == (65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30)
    data[matrix : matrix + 36] = struct.pack(">9i", 0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30)
    path.write_bytes(bytes(data))
    info = probe(path)
    assert (info.width, info.height) == (160, 96)
    assert load_frames(path).shape == (1, 96, 160, 3)
    small = load_frames(path, max_pixels=4000)
    assert small.shape[1:3] == (media.fit_size(160, 96, 4000)[1], media.fit_size(160, 96, 4000)[0])


def test_fit_size() -> None:
    assert media.fit_size(1280, 720, MAX_PIXELS) == (682, 384)
    assert media.fit_size(128, 96, MAX_PIXELS) == (128, 96)
    assert media.fit_size(512, 512, MAX_PIXELS) == (512, 512)
    assert media.fit_size(100000, 2, 100) == (100, 1)  # a side held at 1 px
    assert media.fit_size(3, 100000, 100) == (1, 100)


def test_probe_reports_streams(clips: dict[str, Path]) -> None:
    info = probe(clips["surround"])
    assert (info.width, info.height, info.fps) == (96, 160, 25.0)
    assert (info.audio_rate, info.audio_channels) == (48000, 6)
    assert abs(info.duration_s - 2.0) < 0.05
    only_audio = probe(clips["audio_only"])
    assert only_audio.has_audio and not only_audio.has_video
    assert only_audio.width is None and only_audio.fps is None


# --- missing streams and broken files -----------------------------------------------------------


def test_missing_audio_stream(clips: dict[str, Path]) -> None:
    with pytest.raises(MediaError, match="no audio stream") as caught:
        load_audio(clips["no_audio"])
    assert "no_audio.mp4" in str(caught.value)
    assert load_frames(clips["no_audio"]).shape == (2, 160, 96, 3)


def test_missing_video_stream(clips: dict[str, Path]) -> None:
    with pytest.raises(MediaError, match="no video stream") as caught:
        load_frames(clips["audio_only"])
    assert "audio_only.mp4" in str(caught.value)
    assert abs(len(load_audio(clips["audio_only"])) - 32000) <= 400


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("missing", "file not found"),
        ("empty", "empty file"),
        ("text", "unreadable container"),
        ("truncated_portrait", "unreadable container"),
        ("truncated_faststart", "truncated"),
    ],
)
@pytest.mark.parametrize("function", [probe, load_audio, load_frames], ids=lambda f: f.__name__)
def test_broken_files_raise_media_error_naming_the_file(clips, name, problem, function) -> None:
    with pytest.raises(MediaError, match=problem) as caught:
        function(clips[name])
    assert clips[name].name in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.timeout(60)
def test_garbled_middle_raises_media_error(clips: dict[str, Path]) -> None:
    # The index and first frames are intact, so probe passes; decord then fails on the garbage
    # (a C++ check it reports as DECORDError) and PyAV fails on the stereo audio.
    probe(clips["garbled"])
    with pytest.raises(MediaError, match="garbled.mp4.*video stream"):
        load_frames(clips["garbled"])
    with pytest.raises(MediaError, match="garbled.mp4.*audio stream"):
        load_audio(clips["garbled"])


def test_damaged_mono_audio_is_not_silently_shortened(tmp_path: Path) -> None:
    # decord's AudioReader stops at the first bad packet and returns the audio before it.
    clean = write_clip(tmp_path / "mono.mp4", duration=3.0, layout="mono", video=False, faststart=True)
    data = bytearray(clean.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 2000] = bytes(2000)
    damaged = tmp_path / "damaged_mono.mp4"
    damaged.write_bytes(bytes(data))
    probe(damaged)  # the index and the first packet are intact
    with pytest.raises(MediaError, match=r"damaged_mono.mp4: audio stream decodes to 1\.\d+ s of its declared 3\.00 s"):
        load_audio(damaged)


def test_invalid_settings_are_value_errors(clips: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="fps"):
        load_frames(clips["portrait"], fps=0)
    with pytest.raises(ValueError, match="max_pixels"):
        load_frames(clips["portrait"], max_pixels=0)
    with pytest.raises(ValueError, match="sample_rate"):
        load_audio(clips["portrait"], sample_rate=-1)


# --- cache --------------------------------------------------------------------------------------


@pytest.fixture
def counted(monkeypatch) -> dict[str, int]:
    """Count calls of the decoders behind the cache."""
    calls = {"load_frames": 0, "load_audio": 0}
    for name in calls:
        original = getattr(media, name)

        def wrapper(*args, _original=original, _name=name, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(media, name, wrapper)
    return calls


def cache_entries(root: Path) -> list[Path]:
    return sorted(root.glob("*/*.npy"))


def test_cache_decodes_once(tmp_path: Path, clips, counted) -> None:
    cache = MediaCache(tmp_path / "cache")
    first = cache.frames(clips["portrait"])
    second = cache.frames(clips["portrait"])
    np.testing.assert_array_equal(first, second)
    assert counted["load_frames"] == 1
    audio = cache.audio(clips["portrait"])
    np.testing.assert_array_equal(audio, cache.audio(clips["portrait"]))
    assert counted["load_audio"] == 1
    entries = cache_entries(tmp_path / "cache")
    assert len(entries) == 2
    assert all(entry.parent.name == entry.name[:2] for entry in entries)  # sharded by key prefix


def test_cache_settings_give_separate_entries(tmp_path: Path, clips, counted) -> None:
    cache = MediaCache(tmp_path / "cache")
    one = cache.frames(clips["two_and_a_half"], fps=1.0)
    two = cache.frames(clips["two_and_a_half"], fps=2.0)
    small = cache.frames(clips["two_and_a_half"], max_pixels=4000)
    assert (len(one), len(two), small.shape[1] * small.shape[2] <= 4000) == (2, 5, True)
    cache.audio(clips["two_and_a_half"], sample_rate=16000)
    cache.audio(clips["two_and_a_half"], sample_rate=8000)
    assert counted == {"load_frames": 3, "load_audio": 2}
    assert len(cache_entries(tmp_path / "cache")) == 5
    cache.frames(clips["two_and_a_half"], fps=2)  # an int setting hits the float entry
    assert counted["load_frames"] == 3


def test_cache_invalidated_when_the_file_changes(tmp_path: Path, clips, counted) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(clips["portrait"].read_bytes())
    cache = MediaCache(tmp_path / "cache")
    before = cache.frames(clip)
    stat = clip.stat()
    os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # touch
    cache.frames(clip)
    assert counted["load_frames"] == 2
    clip.write_bytes(clips["landscape"].read_bytes())  # rewrite with other content
    after = cache.frames(clip)
    assert counted["load_frames"] == 3
    assert before.shape[1:3] == (160, 96) and after.shape[1:3] == (96, 160)


def test_cache_does_not_store_errors(tmp_path: Path, clips, counted) -> None:
    cache = MediaCache(tmp_path / "cache")
    for _ in range(2):
        with pytest.raises(MediaError, match="no audio stream"):
            cache.audio(clips["no_audio"])
    with pytest.raises(MediaError, match="file not found"):
        cache.frames(clips["missing"])
    assert counted["load_audio"] == 2
    assert not cache_entries(tmp_path / "cache")


def test_cache_failed_write_leaves_nothing(tmp_path: Path, clips, monkeypatch) -> None:
    def broken_save(target, array):
        Path(target).write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(media, "_save_npy", broken_save)
    cache = MediaCache(tmp_path / "cache")
    with pytest.raises(OSError, match="disk full"):
        cache.frames(clips["portrait"])
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


def _fill_cache(root: str, clip: str, barrier) -> None:
    barrier.wait()
    MediaCache(Path(root)).frames(clip)


@pytest.mark.timeout(120)
def test_cache_concurrent_fill(tmp_path: Path, clips) -> None:
    # spawn, not fork: the parent may hold torch/OpenMP threads, which fork does not survive.
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    root = tmp_path / "cache"
    workers = [
        context.Process(target=_fill_cache, args=(str(root), str(clips["faststart"]), barrier)) for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=100)
        assert worker.exitcode == 0
    (entry,) = cache_entries(root)
    assert not [p for p in root.rglob("*.tmp")]
    np.testing.assert_array_equal(np.load(entry), load_frames(clips["faststart"]))
    np.testing.assert_array_equal(MediaCache(root).frames(clips["faststart"]), np.load(entry))
