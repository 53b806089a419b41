"""TensorBoard logging: scalars, hyper-parameters with final metrics, figures, text.

Everything goes into the run's own event files under `<run dir>/tensorboard/`, so every run
is exactly one entry in TensorBoard's run list, also in a sweep directory.
x axis: the epoch (1, 2, ...) for per-epoch scalars and figures; the optimizer step for the
per-step scalars (`*_step`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .base import Callback


def _indent(text: str) -> str:
    """Markdown code block (TensorBoard's text tab renders markdown)."""
    return "\n".join("    " + line for line in text.splitlines())


class TensorBoardLogger(Callback):
    """Writes per-epoch scalars (`loss/train`, `accuracy/val`, `lr`, `grad_norm`, `time/epoch_s`,
    `throughput/samples_per_s`), test metrics, the hyper-parameters with the run's final metrics
    (HParams tab), figures (decision boundary, confusion matrix or predicted vs. true, the
    learning-rate schedule) and text (config, model summary, run summary, health report)."""

    def __init__(
        self,
        log_every_n_steps: int = 0,
        grad_norm_every_n_steps: int = 10,
        histograms: bool = False,
        figures: bool = True,
        figure_every_n_epochs: int = 0,
        save_figures: bool = True,
        subdir: str = "tensorboard",
    ) -> None:
        self.log_every_n_steps = int(log_every_n_steps or 0)
        self.grad_norm_every_n_steps = int(grad_norm_every_n_steps or 0)
        self.histograms, self.figures = histograms, figures
        self.figure_every_n_epochs = int(figure_every_n_epochs or 0)
        self.save_figures, self.subdir = save_figures, subdir
        self.writer = None
        # The rate of every optimizer step, for the schedule figure: this epoch's as lists, the
        # earlier epochs' folded into tensors (a checkpoint then copies a few tensors, not a list
        # that grows with the run).
        self._lr_steps: list[int] = []
        self._lr_values: dict[str, list[float]] = {}
        self._lr_history: dict[str, list] = {"steps": [], "values": []}
        self._last_step = -1

    # -- set-up
    def on_fit_start(self, trainer) -> None:
        self.active = trainer.writes_files
        if not self.active:
            return
        from torch.utils.tensorboard import SummaryWriter

        resumed = trainer.global_step > 0 or trainer.epoch > 0
        # On resume, events at steps after the checkpoint (written before the interruption) are dropped.
        self.writer = SummaryWriter(
            str(Path(trainer.run_dir) / self.subdir),
            purge_step=trainer.global_step + 1 if resumed else None,
        )
        trainer.grad_norm_interval = self.grad_norm_every_n_steps
        self._last_step = trainer.global_step
        if not resumed:
            from omegaconf import OmegaConf

            from ..models import summarize

            config = (
                OmegaConf.to_yaml(OmegaConf.create(trainer.config))
                if trainer.config
                else "(no config)"
            )
            total, trainable, table = summarize(trainer.unwrapped_model)
            trainer.run_async(self._write_text, "config", _indent(config), 0)
            trainer.run_async(
                self._write_text,
                "model",
                f"{type(trainer.unwrapped_model).__name__}: {total:,} parameters "
                f"({trainable:,} trainable)\n\n{table}",
                0,
            )

    # -- per step
    def on_train_batch_end(self, trainer, batch_idx, loss) -> None:
        step = trainer.global_step
        if step == self._last_step:  # inside an accumulation group, or a skipped step
            return
        self._last_step = step
        self._lr_steps.append(step)
        for i, group in enumerate(trainer.optimizer.param_groups):
            self._lr_values.setdefault(group.get("name", str(i)), []).append(float(group["lr"]))
        if self.log_every_n_steps and step % self.log_every_n_steps == 0:
            # A read of the loss, so only at the log interval.
            values = {"loss/train_step": loss.float().item()}
            if trainer.grad_norm is not None and step % max(1, trainer.grad_norm_interval) == 0:
                values["grad_norm_step"] = trainer.grad_norm.item()
            self._write_scalars(values, step)

    def log_step(self, trainer, metrics: dict[str, float]) -> None:
        if self.writer is not None:
            self._write_scalars(metrics, trainer.global_step)

    # -- per epoch
    def on_epoch_end(self, trainer, logs) -> None:
        if not self.active:
            return
        epoch = trainer.epoch
        scalars = {
            k: float(v) for k, v in logs.items() if k != "epoch" and isinstance(v, (int, float))
        }
        histograms = self._histograms(trainer) if self.histograms else {}
        images = {}
        if self.figures and self.figure_every_n_epochs and epoch % self.figure_every_n_epochs == 0:
            images = self._draw_figures(trainer, f"epoch {epoch}")
        trainer.run_async(self._write_epoch, epoch, scalars, histograms, images)

    def _histograms(self, trainer) -> dict[str, np.ndarray]:
        out = {}
        for name, param in trainer.unwrapped_model.named_parameters():
            out[f"weights/{name}"] = param.detach().float().cpu().numpy()
            if param.grad is not None:
                out[f"gradients/{name}"] = param.grad.detach().float().cpu().numpy()
        return out

    def _write_scalars(self, scalars: dict[str, float], step: int) -> None:
        """All of a step's scalars as one event: the same data TensorBoard reads from add_scalar,
        at an eighth of its cost (add_scalar builds one protobuf per value)."""
        from tensorboard.compat.proto.summary_pb2 import Summary

        values = [
            Summary.Value(tag=tag, simple_value=float(value)) for tag, value in scalars.items()
        ]
        self.writer._get_file_writer().add_summary(Summary(value=values), step)

    def _write_epoch(self, epoch: int, scalars: dict, histograms: dict, images: dict) -> None:
        if scalars:
            self._write_scalars(scalars, epoch)
        for key, values in histograms.items():
            self.writer.add_histogram(key, values, epoch)
        for key, image in images.items():
            self.writer.add_image(key, image, epoch, dataformats="HWC")
        self.writer.flush()  # kill -9 loses at most the epoch in progress

    def on_test_end(self, trainer, metrics) -> None:
        if self.active:
            scalars = {f"{k}/test": float(v) for k, v in metrics.items()}
            trainer.run_async(self._write_epoch, trainer.epoch, scalars, {}, {})

    # -- figures
    def _draw_figures(self, trainer, when: str) -> dict[str, np.ndarray]:
        """Figures of the model as it is now, rendered to arrays (on the training thread)."""
        from .. import figures

        spec, data = trainer.data.spec, trainer.data
        drawn = {}
        if spec.task != "regression" and len(spec.feature_names) == 2 and spec.input_shape == (2,):
            x_train, x_val = data.raw_features("train"), data.raw_features("val")
            _, y_val_pred = trainer.split_outputs("val")
            accuracy = float(np.mean(y_val_pred == data.arrays["val"][1]))
            fig = figures.decision_boundary(
                lambda raw: trainer.probabilities(data.feature_scaler.transform(raw)),
                x_train,
                data.arrays["train"][1],
                x_val,
                data.arrays["val"][1],
                spec.class_names,
                f"decision boundary, {when}; val accuracy {accuracy:.3f}",
                spec.feature_names,
            )
            drawn["figures/decision_boundary"] = fig
        y_true, y_pred = trainer.split_outputs("val")
        if spec.task != "regression":
            k = spec.num_classes
            counts = np.zeros((k, k), dtype=np.int64)
            np.add.at(counts, (y_true.astype(int), y_pred.astype(int)), 1)
            drawn["figures/confusion_matrix_val"] = figures.confusion_matrix(
                counts, spec.class_names, f"confusion matrix (val), {when}"
            )
        else:
            target = (spec.target_names or ["y"])[0]
            drawn["figures/predicted_vs_true_val"] = figures.predicted_vs_true(
                y_true.reshape(-1), y_pred.reshape(-1), f"predicted vs. true (val), {when}", target
            )
        images = {}
        for tag, fig in drawn.items():
            images[tag] = figures.to_rgb(fig)
            if self.save_figures:
                folder = Path(trainer.run_dir) / "figures"
                folder.mkdir(parents=True, exist_ok=True)
                figures.save_png(fig, folder / f"{tag.split('/')[-1]}.png")
        return images

    def _lr_figure(self, trainer) -> dict[str, np.ndarray]:
        from .. import figures

        steps, rates = self._rates()
        if not steps:
            return {}
        fig = figures.lr_schedule(steps, rates, trainer.steps_per_epoch)
        if self.save_figures:
            folder = Path(trainer.run_dir) / "figures"
            folder.mkdir(parents=True, exist_ok=True)
            figures.save_png(fig, folder / "lr_schedule.png")
        return {"figures/lr_schedule": figures.to_rgb(fig)}

    # -- end of the run
    def on_run_end(self, trainer, summary) -> None:
        if self.writer is None:
            return
        try:
            if summary["status"] != "interrupted" and trainer.history:
                when = f"weights of epoch {trainer.weights_epoch or trainer.epoch}"
                images = self._draw_figures(trainer, when) if self.figures else {}
                images |= self._lr_figure(trainer) if self.figures else {}
                trainer.run_async(self._write_epoch, trainer.epoch, {}, {}, images)
            trainer.run_async(self._write_text, "summary", _summary_text(summary), trainer.epoch)
            if summary.get("health"):
                report = "\n".join(f"- **{f['kind']}**: {f['message']}" for f in summary["health"])
                trainer.run_async(self._write_text, "health", report, trainer.epoch)
            if summary["status"] != "interrupted":
                trainer.run_async(
                    self._write_hparams, trainer.hparams, trainer.hparams_varied, summary
                )
        finally:
            trainer.run_async(self._close)

    def _write_text(self, tag: str, text: str, step: int) -> None:
        self.writer.add_text(tag, text, step)

    def _write_hparams(self, hparams: dict, varied: set[str], summary: dict) -> None:
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
        experiment, start, end = hparams_summary(clean, metrics)
        _mark_varied(experiment, varied)  # TensorBoard lists (and shows by default) these first
        file_writer = self.writer._get_file_writer()
        for proto in (experiment, start, end):
            file_writer.add_summary(proto)
        step = summary.get("epochs_run") or 0
        # (the test metrics were written by on_test_end)
        self._write_scalars({k: v for k, v in metrics.items() if not k.endswith("/test")}, step)

    def _close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()

    def _fold_rates(self) -> None:
        import torch

        if self._lr_steps:
            self._lr_history["steps"].append(torch.tensor(self._lr_steps, dtype=torch.int64))
            self._lr_history["values"].append(
                {k: torch.tensor(v, dtype=torch.float64) for k, v in self._lr_values.items()}
            )
            self._lr_steps, self._lr_values = [], {}

    def _rates(self) -> tuple[list[int], dict[str, list[float]]]:
        """Every step's learning rate so far, per parameter group."""
        import torch

        self._fold_rates()
        history = self._lr_history
        if not history["steps"]:
            return [], {}
        names = history["values"][-1].keys()
        values = {
            n: torch.cat([chunk[n] for chunk in history["values"] if n in chunk]).tolist()
            for n in names
        }
        return torch.cat(history["steps"]).tolist(), values

    def state_dict(self) -> dict:
        import torch

        self._fold_rates()
        history = self._lr_history
        if len(history["steps"]) > 1:  # keep few chunks: one per checkpoint would grow without end
            names = history["values"][-1].keys()
            history["values"] = [
                {n: torch.cat([c[n] for c in history["values"] if n in c]) for n in names}
            ]
            history["steps"] = [torch.cat(history["steps"])]
        return {
            "lr_steps": history["steps"][0]
            if history["steps"]
            else torch.zeros(0, dtype=torch.int64),
            "lr_values": history["values"][0] if history["values"] else {},
        }

    def load_state_dict(self, state: dict) -> None:
        steps = state.get("lr_steps")
        self._lr_steps, self._lr_values = [], {}
        if steps is not None and len(steps):
            self._lr_history = {"steps": [steps], "values": [dict(state.get("lr_values", {}))]}


def _summary_text(summary: dict) -> str:
    rows = [
        f"- status: **{summary['status']}**"
        + (f" ({summary['stop_reason']})" if summary.get("stop_reason") else "")
    ]
    if summary.get("best_val_metric") is not None:
        rows.append(
            f"- best {summary['monitor']}: {summary['best_val_metric']:.4g} at epoch {summary['best_epoch']}"
        )
    if summary.get("test"):
        rows.append(
            "- test: "
            + ", ".join(f"{k} {v:.4g}" for k, v in summary["test"].items())
            + (f" (on {summary['tested_on']})" if summary.get("tested_on") else "")
        )
    rows.append(
        f"- epochs run: {summary['epochs_run']} of {summary['max_epochs']}; wall time {summary['wall_time_s']:.1f} s"
    )
    if summary.get("error"):
        rows.append(f"- error: {summary['error']}")
    return "\n".join(rows)


def _mark_varied(experiment, varied: set[str]) -> None:
    """Flag the hyper-parameters a sweep varies in the experiment summary: TensorBoard sorts them
    first (and a sweep's HParams table shows them by default), the rest by name."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    value = experiment.value[0]
    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
    for info in data.experiment.hparam_infos:
        info.differs = info.name in varied
    value.metadata.plugin_data.content = data.SerializeToString()
