"""Curves as pictures: a run's loss and main metric per epoch (train vs. validation, the best
epoch and the early-stopping point marked) and a sweep's validation curves, one line per job.

Both read only what the runs recorded (the history in metrics.json, or the same in memory), so
they can be drawn again at any time; matplotlib is imported when a figure is drawn."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .figures import save_png

PREFERRED = ("accuracy", "r2")  # the main metric when the run monitors its loss


def main_metric(history: Sequence[dict], monitor: str | None) -> str | None:
    """The metric shown beside the loss: the monitored one unless that is the loss, else
    accuracy (classification) or r2 (regression), else the first other validation metric
    (training metric, for a run without a validation split)."""
    first = history[0] if history else {}
    names = [k[: -len("/val")] for k in first if k.endswith("/val")] or [
        k[: -len("/train")]
        for k in first
        if k.endswith("/train")  # no validation split
    ]
    metric = (monitor or "").rsplit("/", 1)[0]
    if metric and metric != "loss" and metric in names:
        return metric
    for name in (*PREFERRED, *names):
        if name in names and name != "loss":
            return name
    return None


def _series(history: Sequence[dict], key: str) -> tuple[list[int], list[float]]:
    points = [(int(h["epoch"]), float(h[key])) for h in history if h.get(key) is not None]
    return [e for e, _ in points], [v for _, v in points]


# A pitfall-lab run's own series, drawn beside train and val: (key for a panel, label).
PITFALL_SERIES = {
    "test_set_peeking": ("pitfall/{name}_holdout", "fresh hold-out (the real val split)"),
    "forget_eval_mode": ("pitfall/{name}_val_eval_mode", "val with model.eval()"),
}


def training_curves(history: Sequence[dict], summary: dict[str, Any]):
    """Loss and the main metric per epoch, train vs. validation; the best epoch (a dashed line
    and a ring on the monitored validation curve) and, for a run that stopped early, the epoch
    it stopped at (a dotted line)."""
    from matplotlib.figure import Figure

    metric = main_metric(history, summary.get("monitor"))
    panels = ["loss"] + ([metric] if metric else [])
    # Side by side, one legend above: TensorBoard's image box is wide and low (about 355 x 186).
    fig = Figure(figsize=(5.4, 2.9), dpi=100, layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    best_epoch = summary.get("best_epoch")
    monitor = summary.get("monitor") or "loss/val"
    stopped = summary.get("status") == "stopped_early" and history
    pitfall = (summary.get("pitfall") or {}).get("name")
    val_label = "val = the test split (peeked at)" if pitfall == "test_set_peeking" else "val"
    extra = PITFALL_SERIES.get(pitfall)
    for ax, name in zip(axes, panels):
        for split, style in (("train", "-"), ("val", "-")):
            epochs, values = _series(history, f"{name}/{split}")
            if epochs:
                ax.plot(
                    epochs,
                    values,
                    style,
                    linewidth=1.8,
                    label=val_label if split == "val" else split,
                    marker="" if len(epochs) > 12 else ".",
                )
        if extra is not None:
            epochs, values = _series(history, extra[0].format(name=name))
            if epochs:
                ax.plot(epochs, values, "--", color="tab:purple", linewidth=1.5, label=extra[1])
        if best_epoch is not None:
            ax.axvline(
                best_epoch,
                color="tab:green",
                linestyle="--",
                linewidth=1.2,
                label=f"best epoch {best_epoch}",
            )
            if monitor.rsplit("/", 1)[0] == name:  # (loss/train without a validation split)
                epochs, values = _series(history, monitor)
                if best_epoch in epochs:
                    ax.plot(
                        [best_epoch],
                        [values[epochs.index(best_epoch)]],
                        "o",
                        markersize=10,
                        markerfacecolor="none",
                        markeredgecolor="tab:green",
                        markeredgewidth=2,
                    )
        if stopped:
            last = int(history[-1]["epoch"])
            ax.axvline(
                last,
                color="tab:red",
                linestyle=":",
                linewidth=1.5,
                label=f"stopped early, epoch {last}",
            )
        ax.set_xlabel("epoch", fontsize=9.5)
        ax.set_title(name, fontsize=10)
        ax.tick_params(labelsize=8.5)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="outside upper center",
        ncols=len(labels) if extra is None else -(-len(labels) // 2),  # (longer labels: 2 rows)
        fontsize=9,
        handlelength=1.5,
        columnspacing=1.0,
        # (a pitfall-lab run says so above its curves)
        title=f"pitfall lab: {pitfall} (a demonstration)" if pitfall else None,
        title_fontsize=9.5,
    )
    return fig


def write_run_curves(run_dir: str | Path, history=None, summary=None) -> Path | None:
    """`<run dir>/figures/curves.png` from the run's history (metrics.json when not given);
    None when the run has no epoch to draw."""
    run_dir = Path(run_dir)
    if history is None or summary is None:
        summary = _metrics(run_dir / "metrics.json")
        if summary is None:
            return None
        history = summary.get("history") or []
    if not history:
        return None
    folder = run_dir / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "curves.png"
    save_png(training_curves(history, summary), path)
    return path


def _metrics(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, json.JSONDecodeError):
        return None


def sweep_curves(jobs: Sequence[tuple[str, list[dict], int | None]], monitor: str | None):
    """Validation loss and main metric per epoch, one labelled line per job (label, history,
    best epoch), its best epoch ringed."""
    from matplotlib.figure import Figure

    metric = main_metric(jobs[0][1], monitor)
    panels = ["loss"] + ([metric] if metric else [])
    rows = -(-len(jobs) // 2)
    fig = Figure(
        figsize=(4.0 * len(panels) + 0.6, 3.4 + 0.22 * rows), dpi=100, layout="constrained"
    )
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    colors = [f"C{i}" for i in range(10)] if len(jobs) <= 10 else None
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    for index, (label, history, best_epoch) in enumerate(jobs):
        color = colors[index] if colors else cmap(index % 20)
        for ax, name in zip(axes, panels):
            epochs, values = _series(history, f"{name}/val")
            if not epochs:
                continue
            line_label = label if ax is axes[0] else None
            ax.plot(
                epochs,
                values,
                color=color,
                linewidth=1.6,
                label=line_label,
                linestyle=("-", "--", ":")[index // 10 % 3],
            )
            if best_epoch in epochs:
                ax.plot(
                    [best_epoch],
                    [values[epochs.index(best_epoch)]],
                    "o",
                    color=color,
                    markersize=6,
                    markerfacecolor="none",
                    markeredgewidth=1.5,
                )
    for ax, name in zip(axes, panels):
        ax.set_xlabel("epoch", fontsize=10)
        ax.set_title(f"{name}/val (ring: each job's best epoch)", fontsize=10)
        ax.tick_params(labelsize=9)
        ax.grid(alpha=0.3)
    fig.legend(loc="outside lower center", ncols=2, fontsize=8.5, title="job", title_fontsize=9)
    return fig


def _job_dirs(sweep_dir: Path) -> list[Path]:
    """The sweep's job directories (a folder with Hydra's .hydra/ inside), in job order."""

    def number(path: Path) -> int:
        head = path.name.split("_", 1)[0]
        return int(head) if head.isdigit() else 10**9

    return sorted((p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir()), key=number)


def _labels(job_dirs: list[Path]) -> list[str]:
    """Each job's number and the overrides that differ between the jobs (a key some jobs set
    and others do not differs too)."""
    import yaml

    jobs = []
    for job in job_dirs:
        path = job / ".hydra" / "overrides.yaml"
        try:
            overrides = yaml.safe_load(path.read_text()) if path.is_file() else []
        except (OSError, yaml.YAMLError):
            overrides = []
        jobs.append(
            {
                o.partition("=")[0]: o
                for o in map(str, overrides or [])
                if not o.lstrip("+~").startswith(("hydra", "hparams_search"))
            }
        )
    keys = {k for job in jobs for k in job}
    varying = [k for k in sorted(keys) if len({job.get(k) for job in jobs}) > 1]
    labels = []
    for job_dir, job in zip(job_dirs, jobs):
        number = job_dir.name.split("_", 1)[0]
        shown = " ".join(job[k] for k in varying if k in job)
        labels.append(f"{number}: {shown}" if shown else job_dir.name)
    return labels


def write_sweep_curves(sweep_dir: str | Path) -> Path | None:
    """`<sweep dir>/val_curves.png`: every job's validation curves on one figure, each
    line labelled with the job's number and the overrides that differ between jobs. Jobs with
    no recorded epoch (failed, missing) or no validation split are left out; None when no job
    has one."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        return None
    job_dirs = _job_dirs(sweep_dir)
    jobs, monitor = [], None
    for job_dir, label in zip(job_dirs, _labels(job_dirs)):
        metrics = _metrics(job_dir / "metrics.json") or {}
        history = metrics.get("history") or []
        if not history or metrics.get("mode") == "lr_find" or "loss/val" not in history[0]:
            continue  # (no validation split, data.split=[1,0,0]: no curve to compare)
        jobs.append((label, history, metrics.get("best_epoch")))
        monitor = monitor or metrics.get("monitor")
    if not jobs:
        return None
    path = sweep_dir / "val_curves.png"  # (a file: the sweep's directories are its jobs)
    save_png(sweep_curves(jobs, monitor), path)
    return path
