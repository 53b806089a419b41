"""Progress in the terminal: rich bars on a TTY, one compact line per epoch otherwise."""

from __future__ import annotations

import math
import time

from .base import Callback

SHORT = {"loss": "loss", "accuracy": "acc", "mae": "mae", "rmse": "rmse", "r2": "r2"}
SHORT |= {
    "precision_macro": "prec",
    "recall_macro": "rec",
    "f1_macro": "f1",
    "exact_match": "exact",
}


def _fmt(value: float) -> str:
    if value is None or not math.isfinite(value):
        return str(value)
    return (
        f"{value:.2e}"
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e4)
        else f"{value:.4f}"
    )


def epoch_line(
    logs: dict[str, float], max_epochs: int, monitor: str, is_best: bool, layout=None
) -> str:
    """`epoch  3/50  train loss 0.4123 acc 0.8123 | val loss 0.3981 acc 0.8333 | lr 1.00e-03 | 0.05s *`
    (`layout`: `line_layout(logs)` of an earlier epoch with the same keys, to skip that work)."""
    width = len(str(max_epochs))
    parts = [f"epoch {logs['epoch']:>{width}}/{max_epochs}"]
    splits, lr = layout or line_layout(logs)
    for split, items in splits:
        parts.append(f"{split} " + " ".join(f"{short} {_fmt(logs[k])}" for k, short in items))
    if lr is not None:  # the first parameter group's (all groups are in TensorBoard)
        parts.append(f"lr {logs[lr]:.2e}")
    parts.append(f"{logs.get('time/epoch_s', 0.0):.2f}s")
    line = " | ".join(parts)
    return line + (f"  * best {monitor}" if is_best else "")


def line_layout(logs: dict[str, float]) -> tuple[list, str | None]:
    """Which values an epoch line shows, in order: per split its (key, short name) pairs (not
    each label's own), and the key of the learning rate shown."""
    splits = []
    for split in ("train", "val"):
        items = [
            (k, SHORT.get(k.split("/")[0], k.split("/")[0]))
            for k in logs
            if k.endswith("/" + split) and k.count("/") == 1
        ]
        if items:
            splits.append((split, items))
    lr = next((k for k in logs if k == "lr" or k.startswith("lr/")), None)
    return splits, lr


class ProgressBar(Callback):
    """A live bar over epochs and batches (loss, monitored metric, lr, ETA) when a person watches
    a terminal; otherwise, and always in the log file, one line per epoch."""

    def __init__(self, refresh_s: float = 0.1, bars: str = "auto") -> None:
        self.refresh_s = refresh_s
        self.bars = bars  # auto (when the terminal is interactive) | always | never
        self._progress = None

    def on_fit_start(self, run) -> None:
        from .. import console

        self._active = run.is_main_process
        self._best_value = None
        self._next_refresh = 0.0
        self._layout_keys: tuple = ()
        self._layout = None
        use_bars = self._active and (
            self.bars == "always" or (self.bars == "auto" and console.interactive())
        )
        self.batch_hooks = ("on_train_batch_end",) if use_bars else ()  # (lines: per epoch)
        if use_bars:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
                console=console.console(),
                transient=True,
            )
            self._progress.start()
            self._epochs = self._progress.add_task(
                "epochs", total=run.record.max_epochs, completed=run.state.epoch, info=""
            )
            self._batches = self._progress.add_task(
                "batches", total=run.state.batches_per_epoch, info=""
            )
            self._next_refresh = 0.0

    def on_train_epoch_start(self, run) -> None:
        if self._progress is not None:
            self._progress.reset(
                self._batches,
                total=run.state.batches_per_epoch,
                description=f"epoch {run.state.epoch}",
                info="",
            )

    def on_train_batch_end(self, run, batch_idx, loss) -> None:
        if self._progress is None:
            return
        now = time.monotonic()
        if now >= self._next_refresh:  # reading the loss synchronises: only at the refresh rate
            self._next_refresh = now + self.refresh_s
            lr = run.state.optimizer.param_groups[0]["lr"]
            self._progress.update(
                self._batches,
                completed=batch_idx + 1,
                info=f"loss {loss.float().item():.4f}  lr {lr:.2e}",
            )

    def on_epoch_end(self, run, logs) -> None:
        if not self._active:
            return
        from .. import console

        best, epoch = run.record.best, run.state.epoch
        keys = tuple(logs)
        if keys != self._layout_keys:  # (the same keys every epoch, as a rule)
            self._layout_keys, self._layout = keys, line_layout(logs)
        line = epoch_line(
            logs, run.record.max_epochs, best.monitor, best.epoch == epoch, self._layout
        )
        if self._progress is not None:
            self._progress.update(
                self._epochs,
                completed=epoch,
                info=f"{best.monitor} {_fmt(logs.get(best.monitor))}",
            )
            self._progress.console.print(line, markup=False, soft_wrap=True)
        else:  # a log file or a pipe: plain text, flushed at most every refresh_s
            out = console.console().file
            out.write(line + "\n")
            now = time.monotonic()
            if now >= self._next_refresh:  # (one flush per line cost 3% of a short epoch)
                self._next_refresh = now + self.refresh_s
                out.flush()
        console.file_only(line)

    def _close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        elif self._active:  # the epoch lines not flushed yet
            from .. import console

            console.console().file.flush()

    def on_fit_end(self, run) -> None:
        self._close()

    def on_exception(self, run, error) -> None:
        self._close()
