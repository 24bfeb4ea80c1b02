"""Cnn14 (Kong et al., PANNs, 2020) for 16 kHz audio, with the parameter names of PANNs' checkpoints.

The layout follows the published architecture: a log-mel front end (an STFT written as a 1-D
convolution with fixed DFT kernels, a Slaney mel filterbank, decibels), batch norm over the mel
bins, six blocks of two 3x3 convolutions with batch norm and ReLU and a 2x2 average pool between
blocks, then mean over frequency, max + mean over time, a fully connected embedding layer and the
AudioSet output layer. At ``width=64`` every parameter and buffer has the name and shape of
``Cnn14_16k_mAP=0.438.pth`` (see ``shared/specs/cnn14_16k_state_dict_shapes.json``), so the
official weights load with ``strict=True``; smaller widths give the same network with fewer
channels for CPU runs. Augmentation (SpecAugment, mixup) is left out: the switch does not use it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

BLOCK_MULTIPLIERS = (1, 2, 4, 8, 16, 32)  # channels of the six blocks, in units of `width`
AMIN = 1e-10  # floor of the mel power before the logarithm (PANNs: amin 1e-10, ref 1, no top_db)


# --- front end -------------------------------------------------------------------------------------


def hann_window(n: int) -> np.ndarray:
    """The periodic Hann window of length `n` (the window of an STFT, as scipy's `fftbins=True`)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def dft_kernels(n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    """Real and imaginary parts of the windowed DFT rows 0..n_fft//2, each (n_fft//2+1, n_fft).

    Row k convolved with a frame gives sum_n w[n] x[n] exp(-2 pi i k n / n_fft).
    """
    k = np.arange(n_fft // 2 + 1)[:, None]
    n = np.arange(n_fft)[None, :]
    angle = -2.0 * np.pi * ((k * n) % n_fft) / n_fft  # reduce mod n_fft first: exact phases
    window = hann_window(n_fft)[None, :]
    return np.cos(angle) * window, np.sin(angle) * window


# Slaney's mel scale: linear below 1 kHz (3 mels per 200 Hz), logarithmic above.
_HZ_PER_MEL = 200.0 / 3.0
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _HZ_PER_MEL
_LOG_STEP = math.log(6.4) / 27.0


def hz_to_mel_slaney(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz (3 mels per 200 Hz), logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    log = _MIN_LOG_MEL + np.log(np.maximum(hz, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOG_STEP
    return np.where(hz >= _MIN_LOG_HZ, log, hz / _HZ_PER_MEL)


def mel_to_hz_slaney(mel: np.ndarray) -> np.ndarray:
    """The inverse of :func:`hz_to_mel_slaney`."""
    mel = np.asarray(mel, dtype=np.float64)
    log = _MIN_LOG_HZ * np.exp(_LOG_STEP * (mel - _MIN_LOG_MEL))
    return np.where(mel >= _MIN_LOG_MEL, log, _HZ_PER_MEL * mel)


def slaney_mel_filterbank(sample_rate: int, n_fft: int, mel_bins: int, fmin: float, fmax: float) -> np.ndarray:
    """Triangular filters evenly spaced on Slaney's mel scale, each scaled to unit area
    (Slaney normalisation: 2 / bandwidth in Hz); shape (n_fft//2+1, mel_bins)."""
    fft_hz = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges_hz = mel_to_hz_slaney(np.linspace(hz_to_mel_slaney(fmin), hz_to_mel_slaney(fmax), mel_bins + 2))
    widths = np.diff(edges_hz)
    bank = np.zeros((mel_bins, fft_hz.size))
    for m in range(mel_bins):
        rising = (fft_hz - edges_hz[m]) / widths[m]
        falling = (edges_hz[m + 2] - fft_hz) / widths[m + 1]
        bank[m] = np.maximum(0.0, np.minimum(rising, falling))
    bank *= (2.0 / (edges_hz[2 : mel_bins + 2] - edges_hz[:mel_bins]))[:, None]
    return bank.T


class _Stft(nn.Module):
    """Centred STFT as two strided 1-D convolutions (real and imaginary parts); frozen."""

    def __init__(self, n_fft: int, hop: int):
        super().__init__()
        self.n_fft = n_fft
        self.conv_real = nn.Conv1d(1, n_fft // 2 + 1, kernel_size=n_fft, stride=hop, bias=False)
        self.conv_imag = nn.Conv1d(1, n_fft // 2 + 1, kernel_size=n_fft, stride=hop, bias=False)
        real, imag = dft_kernels(n_fft)
        with torch.no_grad():
            self.conv_real.weight.copy_(torch.from_numpy(real)[:, None, :])
            self.conv_imag.weight.copy_(torch.from_numpy(imag)[:, None, :])
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        half = self.n_fft // 2
        x = F.pad(waveform[:, None, :], (half, half), mode="reflect")
        return self.conv_real(x), self.conv_imag(x)  # each (B, n_fft//2+1, frames)


class _Spectrogram(nn.Module):
    def __init__(self, n_fft: int, hop: int):
        super().__init__()
        self.stft = _Stft(n_fft, hop)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        real, imag = self.stft(waveform)
        power = real.pow(2) + imag.pow(2)
        return power.transpose(1, 2)[:, None]  # (B, 1, frames, n_fft//2+1)


class _LogMel(nn.Module):
    def __init__(self, sample_rate: int, n_fft: int, mel_bins: int, fmin: float, fmax: float):
        super().__init__()
        bank = slaney_mel_filterbank(sample_rate, n_fft, mel_bins, fmin, fmax)
        self.melW = nn.Parameter(torch.from_numpy(bank).float(), requires_grad=False)

    def forward(self, power: torch.Tensor) -> torch.Tensor:
        mel = power @ self.melW
        return 10.0 * torch.log10(mel.clamp(min=AMIN))  # (B, 1, frames, mel_bins)


# --- the network -------------------------------------------------------------------------------------


class ConvBlock(nn.Module):
    """Two 3x3 convolutions (no bias), each followed by batch norm and ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor, pool: int) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, kernel_size=pool) if pool > 1 else x


class Cnn14(nn.Module):
    """PANNs' Cnn14 with a `width`-scaled channel count (64 = the published model).

    `forward(waveform)` takes float audio (B, samples) at `sample_rate` and returns a dict with
    `embedding` (B, 32*width), `logits` (B, classes_num) and `clipwise_output` (their sigmoid).
    `logmel(waveform)` and `forward_logmel(features)` split the fixed front end from the
    trainable part, so training loops can compute the features once.
    """

    def __init__(
        self,
        width: int = 64,
        classes_num: int = 527,
        sample_rate: int = 16000,
        window_size: int = 512,
        hop_size: int = 160,
        mel_bins: int = 64,
        fmin: float = 50,
        fmax: float = 8000,
    ):
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be >= 1 (got {width})")
        if not 0 <= fmin < fmax <= sample_rate / 2:
            raise ValueError(f"need 0 <= fmin < fmax <= sample_rate/2 (got fmin={fmin}, fmax={fmax}, sample_rate={sample_rate})")
        self.config = {
            "width": width, "classes_num": classes_num, "sample_rate": sample_rate, "window_size": window_size,
            "hop_size": hop_size, "mel_bins": mel_bins, "fmin": fmin, "fmax": fmax,
        }
        self.spectrogram_extractor = _Spectrogram(window_size, hop_size)
        self.logmel_extractor = _LogMel(sample_rate, window_size, mel_bins, fmin, fmax)
        self.bn0 = nn.BatchNorm2d(mel_bins)
        channels = [1] + [width * m for m in BLOCK_MULTIPLIERS]
        for i in range(len(BLOCK_MULTIPLIERS)):
            self.add_module(f"conv_block{i + 1}", ConvBlock(channels[i], channels[i + 1]))
        self.embedding_size = channels[-1]
        self.fc1 = nn.Linear(self.embedding_size, self.embedding_size)
        self.fc_audioset = nn.Linear(self.embedding_size, classes_num)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def blocks(self) -> list[ConvBlock]:
        return [getattr(self, f"conv_block{i + 1}") for i in range(len(BLOCK_MULTIPLIERS))]

    def replace_head(self, classes_num: int) -> None:
        """A new, freshly initialised output layer with `classes_num` outputs."""
        head = nn.Linear(self.embedding_size, classes_num)
        nn.init.xavier_uniform_(head.weight)
        nn.init.zeros_(head.bias)
        self.fc_audioset = head.to(self.fc1.weight.device)
        self.config["classes_num"] = classes_num

    @torch.no_grad()
    def logmel(self, waveform: torch.Tensor) -> torch.Tensor:
        """The fixed front end: log-mel features (B, 1, frames, mel_bins), before bn0."""
        if waveform.dim() != 2:
            raise ValueError(f"waveform must be (batch, samples) (got shape {tuple(waveform.shape)})")
        return self.logmel_extractor(self.spectrogram_extractor(waveform))

    def forward_logmel(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """The trainable part, from log-mel features (B, 1, frames, mel_bins)."""
        x = self.bn0(features.transpose(1, 3)).transpose(1, 3)  # batch norm over mel bins
        blocks = self.blocks()
        for i, block in enumerate(blocks):
            x = block(x, pool=2 if i < len(blocks) - 1 else 1)
            x = F.dropout(x, p=0.2, training=self.training)
        x = x.mean(dim=3)  # over frequency
        x = x.max(dim=2).values + x.mean(dim=2)  # over time
        x = F.dropout(x, p=0.5, training=self.training)
        x = F.relu(self.fc1(x))
        embedding = F.dropout(x, p=0.5, training=self.training)
        logits = self.fc_audioset(x)  # as in PANNs, the output layer reads fc1's activations
        return {"embedding": embedding, "logits": logits, "clipwise_output": torch.sigmoid(logits)}

    def forward(self, waveform: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.forward_logmel(self.logmel(waveform))


def load_pretrained_cnn14(path: str | Path, **frontend) -> Cnn14:
    """PANNs' checkpoint (e.g. ``Cnn14_16k_mAP=0.438.pth``, a dict whose key ``model`` holds the
    state dict) as a :class:`Cnn14` in eval mode. The width comes from ``conv_block1``, the
    number of classes from ``fc_audioset``, the window from the filterbank; every key must match
    (``strict=True``). `frontend` overrides the 16 kHz front-end settings (sample_rate, hop_size,
    fmin, fmax); a stored filterbank that is not the one of these settings is an error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no Cnn14 checkpoint at {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt or foreign file: say which, keep the cause
        raise ValueError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model"), dict):
        found = sorted(checkpoint)[:10] if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ValueError(f"{path}: expected a dict whose key 'model' holds the state dict (PANNs' format); found {found}")
    state = checkpoint["model"]
    for key in ("conv_block1.conv1.weight", "fc_audioset.weight", "logmel_extractor.melW"):
        if key not in state:
            raise ValueError(f"{path}: not a Cnn14 state dict (no {key!r})")
    width = int(state["conv_block1.conv1.weight"].shape[0])
    classes_num = int(state["fc_audioset.weight"].shape[0])
    mel_bins = int(state["logmel_extractor.melW"].shape[1])
    frontend.setdefault("window_size", 2 * (int(state["logmel_extractor.melW"].shape[0]) - 1))
    model = Cnn14(width=width, classes_num=classes_num, mel_bins=mel_bins, **frontend)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing keys {missing}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected}")
        if wrong:
            parts.append("wrong shapes " + ", ".join(f"{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in wrong))
        raise ValueError(f"{path} does not match Cnn14(width={width}, classes_num={classes_num}): " + "; ".join(parts))
    # the stored filterbank fixes the sample rate and band the checkpoint was trained for
    expected = own["logmel_extractor.melW"]
    if not torch.allclose(state["logmel_extractor.melW"].float(), expected, rtol=1e-4, atol=1e-6 * float(expected.abs().max())):
        settings = {k: model.config[k] for k in ("sample_rate", "window_size", "mel_bins", "fmin", "fmax")}
        raise ValueError(f"{path}: its mel filterbank is not the Slaney filterbank of {settings}; pass the settings it was trained with")
    model.load_state_dict(state, strict=True)
    return model.eval()


__all__ = ["Cnn14", "ConvBlock", "dft_kernels", "hann_window", "load_pretrained_cnn14", "slaney_mel_filterbank"]
