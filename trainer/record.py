"""The run's record: status, history, the best epoch, test results. What metrics.json says,
and what a checkpoint carries so that a resumed run's record continues where it stopped."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .best import BestEpoch
from .data.encoding import describe_columns
from .data.splits import absent_splits
from .errors import TrainingInterrupted, describe
from .files import BackgroundWriter, write_json
from .settings import TrainerSettings

SUMMARY_EVERY_S = 2.0  # metrics.json is rewritten at most this often while training


class RunRecord:
    """What happened in a run. `summary()` is metrics.json; `progress()` goes into checkpoints."""

    @property
    def max_epochs(self) -> int | None:
        return self._settings.max_epochs

    def __init__(self, run_dir: Path, settings: TrainerSettings) -> None:
        self.run_dir = Path(run_dir)
        self.best = BestEpoch(settings.monitor, settings.mode)
        self._settings = settings  # max_epochs may be None until the steps per epoch are known
        self.status = "created"
        self.stop_reason: str | None = None
        self.should_stop = False  # a callback asked to stop after this epoch
        self.error: str | None = None
        self.history: list[dict[str, float]] = []
        # the history's finished epochs as JSON text (progress_json)
        self._encoded_epochs: list[str] = []
        self.test: dict[str, float] | None = None
        self.tested_on: str | None = None
        self.restored: str | None = None
        self.weights_epoch: int | None = None  # set when the model holds an earlier epoch's weights
        self.skipped_steps = 0
        self.nonfinite: dict | None = None
        self.resumed_from: str | None = None
        self.global_step = 0
        self.environment: dict | None = None
        self.dataset: dict | None = None
        self.absent_splits: dict[str, str] = {}  # data.split left out validation or test
        self.pitfall: dict | None = None  # the pitfall lab's mistake and what it measured
        self._started = time.time()
        self._session_start = self._started
        self._wall_time_before = 0.0
        self._written = -1e9  # time.monotonic() of the last metrics.json write

    def describe_setup(
        self, device, precision: str, processes: int, spec, baseline: dict | None = None
    ) -> None:
        """Where the run trains and on what data (metrics.json's environment and dataset);
        `baseline`: the task's chance level on the train split (see health/baselines.py)."""
        import torch

        if self._settings.monitor != self.best.monitor:  # no validation split (prepare.place)
            self.best = BestEpoch(self._settings.monitor, self._settings.mode)
        self.environment = {
            "device": str(device),
            "precision": precision,
            "processes": processes,
            "torch_threads": torch.get_num_threads(),
            "torch": str(torch.__version__),
        }
        self.absent_splits = absent_splits(spec.sizes, self.best.monitor)
        self.dataset = {
            "name": spec.name,
            "task": spec.task,
            "sizes": spec.sizes,
            "num_classes": spec.num_classes,
        }
        if baseline is not None:
            self.dataset["baseline"] = baseline
        if spec.columns:  # a table: what became of each of its columns
            report = describe_columns(spec.columns)
            self.dataset["columns"] = [{"name": n, "treatment": t} for n, t in report]

    # -- as the run goes
    def start(self) -> None:
        self.status = "running"
        self._session_start = time.time()

    def add_epoch(self, logs: dict[str, float], global_step: int) -> bool:
        """Append an epoch's logs; True when it is the best epoch so far."""
        self.history.append(logs)
        self.global_step = global_step
        return self.best.update(int(logs["epoch"]), logs)

    def request_stop(self, reason: str) -> None:
        self.should_stop, self.stop_reason = True, reason

    def stopped(self) -> None:
        """fit() ended normally: early (before max_epochs), or at max_epochs."""
        last = int(self.history[-1]["epoch"]) if self.history else 0
        if self.should_stop and last < self.max_epochs:
            self.status = "stopped_early"
            return
        self.status = "completed"
        also = " (early stopping would have stopped there too)" if self.should_stop else ""
        self.stop_reason = f"reached trainer.max_epochs={self.max_epochs}{also}"

    def failed(self, error: BaseException, epoch: int) -> None:
        if isinstance(error, TrainingInterrupted):
            self.status = "interrupted"
            self.stop_reason = f"interrupted by {error.signal_name} in epoch {epoch}"
        elif isinstance(error, KeyboardInterrupt):
            self.status = "interrupted"
        else:
            self.status = "failed"
            self.error = self.error or describe(error)

    def note_restored(self, epoch: int, text: str) -> None:
        """The model now holds the weights of an earlier epoch (early stopping restored them)."""
        self.restored, self.weights_epoch = text, epoch
        if self.stop_reason:
            self.stop_reason = f"{self.stop_reason}; restored epoch {epoch}"

    def wall_time(self) -> float:
        return self._wall_time_before + (time.time() - self._session_start)

    # -- files
    def write(self, files: BackgroundWriter | None, force: bool = False) -> None:
        """Queue metrics.json (at most every SUMMARY_EVERY_S unless forced; never on other ranks)."""
        now = time.monotonic()
        if files is not None and (force or now - self._written >= SUMMARY_EVERY_S):
            self._written = now
            files.submit(write_json, self.summary(), self.run_dir / "metrics.json")

    def progress(self) -> dict[str, Any]:
        """The part of the record a checkpoint carries."""
        return {
            "best": self.best.state_dict(),
            "skipped_steps": self.skipped_steps,
            "wall_time_s": self.wall_time(),
            "stop_reason": self.stop_reason,
            "should_stop": self.should_stop,
            "history": self.history,
        }

    def progress_json(self) -> str:
        """`json.dumps(self.progress())`, byte for byte, with each finished epoch of the history
        encoded once rather than at every checkpoint (0.1 ms of each at epoch 40 of moons). The
        newest epoch is encoded anew: its callbacks may still add to its logs (lr_monitor)."""
        finished = len(self.history) - 1
        while len(self._encoded_epochs) < finished:
            self._encoded_epochs.append(json.dumps(self.history[len(self._encoded_epochs)]))
        progress = self.progress()
        epochs = self._encoded_epochs[: max(finished, 0)]
        epochs += [json.dumps(logs) for logs in progress.pop("history")[len(epochs) :]]
        return json.dumps(progress)[:-1] + ', "history": [' + ", ".join(epochs) + "]}"

    def load_progress(self, progress: dict[str, Any]) -> None:
        self.history = list(progress["history"])
        self._encoded_epochs = []
        self.best.load_state_dict(progress["best"])
        self.skipped_steps = progress["skipped_steps"]
        self._wall_time_before = progress["wall_time_s"]
        self.stop_reason, self.should_stop = progress["stop_reason"], progress["should_stop"]

    def summary(self) -> dict[str, Any]:
        """The run's record, as written to metrics.json."""
        last = self.history[-1] if self.history else {}
        return {
            "status": self.status,
            "stop_reason": self.stop_reason,
            "error": self.error,
            "monitor": self.best.monitor,
            "mode": self.best.mode,
            "best_val_metric": self.best.value,
            "best_epoch": self.best.epoch,
            "best": dict(self.best.metrics),
            "restored": self.restored,
            "final": {
                split: {k.rsplit("/", 1)[0]: v for k, v in last.items() if k.endswith("/" + split)}
                for split in ("train", "val")
            },
            "test": self.test,
            "tested_on": self.tested_on,
            **({"absent_splits": self.absent_splits} if self.absent_splits else {}),
            "epochs_run": len(self.history),
            "max_epochs": self.max_epochs,
            "global_step": self.global_step,
            "skipped_steps": self.skipped_steps,
            "nonfinite": self.nonfinite,
            "wall_time_s": round(self.wall_time(), 3),
            "started_at": _iso(self._started),
            "updated_at": _iso(time.time()),
            "resumed_from": self.resumed_from,
            "run_dir": str(self.run_dir),
            "environment": self.environment,
            "dataset": self.dataset,
            **({"pitfall": self.pitfall} if self.pitfall is not None else {}),
            "history": self.history,
        }


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")
