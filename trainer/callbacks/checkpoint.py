"""Checkpoints: last.pt on a time budget and at the end, best.pt of the best epoch, optionally
the top k epochs.

Durability: with `every_n_seconds=N`, a kill -9 (or a power cut) loses at most max(one epoch,
N seconds) of training, plus the few milliseconds a write takes; a signal (Ctrl-C, SIGTERM),
the end of the run and a crash write what is pending first.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from ..checkpoints import copy_checkpoint, save_checkpoint
from ..errors import TrainingInterrupted
from .base import Callback, same_monitor


def _several_processes() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class ModelCheckpoint(Callback):
    """Writes `<run dir>/checkpoints/last.pt` (the state after the newest epoch, to resume from)
    and `best.pt` (the run's best epoch, trainer.monitor), with `save_top_k > 1` also the k best
    epochs as `epoch=007-loss_val=0.1234.pt`. Every write is atomic and off the training thread.

    `every_n_seconds=N` is the time budget: last.pt is written at the end of an epoch when
    waiting for the next epoch's end would leave more than N seconds of training unsaved, so a
    kill -9 loses at most max(one epoch, N seconds). `N=0` writes it after every epoch. It is
    always written after the last epoch, when the run is interrupted (Ctrl-C, SIGTERM) and,
    from the newest state held in memory, before a crash ends the run. best.pt follows the same
    budget: an epoch that improves on the best is snapshotted in memory and written with the
    next last.pt (a hard link when it is the same epoch). `every_n_epochs=k` further restricts
    last.pt to every k-th epoch. Under DDP (several processes) every due epoch is written, as
    the processes must agree on when to gather the state."""

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
        every_n_seconds: float = 5.0,
        dirpath: str | None = None,
    ) -> None:
        self.monitor, self.mode = monitor, mode  # None: the run's (the only allowed choice)
        self.save_last, self.save_best, self.save_top_k = save_last, save_best, int(save_top_k)
        self.dirpath = dirpath
        if int(every_n_epochs) < 1:
            raise ValueError("every_n_epochs must be >= 1")
        if not float(every_n_seconds) >= 0 or math.isinf(float(every_n_seconds)):
            raise ValueError("every_n_seconds must be a number >= 0")
        self.every_n_epochs = int(every_n_epochs)
        self.every_n_seconds = float(every_n_seconds)
        self.best_epoch: int | None = None  # of the best.pt written (or held, to be written)
        self.top_k: list[tuple[float, int, str]] = []  # (value, epoch, file name)
        self.folder: Path | None = None
        # The best epoch's state while it is not on disk yet: (epoch, snapshot)
        self._pending_best: tuple[int, dict] | None = None
        self._saved_epoch = 0  # of the newest last.pt written (or queued)
        self._written_at = self._epoch_ended = 0.0  # time.monotonic()

    @property
    def best_path(self) -> Path | None:
        """checkpoints/best.pt, once written (the Trainer tests on it)."""
        if self.best_epoch is None or not self.save_best or self.folder is None:
            return None
        return self.folder / "best.pt"

    def on_fit_start(self, run) -> None:
        same_monitor("model_checkpoint", run, self.monitor, self.mode)
        self.folder = Path(self.dirpath) if self.dirpath else Path(run.run_dir) / "checkpoints"
        self._written_at = self._epoch_ended = time.monotonic()
        self._saved_epoch = run.state.epoch if run.state.epoch_complete else run.state.epoch - 1

    def _in_budget(self) -> bool:
        """Whether last.pt may wait for a later epoch: the training it would leave unsaved until
        the next epoch's end (judged by this epoch's length) stays within every_n_seconds."""
        now = time.monotonic()
        epoch_s, self._epoch_ended = now - self._epoch_ended, now
        if self.every_n_seconds == 0 or _several_processes():
            return False
        return now - self._written_at + epoch_s <= self.every_n_seconds

    def on_epoch_end(self, run, logs) -> None:
        best, epoch = run.record.best, run.state.epoch
        improved = best.epoch == epoch
        if improved:
            self.best_epoch = epoch
        # The run's last epoch is always saved: last.pt holds the state after the last trained
        # epoch (weights that early stopping restores afterwards live in best.pt).
        final = run.record.should_stop or epoch >= run.record.max_epochs
        write_now = final or not self._in_budget()
        due = self.save_last and (final or (write_now and epoch % self.every_n_epochs == 0))
        best_now = improved and self.save_best
        value = logs.get(best.monitor, math.nan)
        top_k = self.save_top_k > 1 and math.isfinite(value)
        if not (due or best_now or top_k or (write_now and self._pending_best)):
            return
        # Gathering the checkpoint is collective under DDP (every rank's RNG state): all ranks call it.
        state = run.checkpoint() if (due or best_now or top_k) else None
        if run.files is None:
            return
        if best_now and not write_now:  # held in memory until the budget or the run's end
            self._pending_best = (epoch, state)
        elif write_now and best_now:
            self._pending_best = None  # superseded by this epoch's
        elif write_now:
            self._write_pending_best(run)
        if due:
            self._write_last(run, state, epoch)
        if best_now and write_now:
            self._write_best(run, state, linked=due)
        if top_k:
            self._keep_top_k(run, state, value)

    def _write_last(self, run, state: dict, epoch: int) -> None:
        run.files.submit(save_checkpoint, state, self.folder / "last.pt")
        self._saved_epoch, self._written_at = epoch, time.monotonic()

    def _write_best(self, run, state: dict, linked: bool) -> None:
        # The same state as the last.pt just queued: link the file rather than serialise twice.
        if linked:
            run.files.submit(copy_checkpoint, self.folder / "last.pt", self.folder / "best.pt")
        else:
            run.files.submit(save_checkpoint, state, self.folder / "best.pt")

    def _write_pending_best(self, run, crashed: bool = False) -> None:
        """best.pt of an earlier epoch, held in memory; before a crash also last.pt from it when
        it is newer than the last.pt on disk (the newest state known to be whole)."""
        if self._pending_best is None or run.files is None:
            return
        (epoch, state), self._pending_best = self._pending_best, None
        newer = crashed and self.save_last and epoch > self._saved_epoch
        if newer:
            self._write_last(run, state, epoch)
        self._write_best(run, state, linked=newer)

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

    def on_fit_end(self, run) -> None:
        self._write_pending_best(run)  # (the last epoch's own write already took it)

    def on_exception(self, run, error) -> None:
        # Interrupted (Ctrl-C, preemption): save where the run stands so it can resume exactly.
        if isinstance(error, TrainingInterrupted):
            self._write_pending_best(run)
            if self.save_last:
                state = run.checkpoint()  # collective under DDP
                if run.files is not None:
                    self._write_last(run, state, run.state.epoch)
            return
        # A crash: the current state may be broken (NaN weights, half an epoch); what is held
        # from a finished epoch is whole.
        self._write_pending_best(run, crashed=True)

    def state_dict(self) -> dict:
        return {"best_epoch": self.best_epoch, "top_k": [list(t) for t in self.top_k]}

    def load_state_dict(self, state: dict) -> None:
        self.best_epoch = state["best_epoch"]
        self.top_k = [tuple(t) for t in state.get("top_k", [])]
