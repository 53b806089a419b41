"""TensorBoard logging: scalars, hyper-parameters with final metrics, figures, text.

Everything goes into the run's own event files in the run directory itself, so every run is
exactly one entry in TensorBoard's run list, named as the run is: `tensorboard --logdir outputs`
lists `sweeps/<date>/<time>/0_optimizer.lr=0.001` and `runs/<date>/<time>`.
x axis: the epoch (1, 2, ...) for per-epoch scalars and figures; the optimizer step for the
per-step scalars (`*_step`).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from .base import Callback
from .event_files import drop_events_after
from .hparams import shown
from .rate_history import RateHistory, rates_of


def _indent(text: str) -> str:
    """Markdown code block (TensorBoard's text tab renders markdown)."""
    return "\n".join("    " + line for line in text.splitlines())


class TensorBoardLogger(Callback):
    """Writes per-epoch scalars (`loss/train`, `accuracy/val`, `lr`, `grad_norm`, `time/epoch_s`,
    `throughput/samples_per_s`), test metrics, the hyper-parameters with the run's final metrics
    (HParams tab), figures (decision boundary, confusion matrix or predicted vs. true, the
    learning-rate schedule, the loss and main-metric curves) and text (config, model summary,
    run summary, health report)."""

    def __init__(
        self,
        log_every_n_steps: int = 0,
        grad_norm_every_n_steps: int = 10,
        histograms: bool = False,
        figures: bool = True,
        figure_every_n_epochs: int = 0,
        save_figures: bool = True,
        subdir: str = "",
        write_every_s: float = 1.0,
    ) -> None:
        self.log_every_n_steps = int(log_every_n_steps or 0)
        # Epochs' events go to the writer thread together, at most this often (and before every
        # checkpoint and at the end): one hand-over per second rather than per (short) epoch.
        self.write_every_s = float(write_every_s)
        self._unsent: list[tuple] = []
        self._sent_at = 0.0
        self.grad_norm_every_n_steps = int(grad_norm_every_n_steps or 0)
        self.histograms, self.figures = histograms, figures
        self.figure_every_n_epochs = int(figure_every_n_epochs or 0)
        self.save_figures, self.subdir = save_figures, subdir
        self.writer = None
        self._rate_history = RateHistory()  # every step's rate, for the schedule figure
        self._step_rates: list[tuple[str, float]] = []
        self._last_step = -1
        self._epoch_first_step = 0  # rates read per epoch: the epoch's first step and its rates

    # -- set-up
    def on_fit_start(self, run) -> None:
        self.active = run.files is not None
        state = run.state
        # Per-step hooks only where the rates change between steps (a per-step schedule) or
        # the loss is logged per step; otherwise each epoch's rates are read once.
        per_step = state.schedule is not None and state.schedule.interval == "step"
        per_step = self.active and (per_step or self.log_every_n_steps > 0)
        self.batch_hooks = ("on_before_optimizer_step", "on_train_batch_end") if per_step else ()
        if not self.active:
            return
        from torch.utils.tensorboard import SummaryWriter

        folder = Path(run.run_dir) / self.subdir
        resumed = state.global_step > 0 or state.epoch > 0
        legacy = Path(run.run_dir) / "tensorboard"  # where runs before 2026-12 wrote theirs
        if resumed and not self.subdir and any(legacy.glob("events.out.tfevents.*")):
            folder = legacy  # a resumed old run stays one run in TensorBoard
        if resumed:  # events a killed run wrote after its checkpoint would be duplicates
            last_epoch = state.epoch if state.epoch_complete else state.epoch - 1
            drop_events_after(folder, last_epoch, state.global_step)
        self.writer = SummaryWriter(str(folder))
        self._last_step = state.global_step
        if not resumed:
            from omegaconf import OmegaConf

            from ..models import summarize

            resolved = run.config.resolved
            config = OmegaConf.to_yaml(OmegaConf.create(resolved)) if resolved else "(no config)"
            total, trainable, table = summarize(state.model)
            run.files.submit(self._write_text, "config", _indent(config), 0)
            run.files.submit(
                self._write_text,
                "model",
                f"{type(state.model).__name__}: {total:,} parameters "
                f"({trainable:,} trainable)\n\n{table}",
                0,
            )

    # -- per step
    def on_before_optimizer_step(self, run) -> None:
        # The rates this step trains with (a per-step schedule changes them right after it).
        self._step_rates = rates_of(run.state.optimizer)

    def on_train_batch_end(self, run, batch_idx, loss) -> None:
        step = run.state.global_step
        if step == self._last_step:  # inside an accumulation group, or a skipped step
            return
        self._last_step = step
        self._rate_history.add(step, self._step_rates)
        if self.log_every_n_steps and step % self.log_every_n_steps == 0:
            # A read of the loss, so only at the log interval.
            values = {"loss/train_step": loss.float().item()}
            norm = run.state.grad_norm
            if norm is not None and step % max(1, self.grad_norm_every_n_steps) == 0:
                values["grad_norm_step"] = norm.item()
            self._write_scalars(values, step)

    def log_step(self, run, metrics: dict[str, float]) -> None:
        if self.writer is not None:
            self._write_scalars(metrics, run.state.global_step)

    # -- per epoch
    def on_train_epoch_start(self, run) -> None:
        if self.active and not self.batch_hooks:  # the rates every step of this epoch trains with
            self._step_rates = rates_of(run.state.optimizer)
            self._epoch_first_step = run.state.global_step + 1

    def on_epoch_end(self, run, logs) -> None:
        if not self.active:
            return
        first, last = self._epoch_first_step, run.state.global_step
        if not self.batch_hooks and last >= first:  # its first and last steps: the rates held
            for step in sorted({first, last}):
                self._rate_history.add(step, self._step_rates)
        epoch = run.state.epoch
        scalars = {
            k: float(v) for k, v in logs.items() if k != "epoch" and isinstance(v, (int, float))
        }
        histograms = _histograms(run.state.model) if self.histograms else {}
        images = {}
        if self.figures and self.figure_every_n_epochs and epoch % self.figure_every_n_epochs == 0:
            images = self._draw_figures(run, f"epoch {epoch}")
        self._unsent.append((epoch, scalars, histograms, images))
        if histograms or images or time.monotonic() - self._sent_at >= self.write_every_s:
            self._send(run)

    def on_save_checkpoint(self, run, checkpoint) -> None:
        """The events of the epochs a checkpoint holds reach the disk before it does (the
        writer thread keeps order): a resume never leaves a gap in the curves."""
        if self.writer is not None:
            self._send(run)

    def _send(self, run) -> None:
        unsent, self._unsent = self._unsent, []
        self._sent_at = time.monotonic()
        if unsent:
            run.files.submit(self._write_epochs, unsent)

    def _write_epochs(self, epochs: list[tuple]) -> None:
        for epoch, scalars, histograms, images in epochs:
            self._write_epoch(epoch, scalars, histograms, images, flush=False)
        self.writer.flush()  # kill -9 loses at most write_every_s of events, never a checkpoint's

    def _write_scalars(self, scalars: dict[str, float], step: int) -> None:
        """All of a step's scalars as one event: the same data TensorBoard reads from add_scalar,
        at a fortieth of its cost (add_scalar builds one protobuf per value: 0.40 ms for an
        epoch's 12 scalars against 0.01 ms, 6% of a moons epoch; see scripts/benchmark.py)."""
        from tensorboard.compat.proto.summary_pb2 import Summary

        values = [
            Summary.Value(tag=tag, simple_value=float(value)) for tag, value in scalars.items()
        ]
        self.writer.file_writer.add_summary(Summary(value=values), step)

    def _write_epoch(
        self, epoch: int, scalars: dict, histograms: dict, images: dict, flush: bool = True
    ) -> None:
        if scalars:
            self._write_scalars(scalars, epoch)
        for key, values in histograms.items():
            self.writer.add_histogram(key, values, epoch)
        for key, image in images.items():
            self.writer.add_image(key, image, epoch, dataformats="HWC")
        if flush:
            self.writer.flush()

    def on_test_end(self, run, metrics) -> None:
        if self.active:
            self._send(run)
            scalars = {f"{k}/test": float(v) for k, v in metrics.items()}
            run.files.submit(self._write_epoch, run.state.epoch, scalars, {}, {})

    # -- figures
    def _draw_figures(self, run, when: str) -> dict[str, np.ndarray]:
        """Figures of the model as it is now, rendered to arrays (on the training thread)."""
        from .. import figures

        data, predictions = run.data, run.predictions
        spec = data.spec
        drawn = {}
        split = "val" if spec.sizes["val"] else "train"  # all data for training: the train split
        y_true, y_pred = predictions.on_split(split)
        classes = spec.task in ("binary", "multiclass")  # multi-label: per-label scalars only
        if classes and len(spec.feature_names) == 2 and spec.input_shape == (2,):
            x_train, x_val = data.raw_features("train"), data.raw_features("val")
            accuracy = float(np.mean(y_pred == data.arrays[split][1]))
            fig = figures.decision_boundary(
                lambda raw: predictions.probabilities(data.feature_scaler.transform(raw)),
                x_train,
                data.arrays["train"][1],
                x_val,
                data.arrays["val"][1],
                spec.class_names,
                f"decision boundary, {when}; {split} accuracy {accuracy:.3f}",
                spec.feature_names,
            )
            drawn["figures/decision_boundary"] = fig
        if classes:
            k = spec.num_classes
            counts = np.zeros((k, k), dtype=np.int64)
            np.add.at(counts, (y_true.astype(int), y_pred.astype(int)), 1)
            drawn[f"figures/confusion_matrix_{split}"] = figures.confusion_matrix(
                counts, spec.class_names, f"confusion matrix ({split}), {when}"
            )
        elif spec.task == "regression":
            target = (spec.target_names or ["y"])[0]
            drawn[f"figures/predicted_vs_true_{split}"] = figures.predicted_vs_true(
                y_true.reshape(-1),
                y_pred.reshape(-1),
                f"predicted vs. true ({split}), {when}",
                target,
            )
        images = {}
        for tag, fig in drawn.items():
            images[tag] = self._rendered(fig, run.run_dir, tag)
        return images

    def _rendered(self, fig, run_dir, tag: str) -> np.ndarray:
        """The figure drawn once: as an array for TensorBoard, and figures/<name>.png."""
        from .. import figures

        if not self.save_figures:
            return figures.to_rgb(fig)
        folder = Path(run_dir) / "figures"
        folder.mkdir(parents=True, exist_ok=True)
        return figures.save_png(fig, folder / f"{tag.split('/')[-1]}.png")

    def _lr_figure(self, run) -> dict[str, np.ndarray]:
        from .. import figures

        steps, rates = self._rate_history.rates()
        if not steps or all(len(set(values)) == 1 for values in rates.values()):
            return {}  # a rate that never changed (no schedule): the start panel says it
        fig = figures.lr_schedule(steps, rates, run.state.steps_per_epoch)
        return {"figures/lr_schedule": self._rendered(fig, run.run_dir, "figures/lr_schedule")}

    # -- end of the run
    def on_run_end(self, run, summary) -> None:
        if self.writer is None:
            return
        from ..report import summary_rows

        epoch, files = run.state.epoch, run.files
        self._send(run)  # (the epochs not written yet)
        try:
            if summary["status"] != "interrupted" and run.record.history:
                when = f"weights of epoch {run.record.weights_epoch or epoch}"
                images = self._draw_figures(run, when) if self.figures else {}
                images |= self._lr_figure(run) if self.figures else {}
                files.submit(self._write_epoch, epoch, {}, {}, images)
                if self.figures:  # drawn on the writer's thread, while the run winds down
                    history = [dict(h) for h in run.record.history]
                    files.submit(self._write_curves, Path(run.run_dir), history, summary, epoch)
            text = "\n".join(f"- {key}: {value}" for key, value in summary_rows(summary))
            files.submit(self._write_text, "summary", text, epoch)
            if summary.get("pitfall"):  # the pitfall lab: what the mistake was and measured
                lines = [f"- {key}: {value}" for key, value in summary["pitfall"].items()]
                text = "**a demonstration of a classic mistake**\n\n" + "\n".join(lines)
                files.submit(self._write_text, "pitfall", text, epoch)
            if summary.get("health"):
                from ..health import verdict

                report = f"**verdict: {verdict(summary['health'])}**\n\n" + "\n".join(
                    f"- **{f['severity']}** {f['message']}"
                    + (f"\n  try: `{f['advice']}`" if f.get("advice") else "")
                    for f in summary["health"]
                )
                files.submit(self._write_text, "health", report, epoch)
            if summary["status"] != "interrupted":
                hparams = shown(run.config.hparams, run.config.varied, Path(run.run_dir))
                files.submit(self._write_hparams, hparams, summary)
        finally:
            files.submit(self._close)

    def _write_curves(self, run_dir: Path, history: list, summary: dict, epoch: int) -> None:
        """figures/curves.png and the image `figures/curves`: loss and the main metric."""
        from .. import curve_figures

        fig = curve_figures.training_curves(history, summary)
        image = self._rendered(fig, run_dir, "figures/curves")
        self.writer.add_image("figures/curves", image, epoch, dataformats="HWC")

    def _write_text(self, tag: str, text: str, step: int) -> None:
        self.writer.add_text(tag, text, step)

    def _write_hparams(self, hparams: dict, summary: dict) -> None:
        """The run's session for the HParams tab: its shown settings and final metrics. No
        experiment summary: TensorBoard takes the first one it finds for every run under
        --logdir (a single run's columns would hide a sweep's); without one it builds the
        columns from all the runs' settings, those that differ first."""
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        metrics = {}
        if summary.get("best_val_metric") is not None:
            metrics[f"best/{summary['monitor']}"] = summary["best_val_metric"]
            metrics["best/epoch"] = summary["best_epoch"]
        for key, value in (summary.get("test") or {}).items():
            metrics[f"{key}/test"] = value
        metrics = {
            k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))
        }
        clean = {
            k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in hparams.items()
        }
        _experiment, start, end = hparams_summary(clean, metrics)
        file_writer = self.writer.file_writer
        for proto in (start, end):
            file_writer.add_summary(proto)
        step = summary.get("epochs_run") or 0
        # (the test metrics were written by on_test_end)
        self._write_scalars({k: v for k, v in metrics.items() if not k.endswith("/test")}, step)

    def _close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()

    def state_dict(self) -> dict:
        return self._rate_history.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self._rate_history.load_state_dict(state)


def _histograms(model) -> dict[str, np.ndarray]:
    out = {}
    for name, param in model.named_parameters():
        out[f"weights/{name}"] = param.detach().float().cpu().numpy()
        if param.grad is not None:
            out[f"gradients/{name}"] = param.grad.detach().float().cpu().numpy()
    return out
