"""One function per figure. Each takes arrays or a tidy DataFrame and returns a matplotlib
Figure; no file I/O here."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
import torchaudio

GROUP_COLOURS = {"heard": "#1f77b4", "seen": "#d62728", "both": "#7f7f7f", "unseen": "#2ca02c"}


def log_mel(audio: np.ndarray, sample_rate: int = 16000, n_mels: int = 64) -> np.ndarray:
    """Log-mel power spectrogram (dB), 25-ms windows with a 10-ms hop, as audio taggers use."""
    transform = torchaudio.transforms.MelSpectrogram(
        sample_rate=sample_rate, n_fft=512, win_length=400, hop_length=160, n_mels=n_mels, f_min=50, f_max=sample_rate // 2
    )
    mel = transform(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)))
    return (10 * torch.log10(mel + 1e-10)).numpy()


def spectrogram(audio: np.ndarray, sample_rate: int = 16000, title: str = "", ax: plt.Axes | None = None) -> plt.Figure:
    """A log-mel spectrogram with time in seconds."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 2.2))
    mel = log_mel(audio, sample_rate)
    duration = len(audio) / sample_rate
    ax.imshow(mel, origin="lower", aspect="auto", cmap="magma", extent=(0, duration, 0, mel.shape[0]), vmin=mel.max() - 80)
    ax.set(xlabel="time (s)", ylabel="mel bin", title=title)
    return ax.figure


def frame_strip(frames: np.ndarray, title: str = "", ax: plt.Axes | None = None) -> plt.Figure:
    """The frames of a clip side by side (one per second at 1 fps)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(min(2.0 * len(frames), 12), 2.2))
    gap = np.full((frames.shape[1], 2, 3), 255, dtype=np.uint8)
    strip = np.concatenate([part for frame in frames for part in (frame, gap)][:-1], axis=1)
    ax.imshow(strip)
    ax.set_axis_off()
    ax.set_title(title)
    return ax.figure


def class_rates(classes: pd.DataFrame) -> plt.Figure:
    """P(audible) against P(visible) per class, coloured by the world's group."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    sns.scatterplot(data=classes, x="p_visible", y="p_audible", hue="group", palette=GROUP_COLOURS, s=50, ax=ax)
    for row in classes.itertuples():
        ax.annotate(row.label, (row.p_visible, row.p_audible), fontsize=6, alpha=0.7, xytext=(3, 2), textcoords="offset points")
    ax.plot([0, 1], [0, 1], color="0.8", lw=1, zorder=0)
    ax.set(xlim=(-0.02, 1.05), ylim=(-0.02, 1.05), xlabel="P(visible)", ylabel="P(audible)")
    return fig


def figure1(wide: pd.DataFrame, chosen: pd.DataFrame, bars: dict[str, str]) -> plt.Figure:
    """Figure 1: class-wise accuracy on the chosen classes, in the paper's three rows.

    `wide` holds accuracies (0-1) indexed by class; `chosen` has `label` and `row`; `bars` maps
    a column of `wide` to its legend name, in drawing order.
    """
    rows = list(dict.fromkeys(chosen["row"]))
    fig, axes = plt.subplots(len(rows), 1, figsize=(12, 3.1 * len(rows)), sharey=True)
    axes = np.atleast_1d(axes)
    palette = sns.color_palette("tab10", len(bars))
    width = 0.8 / len(bars)
    for ax, row in zip(axes, rows):
        labels = chosen.loc[chosen["row"] == row, "label"].tolist()
        x = np.arange(len(labels))
        for k, (column, name) in enumerate(bars.items()):
            ax.bar(x + (k - (len(bars) - 1) / 2) * width, 100 * wide.loc[labels, column].to_numpy(), width, label=name, color=palette[k])
        ax.set_xticks(x, [textwrap_label(label) for label in labels], fontsize=7)
        ax.set(ylabel="accuracy (%)", ylim=(0, 105), title=row)
    axes[0].legend(ncol=min(len(bars), 3), fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def textwrap_label(label: str, width: int = 14) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(label, width))


def letter_bias(bias: pd.DataFrame) -> plt.Figure:
    """Accuracy by answer letter, one line per model row (position bias)."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    sns.lineplot(data=bias.assign(acc=100 * bias["acc"]), x="letter", y="acc", hue="row", marker="o", ax=ax)
    ax.set(ylabel="accuracy (%)", xlabel="answer letter", ylim=(0, 105))
    ax.legend(fontsize=7, loc="lower left")
    return fig


def switch_classes(classes: pd.DataFrame, teacher: str, student: str) -> plt.Figure:
    """Class-wise accuracy of the student against the teacher; the switch's label is 1 above
    the diagonal (teacher strictly better)."""
    fig, ax = plt.subplots(figsize=(5, 4.6))
    frame = classes.assign(**{"teacher better": classes["teacher_better"].astype(bool)})
    sns.scatterplot(data=frame, x=100 * frame["student_acc"], y=100 * frame["teacher_acc"], hue="teacher better",
                    palette={True: "#d62728", False: "#1f77b4"}, s=45, ax=ax)
    ax.plot([0, 100], [0, 100], color="0.7", lw=1, zorder=0)
    ax.set(xlabel=f"{student} accuracy (%)", ylabel=f"{teacher} accuracy (%)", xlim=(-2, 102), ylim=(-2, 102))
    return fig


def training_curves(history: pd.DataFrame, x: str, panels: dict[str, list[str]], title: str = "") -> plt.Figure:
    """One panel per entry of `panels` (its title -> the columns drawn against `x`)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.2))
    for ax, (name, columns) in zip(np.atleast_1d(axes), panels.items()):
        for column in columns:
            if column in history and history[column].notna().any():
                ax.plot(history[x], history[column], label=column)
        ax.set(xlabel=x, title=name)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def before_after(wide: pd.DataFrame, bars: dict[str, str], title: str = "") -> plt.Figure:
    """Class-wise accuracy (%) bars, one group per class (`wide` indexed by class; `bars` maps a
    column to its legend name, in drawing order) — Figure 3."""
    fig, ax = plt.subplots(figsize=(max(6, 1.0 * len(wide) + 2), 3.6))
    palette = {"before": "#9ecae1", "after": "#08519c", "teacher": "#d62728"}
    width = 0.8 / len(bars)
    x = np.arange(len(wide))
    for k, (column, name) in enumerate(bars.items()):
        ax.bar(x + (k - (len(bars) - 1) / 2) * width, wide[column].to_numpy(), width, label=name, color=palette.get(column))
    ax.set_xticks(x, [textwrap_label(label) for label in wide.index], fontsize=7)
    ax.set(ylabel="accuracy (%)", ylim=(0, 105), title=title)
    ax.legend(fontsize=8, ncol=len(bars), loc="upper left")
    fig.tight_layout()
    return fig


def venue_mixtures(weights: pd.DataFrame, groups: pd.Series) -> plt.Figure:
    """Heat map of P(venue | class) (rows: classes sorted by group, columns: venues)."""
    order = groups.sort_values(kind="stable").index
    fig, ax = plt.subplots(figsize=(7, 0.22 * len(order) + 1.2))
    sns.heatmap(weights.loc[order], ax=ax, cmap="mako_r", vmin=0, vmax=1, cbar_kws={"label": "P(venue | class)"})
    ax.set_yticklabels([f"{label} ({groups[label]})" for label in order], fontsize=7)
    ax.set_xlabel("venue")
    ax.set_ylabel("")
    fig.tight_layout()
    return fig


def accuracy_scatter(wide: pd.DataFrame, x: str, y: str, groups: pd.Series | None = None) -> plt.Figure:
    """Class-wise accuracy (%) of two answerers (columns `x`, `y` of `wide`, indexed by class),
    one dot per class coloured by its group, with the diagonal."""
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    colours = [GROUP_COLOURS.get(groups.get(label, ""), "#555555") for label in wide.index] if groups is not None else "#555555"
    ax.scatter(wide[x], wide[y], c=colours, s=22, alpha=0.85)
    ax.plot([0, 100], [0, 100], color="#999999", lw=0.8, ls="--")
    ax.set(xlim=(-3, 103), ylim=(-3, 103), xlabel=f"{x} (%)", ylabel=f"{y} (%)")
    ax.xaxis.label.set_size(7)
    ax.yaxis.label.set_size(7)
    if groups is not None:
        for name in sorted(set(groups.reindex(wide.index).dropna())):
            ax.scatter([], [], c=GROUP_COLOURS.get(name, "#555555"), s=22, label=name)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def png_bytes(fig: plt.Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (closed afterwards)."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return buffer.getvalue()
