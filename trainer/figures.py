"""Figures as images (matplotlib's Agg canvas, no display or pyplot needed).

Sized for TensorBoard, which shrinks every image into its card: a box of about 355 x 186 px in
TIME SERIES (the default dashboard), 350 px wide in IMAGES. Figures are landscape, 2.9 inches
(290 px) high, with 9-11 pt type, so that text stays 8-10 px high on screen."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def _figure(width: float = 5.0, height: float = 4.0):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="tight")


def to_rgb(figure) -> np.ndarray:
    """The figure rendered as an (H, W, 3) uint8 array."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def save_png(figure, path) -> np.ndarray:
    """Render the figure once and write it as a PNG; returns the (H, W, 3) array (for TensorBoard),
    so a figure that is both saved and logged is drawn once."""
    rgb = to_rgb(figure)
    write_png(rgb, path)
    return rgb


def write_png(rgb: np.ndarray, path) -> None:
    """An already rendered (H, W, 3) uint8 array as a PNG file (Pillow, as matplotlib itself)."""
    from PIL import Image

    Image.fromarray(rgb).save(str(path), format="png")


def decision_boundary(
    probabilities: Callable[[np.ndarray], np.ndarray],
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    class_names: Sequence[str],
    title: str,
    feature_names: Sequence[str] = ("x0", "x1"),
    resolution: int = 120,  # grid points per axis (the plot is 230 px wide)
):
    """Predicted class regions over the 2-D feature plane (original units), with the data points:
    train faint, validation outlined."""
    points = np.vstack([x_train, x_val])
    lo, hi = points.min(0), points.max(0)
    pad = 0.08 * (hi - lo + 1e-9)
    gx, gy = np.meshgrid(
        np.linspace(lo[0] - pad[0], hi[0] + pad[0], resolution),
        np.linspace(lo[1] - pad[1], hi[1] + pad[1], resolution),
    )
    probs = probabilities(np.c_[gx.ravel(), gy.ravel()])
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    # Landscape for TensorBoard's image box: the plot on the left, title and legend beside it.
    width, height = 5.4, 2.9
    fig = Figure(figsize=(width, height), dpi=100)
    ax = fig.add_axes((0.55 / width, 0.45 / height, 2.3 / width, 2.3 / height))
    k = probs.shape[1]
    cmap = "RdBu" if k == 2 else "tab10"
    top = 1 if k == 2 else 9
    if k == 2:
        p1 = probs[:, 1].reshape(gx.shape)
        filled = ax.contourf(gx, gy, p1, levels=np.linspace(0, 1, 11), cmap=cmap, alpha=0.45)
        ax.contour(gx, gy, p1, levels=[0.5], colors="k", linewidths=1.2)
        bar = fig.add_axes((2.9 / width, 0.45 / height, 0.1 / width, 2.3 / height))
        fig.colorbar(filled, cax=bar).set_label(
            f"P(class {_short(class_names[1], 12)})", fontsize=9
        )
        bar.tick_params(labelsize=8)
    else:
        regions = probs.argmax(1).reshape(gx.shape)
        ax.contourf(
            gx, gy, regions, levels=np.arange(k + 1) - 0.5, cmap=cmap, alpha=0.35, vmin=0, vmax=9
        )
    shared = {"cmap": cmap, "vmin": 0, "vmax": top}
    ax.scatter(
        x_train[:, 0],
        x_train[:, 1],
        c=y_train.astype(float),
        s=8,
        alpha=0.35,
        linewidths=0,
        **shared,
    )
    ax.scatter(
        x_val[:, 0],
        x_val[:, 1],
        c=y_val.astype(float),
        s=18,
        edgecolors="k",
        linewidths=0.6,
        **shared,
    )
    ax.set_xlabel(_short(feature_names[0], 30), fontsize=9.5)
    ax.set_ylabel(_short(feature_names[1], 30), fontsize=9.5)
    ax.tick_params(labelsize=8.5)
    import textwrap

    beside = (3.55 if k == 2 else 3.05) / width
    lines = [part for piece in title.split("; ") for part in textwrap.wrap(piece, 24)]
    fig.text(beside, 1 - 0.12 / height, "\n".join(lines), ha="left", va="top", fontsize=9.5)
    # The two kinds of points, then the classes' colours.
    from matplotlib import colormaps

    colour = colormaps[cmap]
    dot = {"marker": "o", "linestyle": "none"}
    handles = [
        Line2D(
            [], [], color="0.45", alpha=0.5, markersize=4, label=f"training ({len(x_train)})", **dot
        ),
        Line2D(
            [],
            [],
            markerfacecolor="0.75",
            markeredgecolor="k",
            markersize=6,
            label=f"validation ({len(x_val)})",
            **dot,
        ),
    ]
    handles += [
        Line2D(
            [], [], color=colour(i / top), markersize=7, label=f"class {_short(name, 18)}", **dot
        )
        for i, name in enumerate(class_names[:10])
    ]
    fig.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(beside - 0.01, 1 - (0.2 + 0.17 * len(lines)) / height),
        ncols=2 if len(handles) > 8 else 1,
        fontsize=9,
        handletextpad=0.2,
        columnspacing=0.8,
        borderaxespad=0,
        frameon=False,
    )
    return fig


def _short(name: str, width: int) -> str:
    text = str(name)
    return text if len(text) <= width else text[: width - 3] + "..."


def _wrapped(name: str, width: int = 16, max_lines: int = 3) -> str:
    """A class name as at most `max_lines` lines of about `width` characters."""
    import textwrap

    lines = textwrap.wrap(str(name), width, break_long_words=True) or [""]
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = _short(lines[-1] + " ...", width)
    return "\n".join(lines)


def confusion_matrix(counts: np.ndarray, class_names: Sequence[str], title: str):
    """Counts per (true, predicted) class, with row-normalised shading, sized for TensorBoard's
    image box (about 355 x 186 px in TIME SERIES, 350 px wide in IMAGES): 2.9 inches high,
    the matrix filling the height, the title beside it; 10 classes keep their counts about
    10 px high on screen. More classes, or names wrapped to several lines (rows: up to three;
    columns: one line at 45 degrees, shortened past 28 characters), make the canvas taller."""
    import textwrap

    from matplotlib.figure import Figure

    k = len(class_names)
    row_labels = [_wrapped(name) for name in class_names]
    column_labels = [_short(name, 28) for name in class_names]
    tick_size = 10.0 if k <= 12 else 9.0 if k <= 20 else 7.0
    char = tick_size * 0.62 / 72  # inches per character of tick text
    line = tick_size * 1.3 / 72  # inches per line of tick text
    row_width = max(len(part) for label in row_labels for part in label.split("\n")) * char
    row_lines = max(label.count("\n") + 1 for label in row_labels)
    column_width = max(len(label) for label in column_labels) * char
    top = 0.12
    # a 45-degree label reaches down and to the left of its column by 0.71 of its length
    rotate = column_width > 0.2 * 0.9 and k > 1
    cell = 0.0
    for _ in range(2):  # whether the labels rotate depends on the cell, the cell on the labels
        drop = (column_width + line) * 0.71 if rotate else line
        bottom = drop + 0.4
        cell = min(0.6, max((2.9 - top - bottom) / max(k, 1), 0.2, row_lines * line * 1.1))
        rotate = column_width > cell * 0.9
    drop = (column_width + line) * 0.71 if rotate else line
    bottom = drop + 0.4
    side = cell * k
    left = max(row_width + 0.45, drop - cell / 2 + 0.1)
    beside = 1.9  # the title, wrapped, to the right of the matrix
    width, height = left + side + 0.25 + beside, max(2.9, bottom + side + top)
    bottom += (height - bottom - side - top) / 2  # a small matrix sits in the middle
    fig = Figure(figsize=(width, height), dpi=100)
    ax = fig.add_axes((left / width, bottom / height, side / width, side / height))
    rates = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    digits = len(str(int(counts.max()))) if counts.size else 1
    number_size = min(16.0, cell * 72 * 0.7, cell * 72 * 0.9 / (0.62 * max(digits, 2)))
    for i in range(k):
        for j in range(k):
            ax.text(
                j,
                i,
                str(int(counts[i, j])),
                ha="center",
                va="center",
                fontsize=number_size,
                color="white" if rates[i, j] > 0.5 else "black",
            )
    ax.set_xticks(range(k), labels=column_labels, fontsize=tick_size)
    if rotate:
        for tick in ax.get_xticklabels():
            tick.set(rotation=45, horizontalalignment="right", rotation_mode="anchor")
    ax.set_yticks(range(k), labels=row_labels, fontsize=tick_size)
    ax.set_xlabel("predicted", fontsize=10)
    ax.set_ylabel("true", fontsize=10)
    fig.text(
        (left + side + 0.25) / width,
        1 - 0.15 / height,
        "\n".join(textwrap.wrap(title, 22)),
        ha="left",
        va="top",
        fontsize=10.5,
    )
    return fig


def predicted_vs_true(y_true: np.ndarray, y_pred: np.ndarray, title: str, target: str = "y"):
    fig = _figure(3.8, 2.9)
    ax = fig.add_subplot()
    ax.scatter(y_true, y_pred, s=10, alpha=0.6)
    lo, hi = float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))
    ax.plot([lo, hi], [lo, hi], "k--", linewidth=1, label="perfect prediction")
    ax.set_xlabel(f"true {target}")
    ax.set_ylabel(f"predicted {target}")
    ax.legend(loc="upper left", fontsize=9)
    ax.set_title(title, fontsize=10)
    return fig


LINE_STYLES = ("-", "--", ":", "-.")


def spans_decades(values) -> bool:
    """True when the positive rates span more than 10x (or reach 0 from above): a log axis."""
    positive = [v for v in values if v > 0]
    return bool(positive) and (
        max(positive) > 10 * min(positive) or len(positive) < len([v for v in values if v >= 0])
    )


def lr_schedule(
    steps: Sequence[int],
    rates: dict[str, Sequence[float]],
    steps_per_epoch: int,
    title: str = "learning-rate schedule",
):
    """One labelled line per parameter group (its first and last rate in the legend; groups on
    the same rates stay visible as dashed and dotted lines over each other); a log y axis when
    the rates span more than 10x."""
    fig = _figure(5.4, 2.9)
    ax = fig.add_subplot()
    for index, (name, values) in enumerate(rates.items()):
        ax.plot(
            steps,
            values,
            label=f"{name}: {values[0]:.3g} \u2192 {values[-1]:.3g}",
            linestyle=LINE_STYLES[index % len(LINE_STYLES)],
            linewidth=2.4 if index == 0 else 1.8,
            color=f"C{index % 10}",
        )
    every = [v for values in rates.values() for v in values]
    if spans_decades(every):
        ax.set_yscale("log")
        top = max(every)
        low = max(min(v for v in every if v > 0), top * 1e-5)  # five decades at most:
        ax.set_ylim(low / 2, top * 2)  # a rate of (nearly) 0 falls off the bottom edge
    ax.set_xlabel(f"optimizer step ({steps_per_epoch} per epoch)", fontsize=10)
    ax.set_ylabel("learning rate", fontsize=10)
    ax.grid(alpha=0.3, which="both" if ax.get_yscale() == "log" else "major")
    ax.legend(fontsize=9, title="parameter group: first \u2192 last", title_fontsize=9)
    ax.set_title(title, fontsize=10)
    return fig


def loss_vs_lr(
    rates: Sequence[float],
    losses: Sequence[float],
    smoothed: Sequence[float],
    suggestion: float | None,
):
    fig = _figure(5.4, 2.9)
    ax = fig.add_subplot()
    ax.plot(rates, losses, alpha=0.35, label="loss (per step)")
    ax.plot(rates[: len(smoothed)], smoothed, label="smoothed loss")
    if suggestion is not None:
        ax.axvline(suggestion, color="r", linestyle="--", label=f"suggested lr {suggestion:.2g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    finite = [v for v in losses if np.isfinite(v)]
    if finite:
        # The explosion at the end would squash the rest of the curve.
        top = min(max(finite), 2.5 * abs(finite[0]))
        ax.set_ylim(min(finite) * 0.9, top * 1.05 + 1e-9)
    ax.legend(fontsize=9)
    ax.set_title("learning-rate range test", fontsize=10)
    return fig
