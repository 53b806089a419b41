"""Checkpoints: last.pt every epoch, best.pt on improvement, optionally the top k epochs."""

from __future__ import annotations

import math
from pathlib import Path

from ..checkpoints import copy_checkpoint, save_checkpoint
from ..errors import TrainingInterrupted
from .base import Callback, same_monitor


class ModelCheckpoint(Callback):
    """Writes `<run dir>/checkpoints/last.pt` after every epoch (or every n; always after the last
    epoch and when a run is interrupted), `best.pt` whenever the run's best epoch (trainer.monitor) improves,
    and with `save_top_k > 1` also the k best epochs as `epoch=007-loss_val=0.1234.pt`. Every
    write is atomic and happens off the training thread."""

    # After the loggers: a last.pt never holds an epoch whose TensorBoard events are not on disk.
    runs_last = True

    def __init__(
        self,
        monitor: str | None = None,
        mode: str | None = None,
        save_last: bool = True,
        save_best: bool = True,
        save_top_k: int = 1,
        every_n_epochs: int = 1,
        dirpath: str | None = None,
    ) -> None:
        self.monitor, self.mode = monitor, mode  # None: the run's (the only allowed choice)
        self.save_last, self.save_best, self.save_top_k = save_last, save_best, int(save_top_k)
        self.dirpath = dirpath
        if int(every_n_epochs) < 1:
            raise ValueError("every_n_epochs must be >= 1")
        self.every_n_epochs = int(every_n_epochs)
        self.best_epoch: int | None = None  # of the best.pt written
        self.top_k: list[tuple[float, int, str]] = []  # (value, epoch, file name)
        self.folder: Path | None = None

    @property
    def best_path(self) -> Path | None:
        """checkpoints/best.pt, once written (the Trainer tests on it)."""
        if self.best_epoch is None or not self.save_best or self.folder is None:
            return None
        return self.folder / "best.pt"

    def on_fit_start(self, run) -> None:
        same_monitor("model_checkpoint", run, self.monitor, self.mode)
        self.folder = Path(self.dirpath) if self.dirpath else Path(run.run_dir) / "checkpoints"

    def on_epoch_end(self, run, logs) -> None:
        best, epoch = run.record.best, run.state.epoch
        improved = best.epoch == epoch
        if improved:
            self.best_epoch = epoch
        # The run's last epoch is always saved: last.pt holds the state after the last trained
        # epoch (weights that early stopping restores afterwards live in best.pt).
        final = run.record.should_stop or epoch >= run.record.max_epochs
        due = self.save_last and (epoch % self.every_n_epochs == 0 or final)
        if not (due or (improved and self.save_best) or self.save_top_k > 1):
            return
        # Gathering the checkpoint is collective under DDP (every rank's RNG state): all ranks call it.
        state = run.checkpoint()
        if run.files is None:
            return
        if due:
            run.files.submit(save_checkpoint, state, self.folder / "last.pt")
        if improved and self.save_best:  # the same state: link the file rather than serialise twice
            if due:
                run.files.submit(copy_checkpoint, self.folder / "last.pt", self.folder / "best.pt")
            else:
                run.files.submit(save_checkpoint, state, self.folder / "best.pt")
        value = logs.get(best.monitor, math.nan)
        if self.save_top_k > 1 and math.isfinite(value):
            self._keep_top_k(run, state, value)

    def _save_last(self, run) -> None:
        state = run.checkpoint()  # collective under DDP
        if run.files is not None:
            run.files.submit(save_checkpoint, state, self.folder / "last.pt")

    def _keep_top_k(self, run, state: dict, value: float) -> None:
        best, epoch = run.record.best, run.state.epoch
        name = f"epoch={epoch:03d}-{best.monitor.replace('/', '_')}={value:.4f}.pt"
        self.top_k.append((value, epoch, name))
        self.top_k.sort(key=lambda item: item[0], reverse=best.mode == "max")
        if any(item[2] == name for item in self.top_k[: self.save_top_k]):
            run.files.submit(save_checkpoint, state, self.folder / name)
        for _, _, stale in self.top_k[self.save_top_k :]:
            run.files.submit(Path.unlink, self.folder / stale, True)
        self.top_k = self.top_k[: self.save_top_k]

    def on_exception(self, run, error) -> None:
        # Interrupted (Ctrl-C, preemption): save where the run stands so it can resume exactly.
        if isinstance(error, TrainingInterrupted) and self.save_last:
            self._save_last(run)

    def state_dict(self) -> dict:
        return {"best_epoch": self.best_epoch, "top_k": [list(t) for t in self.top_k]}

    def load_state_dict(self, state: dict) -> None:
        self.best_epoch = state["best_epoch"]
        self.top_k = [tuple(t) for t in state.get("top_k", [])]
