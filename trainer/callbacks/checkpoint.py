"""Checkpoints: last.pt every epoch, best.pt on improvement, optionally the top k epochs."""

from __future__ import annotations

import math
from pathlib import Path

from .base import Callback


class ModelCheckpoint(Callback):
    """Writes `<run dir>/checkpoints/last.pt` after every epoch (or every n; always at the end and
    when a run is interrupted),
    `best.pt` whenever `monitor` improves, and with `save_top_k > 1` also the k best epochs as
    `epoch=007-loss_val=0.1234.pt`. Every write is atomic and happens off the training thread."""

    def __init__(
        self,
        monitor: str = "loss/val",
        mode: str = "min",
        save_last: bool = True,
        save_best: bool = True,
        save_top_k: int = 1,
        every_n_epochs: int = 1,
        dirpath: str | None = None,
    ) -> None:
        if mode == "auto":
            from ..metrics import metric_mode

            mode = metric_mode(monitor)
        self.monitor, self.mode = monitor, mode
        self.save_last, self.save_best, self.save_top_k = save_last, save_best, int(save_top_k)
        self.dirpath = dirpath
        if int(every_n_epochs) < 1:
            raise ValueError("every_n_epochs must be >= 1")
        self.every_n_epochs = int(every_n_epochs)
        self._written_epoch: int | None = None
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.top_k: list[tuple[float, int, str]] = []  # (value, epoch, file name)
        self.active = False

    @property
    def folder(self) -> Path:
        return Path(self.dirpath) if self.dirpath else self._run_dir / "checkpoints"

    @property
    def best_path(self) -> Path | None:
        return self.folder / "best.pt" if self.best_epoch is not None and self.save_best else None

    def on_fit_start(self, trainer) -> None:
        self.active = trainer.writes_files
        self._run_dir = Path(trainer.run_dir)

    def _improved(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best is None:
            return True
        return value < self.best if self.mode == "min" else value > self.best

    def on_epoch_end(self, trainer, logs) -> None:
        value = logs.get(self.monitor, float("nan"))
        improved = self._improved(value)
        if improved:
            self.best, self.best_epoch = value, trainer.epoch
        due = self.save_last and (trainer.epoch % self.every_n_epochs == 0 or trainer.should_stop)
        if not (due or (improved and self.save_best) or self.save_top_k > 1):
            return
        # Gathering the checkpoint is collective under DDP (every rank's RNG state): all ranks call it.
        state = trainer.checkpoint_state()
        if due:
            self._written_epoch = trainer.epoch
        if not self.active:
            return
        if due:
            trainer.write_checkpoint(state, self.folder / "last.pt")
        if improved and self.save_best:  # the same state: link the file rather than serialise twice
            if due:
                trainer.copy_checkpoint(self.folder / "last.pt", self.folder / "best.pt")
            else:
                trainer.write_checkpoint(state, self.folder / "best.pt")
        if self.save_top_k > 1 and math.isfinite(value):
            self._keep_top_k(trainer, state, value)

    def on_fit_end(self, trainer) -> None:
        if self.save_last and self._written_epoch != trainer.epoch and trainer.history:
            state = trainer.checkpoint_state()  # with every_n_epochs > 1: the final state too
            if self.active:
                trainer.write_checkpoint(state, self.folder / "last.pt")

    def _keep_top_k(self, trainer, state: dict, value: float) -> None:
        name = f"epoch={trainer.epoch:03d}-{self.monitor.replace('/', '_')}={value:.4f}.pt"
        self.top_k.append((value, trainer.epoch, name))
        self.top_k.sort(key=lambda item: item[0], reverse=self.mode == "max")
        if any(item[2] == name for item in self.top_k[: self.save_top_k]):
            trainer.write_checkpoint(state, self.folder / name)
        for _, _, stale in self.top_k[self.save_top_k :]:
            trainer.delete_file(self.folder / stale)
        self.top_k = self.top_k[: self.save_top_k]

    def on_exception(self, trainer, error) -> None:
        from ..errors import TrainingInterrupted

        # Interrupted (Ctrl-C, preemption): save where the run stands so it can resume exactly.
        if isinstance(error, TrainingInterrupted) and self.save_last:
            state = trainer.checkpoint_state()
            if self.active:
                trainer.write_checkpoint(state, self.folder / "last.pt")

    def state_dict(self) -> dict:
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "top_k": [list(t) for t in self.top_k],
        }

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.top_k = [tuple(t) for t in state.get("top_k", [])]
