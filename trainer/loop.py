"""The Trainer: the classic PyTorch training loop, right by default, with callbacks at named points.

    for epoch in epochs:
        model.train()
        for x, y in batches:                      # in-memory tensors, indexed on the device
            zero_grad -> forward -> loss -> backward -> (clip) -> step -> (per-step schedule)
        model.eval(); inference_mode()             # validation, metrics over the whole split
        (per-epoch schedule) -> callbacks: early stopping, checkpoints, loggers
    test once, at the end, on the best weights

Mixed precision, DDP and the background file writer sit in small helpers (precision.py,
distributed.py, checkpoints.py) so the loop itself stays visible.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import signal
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import __version__
from .callbacks.base import PER_BATCH_HOOKS, Callback, overrides
from .checkpoints import (
    BackgroundWriter,
    copy_checkpoint,
    freeze,
    load_checkpoint,
    resolve_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
    write_json,
)
from .data.batches import EvalBatches, TensorBatches
from .data.module import DataModule
from .devices import resolve_device
from .distributed import Distributed, peer_failure
from .errors import (
    DistributedFailure,
    NonFiniteError,
    TrainingInterrupted,
    UserError,
    choices_text,
    describe,
)
from .losses import head_for
from .metrics import MetricAccumulator, metric_mode, metric_names
from .optim import build_optimizer
from .precision import Precision
from .schedulers import Schedule, build_schedule

log = logging.getLogger("trainer")

CHECKPOINT_FORMAT = 1
# Checkpoint parts stored packed (see checkpoints.pack); the model's weights stay one tensor each.
PACKED_PARTS = ("optimizer", "scheduler", "precision", "callbacks", "train_metrics", "rng")
JSON_PARTS = ("data",)  # the preprocessing: plain numbers and names


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (all devices): the same seed gives the same run."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    """Trains `model` with `loss` and an optimizer built from `optimizer` (a factory taking the
    parameter groups, e.g. `functools.partial(torch.optim.AdamW, lr=1e-3)` or a Hydra `_partial_`).

    `fit(data)` trains and validates every epoch; `test(data)` evaluates the test split once, on
    the best weights; `finish()` writes the run's metrics.json and closes the loggers.
    """

    def __init__(
        self,
        model: nn.Module,
        loss: nn.Module,
        optimizer: Any,
        scheduler: Any = None,
        *,
        scheduler_interval: str | None = None,
        callbacks: Mapping[str, Callback] | Iterable[Callback] | None = None,
        loggers: Mapping[str, Callback] | Iterable[Callback] | None = None,
        max_epochs: int = 50,
        batch_size: int = 32,
        eval_batch_size: int = 1024,
        device: str = "auto",
        precision: str | int = "32",
        seed: int = 42,
        monitor: str = "loss/val",
        mode: str = "auto",
        grad_clip: Mapping[str, float | None] | None = None,
        accumulate_grad_batches: int = 1,
        on_nonfinite: str = "stop",
        check_finite_every_n_steps: int = 25,
        detect_anomaly: bool = False,
        deterministic: bool = False,
        fast_dev_run: bool = False,
        overfit_batches: int = 0,
        limit_train_batches: int | float | None = None,
        limit_val_batches: int | float | None = None,
        strategy: str = "auto",
        ddp_backend: str = "auto",
        resume: str | None = None,
        num_threads: int | None = None,
        decay_bias_and_norm: bool = True,
        module_lr: Mapping[str, float] | None = None,
        run_dir: str | os.PathLike | None = None,
        run_config: dict | None = None,
    ) -> None:
        self.model, self.loss_fn = model, loss
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.scheduler_interval = scheduler_interval
        # Loggers are callbacks too; they run after the others, so they see everything logged.
        self.callbacks = _named(callbacks) | _named(loggers)
        self.loggers = list(_named(loggers).values())
        self.max_epochs, self.batch_size, self.eval_batch_size = (
            int(max_epochs),
            int(batch_size),
            int(eval_batch_size),
        )
        self.device_name, self.precision_name, self.seed = device, precision, int(seed)
        self.monitor = monitor
        self.mode = metric_mode(monitor) if mode == "auto" else mode
        clip = dict(grad_clip or {})
        self.clip_norm, self.clip_value = clip.get("norm"), clip.get("value")
        self.accumulate_grad_batches = int(accumulate_grad_batches)
        self.on_nonfinite, self.check_finite_every_n_steps = (
            on_nonfinite,
            int(check_finite_every_n_steps),
        )
        self.detect_anomaly, self.deterministic = detect_anomaly, deterministic
        self.fast_dev_run, self.overfit_batches = fast_dev_run, int(overfit_batches or 0)
        self.limit_train_batches, self.limit_val_batches = limit_train_batches, limit_val_batches
        self.strategy, self.ddp_backend = strategy, ddp_backend
        self.resume_from, self.num_threads = resume, num_threads
        self.decay_bias_and_norm, self.module_lr = decay_bias_and_norm, dict(module_lr or {})
        self.run_dir = Path(run_dir) if run_dir is not None else _default_run_dir()
        self.config = run_config or {}  # the resolved config, saved with checkpoints
        self.hparams: dict[str, Any] = {}
        self.hparams_varied: set[str] = set()  # what a sweep varies (listed first in TensorBoard)
        if self.fast_dev_run:
            self.max_epochs = 1
        self._check_settings()

        # Progress of the run; all of it is saved in checkpoints.
        self.epoch = 0  # the epoch in progress or last completed (1-based)
        self.global_step = 0  # optimizer steps taken
        self.history: list[dict[str, float]] = []
        self.best: dict[str, Any] = {}  # {"epoch", "value", "metrics"} of the best monitored epoch
        self.test_metrics: dict[str, float] | None = None
        self.tested_on: str | None = None
        self.status = "created"
        self.should_stop = False
        self.stop_reason: str | None = None
        self.restored: str | None = None
        self.skipped_steps = 0
        self.nonfinite: dict | None = None
        self.error: str | None = None
        self.resumed_from: str | None = None
        self.weights_epoch: int | None = None  # set when the model holds an earlier epoch's weights
        self.data: DataModule | None = None
        self.head = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.schedule: Schedule | None = None
        self.grad_norm_interval = 0  # loggers ask for the gradient norm every n steps
        self.grad_norm: torch.Tensor | None = None  # of the last step where it was computed
        self._wall_time_before = 0.0
        self._started = time.time()
        self._setup_done = False
        self._interrupt: str | None = None
        self._writer = BackgroundWriter()
        self._summary_written = -1e9  # time.monotonic() of the last metrics.json write
        self._batches_done = 0  # batches of the current epoch done (mid-epoch resume)
        self._epoch_complete = True

    # ------------------------------------------------------------------ set-up
    def _check_settings(self) -> None:
        positive = {
            "trainer.max_epochs": self.max_epochs,
            "trainer.batch_size": self.batch_size,
            "trainer.eval_batch_size": self.eval_batch_size,
            "trainer.accumulate_grad_batches": self.accumulate_grad_batches,
            "trainer.check_finite_every_n_steps": self.check_finite_every_n_steps,
        }
        for key, value in positive.items():
            if value < 1:
                raise UserError(f"{key} must be a positive whole number, got {value}.", key=key)
        if self.mode not in ("min", "max"):
            raise UserError(
                f"trainer.mode='{self.mode}' is not valid; choose min, max or auto.",
                key="trainer.mode",
            )
        if self.on_nonfinite not in ("stop", "skip"):
            raise UserError(
                f"trainer.on_nonfinite='{self.on_nonfinite}' is not valid; choose stop or skip.",
                key="trainer.on_nonfinite",
            )
        for key, value in (
            ("trainer.grad_clip.norm", self.clip_norm),
            ("trainer.grad_clip.value", self.clip_value),
        ):
            if value is not None and not value > 0:
                raise UserError(
                    f"{key} must be positive (or null for no clipping), got {value}.", key=key
                )
        if self.overfit_batches < 0:
            raise UserError(
                f"trainer.overfit_batches must be >= 0, got {self.overfit_batches}.",
                key="trainer.overfit_batches",
            )
        for key, value in (
            ("trainer.limit_train_batches", self.limit_train_batches),
            ("trainer.limit_val_batches", self.limit_val_batches),
        ):
            _batch_limit(value, 1, key)  # validates

    def setup(self, data: DataModule) -> None:
        """Device, precision, processes, data on the device, optimizer, schedule, resume.
        `fit`, `validate` and `test` call it; call it first to inspect the set-up."""
        if self._setup_done:
            return
        self.data = data
        self.dist = Distributed(self.strategy, self.ddp_backend)
        self.device = resolve_device(self.device_name, self.dist.local_rank)
        self.dist.check_device(self.device, data.spec.sizes["train"])
        if self.num_threads:
            torch.set_num_threads(int(self.num_threads))
        if self.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
        if self.dist.active:  # distinct dropout noise per process; identical weights come from DDP
            torch.manual_seed(self.seed + self.dist.rank)
        self.precision = Precision(self.precision_name, self.device)
        self.head = head_for(
            self.loss_fn,
            data.spec.task,
            data.spec.num_classes,
            data.spec.num_targets,
            type(self.loss_fn).__name__,
            data.spec.name,
        )
        if self.monitor not in self.available_metrics():
            raise UserError(
                f"trainer.monitor='{self.monitor}' is not a metric of this run; valid: "
                f"{choices_text(self.available_metrics())}.",
                key="trainer.monitor",
            )

        self.model.to(self.device)
        self.loss_fn.to(self.device)
        self.unwrapped_model = self.model
        self.model = self.dist.wrap(self.model, self.device)
        self._params = [p for p in self.unwrapped_model.parameters() if p.requires_grad]
        self._target_std = (
            None
            if data.target_scaler is None
            else torch.as_tensor(data.target_scaler.std, dtype=torch.float32)
        )
        self._tensors = {
            name: (torch.as_tensor(x).to(self.device), self.head.targets(y).to(self.device))
            for name, (x, y) in data.arrays.items()
        }  # moved to the device once
        self.train_batches = self._training_batches()
        self.steps_per_epoch = -(-len(self.train_batches) // self.accumulate_grad_batches)

        if self.optimizer_factory is None or isinstance(
            self.optimizer_factory, torch.optim.Optimizer
        ):
            self.optimizer = self.optimizer_factory  # None: evaluation only
        else:
            self.optimizer = build_optimizer(
                self.optimizer_factory,
                self.unwrapped_model,
                self.device,
                self.decay_bias_and_norm,
                self.module_lr,
            )
        if self.scheduler_factory is not None:
            self.schedule = build_schedule(
                self.scheduler_factory,
                self.optimizer,
                self.scheduler_interval,
                self.steps_per_epoch,
                self.max_epochs,
            )
        self._autocast = self.precision.autocast()  # re-entered every batch (no-op at fp32)
        self._last_loss: torch.Tensor | None = None
        self._data_state = data.state_dict()
        self._versions = {"trainer": __version__, "torch": str(torch.__version__)}
        self._history_json: list[str] = []
        self._per_batch = {
            hook: [cb for cb in self.callbacks.values() if overrides(cb, hook)]
            for hook in PER_BATCH_HOOKS
        }
        self._setup_done = True
        if self.resume_from:
            self._resume(resolve_checkpoint(self.resume_from))

    def _training_batches(self) -> TensorBatches:
        x, y = self._tensors["train"]
        if self.overfit_batches:  # the same first N batches every epoch, no shuffle
            return TensorBatches(
                x,
                y,
                self.batch_size,
                shuffle=False,
                rank=self.dist.rank,
                world_size=self.dist.world_size,
                limit=self.overfit_batches,
            )
        full = TensorBatches(
            x,
            y,
            self.batch_size,
            seed=self.seed,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
        )
        limit = (
            1
            if self.fast_dev_run
            else _batch_limit(self.limit_train_batches, len(full), "trainer.limit_train_batches")
        )
        full.num_batches = min(full.num_batches, limit) if limit is not None else full.num_batches
        return full

    def _eval_batches(self, split: str) -> EvalBatches:
        if self.overfit_batches and split == "val":  # validate on the very batches it trains on
            x, y = self._tensors["train"]
            n = min(len(x), self.overfit_batches * self.batch_size)
            return EvalBatches(
                x[:n],
                y[:n],
                self.eval_batch_size,
                rank=self.dist.rank,
                world_size=self.dist.world_size,
            )
        x, y = self._tensors[split]
        batches = EvalBatches(
            x, y, self.eval_batch_size, rank=self.dist.rank, world_size=self.dist.world_size
        )
        limit = (
            1
            if self.fast_dev_run
            else _batch_limit(
                self.limit_val_batches if split == "val" else None,
                len(batches),
                f"trainer.limit_{split}_batches",
            )
        )
        if limit is not None:
            batches.num_batches = min(batches.num_batches, limit)
        return batches

    # ------------------------------------------------------------------ fit
    def fit(self, data: DataModule) -> dict[str, Any]:
        """Train for up to `max_epochs`, validating after every epoch."""
        self.setup(data)
        self.status = "running"
        self._session_start = time.time()
        self._write_summary()
        self._call("on_fit_start")
        anomaly = (
            torch.autograd.detect_anomaly() if self.detect_anomaly else contextlib.nullcontext()
        )
        with self._signals_trapped(), anomaly:
            try:
                while (
                    self.epoch < self.max_epochs or not self._epoch_complete
                ) and not self.should_stop:
                    self._run_epoch()
                    if self._interrupt_agreed():
                        raise TrainingInterrupted(self._interrupt)
            except BaseException as error:
                lost = peer_failure(error) if self.dist.active else None
                if lost is not None:  # not a bug here: say what happened instead of a traceback
                    error = DistributedFailure(lost)
                if isinstance(error, TrainingInterrupted):
                    self.status = "interrupted"
                    self.stop_reason = f"interrupted by {error.signal_name} in epoch {self.epoch}"
                else:
                    self.status = "failed"
                    self.error = describe(error)
                self._call("on_exception", error)  # e.g. the checkpoint callback saves last.pt
                self._wait_for_writes_quietly()
                if isinstance(error, DistributedFailure):
                    raise error from None
                raise
        self.status = "stopped_early" if self.should_stop else "completed"
        if not self.should_stop:
            self.stop_reason = f"reached trainer.max_epochs={self.max_epochs}"
        self._call("on_fit_end")
        self._write_summary(force=True)
        if self.writes_files:
            self._writer.wait()  # checkpoints and metrics.json are on disk when fit returns
        return self.summary()

    def _run_epoch(self) -> None:
        if self._epoch_complete:
            self.epoch += 1
            self._batches_done = 0
            self._train_metrics = self._new_metrics()
        started = time.perf_counter()
        train = self._train_epoch()
        train_time = time.perf_counter() - started
        val = self.validate()
        logs: dict[str, float] = {"epoch": self.epoch}
        logs |= {f"{name}/train": value for name, value in train.items()}
        logs |= {f"{name}/val": value for name, value in val.items()}
        if self._grad_norm_count:
            logs["grad_norm"] = (self._grad_norm_sum / self._grad_norm_count).item()
        logs["time/epoch_s"] = time.perf_counter() - started
        logs["throughput/samples_per_s"] = self.train_batches.samples() / max(train_time, 1e-9)
        if self.schedule is not None and self.schedule.interval == "epoch":
            if self.schedule.on_metric:
                self.schedule.scheduler.step(logs[self.monitor])
            else:
                self.schedule.scheduler.step()
        self._update_best(logs)
        self.history.append(logs)
        self._call("on_epoch_end", logs)  # early stopping, checkpoints, then the loggers
        self._write_summary()

    def _train_epoch(self) -> dict[str, float]:
        """One pass over the training batches; returns the epoch's training metrics."""
        self.model.train()
        self._call("on_train_epoch_start")
        self._grad_norm_sum, self._grad_norm_count = torch.zeros((), device=self.device), 0
        self._last_check_step = self.global_step
        accumulate, world = self.accumulate_grad_batches, self.dist.world_size
        batches = self.train_batches
        group_samples = self._group_sizes(batches)
        skip_nonfinite = self.on_nonfinite == "skip"
        self._epoch_complete = False
        for batch_idx, (x, y) in enumerate(
            batches.batches(self.epoch, self._batches_done), start=self._batches_done
        ):
            if batch_idx % accumulate == 0:  # between optimizer steps
                # A signal stops the run here; under DDP the ranks agree at the periodic check.
                if self._interrupt is not None and not self.dist.active:
                    raise TrainingInterrupted(self._interrupt)
                self.optimizer.zero_grad(set_to_none=True)
            last_in_group = (batch_idx + 1) % accumulate == 0 or batch_idx + 1 == len(batches)
            self._call_batch("on_train_batch_start", batch_idx)

            with self._forward_context(last_in_group):
                outputs = self.model(x)
                loss = self.loss_fn(outputs, y)
            # Each micro-batch counts by its share of the samples in its optimizer step (and, under
            # DDP, of the global batch): accumulation and DDP both average over the right samples.
            share = len(x) * world / group_samples[batch_idx // accumulate]
            self.precision.backward(loss if share == 1.0 else loss * share)
            self._call_batch("on_after_backward")

            self._last_loss = loss = loss.detach()
            if not skip_nonfinite or torch.isfinite(loss).item():
                self._train_metrics.update(loss, outputs.detach(), y)
            self._batches_done = batch_idx + 1
            if last_in_group:
                self._optimizer_step()
            self._call_batch("on_train_batch_end", batch_idx, loss)
        self._epoch_complete = True
        self._check_finite(may_interrupt=False)
        return self._train_metrics.compute(self.dist.all_reduce_sum)

    def _optimizer_step(self) -> None:
        # True gradients (unscaled under fp16) before clipping or reading their norm.
        self.precision.unscale(self.optimizer)
        self._call_batch("on_before_optimizer_step")
        norm = None
        if self.clip_norm is not None:
            norm = nn.utils.clip_grad_norm_(
                self._params, self.clip_norm, foreach=self.device.type != "mps"
            )
        elif self.on_nonfinite == "skip" or (
            self.grad_norm_interval and self.global_step % self.grad_norm_interval == 0
        ):
            norm = nn.utils.get_total_norm([p.grad for p in self._params if p.grad is not None])
        if self.on_nonfinite == "skip" and not torch.isfinite(norm).item():
            # The gradients are the same on every rank after DDP's all-reduce: all ranks skip together.
            self.skipped_steps += 1
            self.optimizer.zero_grad(set_to_none=True)
            if self.precision.scaler is not None:
                self.precision.scaler.update()
            return
        if self.clip_value is not None:
            nn.utils.clip_grad_value_(self._params, self.clip_value)
        if norm is not None:
            self._grad_norm_sum += norm.detach()
            self._grad_norm_count += 1
            self.grad_norm = norm.detach()
        self.precision.step(self.optimizer)
        if self.schedule is not None and self.schedule.interval == "step":
            self.schedule.scheduler.step()
        self.global_step += 1
        if self.global_step % self.check_finite_every_n_steps == 0:
            self._check_finite(may_interrupt=True)

    def _group_sizes(self, batches: TensorBatches) -> list[int]:
        """Global samples in each optimizer step of the epoch (each group of accumulated batches)."""
        sizes, size = batches.global_sizes(), self.accumulate_grad_batches
        return [sum(sizes[i : i + size]) for i in range(0, len(sizes), size)]

    def _forward_context(self, last_in_group: bool):
        """Autocast for mixed precision; under DDP with accumulation, no gradient all-reduce
        until the last micro-batch of the group. One shared no-op context otherwise."""
        if self.dist.active and not last_in_group:
            return _Both(self.model.no_sync(), self.precision.autocast())
        return self._autocast

    # ------------------------------------------------------------------ checks between steps
    def _check_finite(self, may_interrupt: bool) -> None:
        """Stop when the loss went NaN/inf (with on_nonfinite=stop).

        Runs every `check_finite_every_n_steps` optimizer steps and at the end of each epoch, not
        per step: mid-epoch the latest loss is checked (once the loss or the weights are NaN,
        every later loss is too), at the end of the epoch the running loss sum, which turned
        non-finite with the first such batch. Under DDP the ranks agree here, in one small
        collective, on both this and on a pending SIGINT/SIGTERM.
        """
        checks_loss = self.on_nonfinite == "stop"
        interrupted = self._interrupt is not None
        bad = False
        if checks_loss or self.dist.active:
            flag = torch.zeros((), device=self.device)
            if checks_loss and self._last_loss is not None:
                loss = self._train_metrics.loss_sum() if self._epoch_complete else self._last_loss
                flag = ~torch.isfinite(loss)
                if self._grad_norm_count:
                    flag = flag | ~torch.isfinite(self._grad_norm_sum)
            if self.dist.active:
                flags = torch.stack(
                    [flag.float(), torch.tensor(float(interrupted), device=self.device)]
                )
                torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
                bad, interrupted = (value > 0 for value in flags.tolist())
            else:
                bad = bool(flag.item())
        if bad:
            value = (
                self._train_metrics.loss_sum() if self._epoch_complete else self._last_loss
            ).item()
            lr = self.optimizer.param_groups[0]["lr"]
            self.nonfinite = {
                "epoch": self.epoch,
                "steps": [self._last_check_step, self.global_step],
                "lr": lr,
                "value": str(value),
            }
            last = (
                "checkpoints/last.pt keeps the last good epoch"
                if self.epoch > 1
                else "no epoch had finished"
            )
            raise NonFiniteError(
                f"the training loss became non-finite ({value}) between optimizer steps "
                f"{self._last_check_step} and {self.global_step} (epoch {self.epoch}) at learning rate {lr:.3g}. "
                f"Lower optimizer.lr, clip gradients (trainer.grad_clip.norm=1.0), or drop such batches with "
                f"trainer.on_nonfinite=skip; {last}.",
                key="optimizer.lr",
            )
        self._last_check_step = self.global_step
        if interrupted:
            self._interrupt = self._interrupt or "SIGTERM (on another rank)"
            if may_interrupt:
                raise TrainingInterrupted(self._interrupt)

    def _interrupt_agreed(self) -> bool:
        """At an epoch boundary: whether any process received SIGINT/SIGTERM."""
        if self.dist.active:
            if self.dist.any(self._interrupt is not None, self.device):
                self._interrupt = self._interrupt or "SIGTERM (on another rank)"
                return True
            return False
        return self._interrupt is not None

    @contextlib.contextmanager
    def _signals_trapped(self):
        """SIGINT/SIGTERM finish the current optimizer step, save, and stop; a second SIGINT aborts."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):
            name = signal.Signals(signum).name
            if self._interrupt is not None and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self._interrupt = name
            if self.is_main_process:
                log.warning(
                    "%s received: stopping after the current step and saving checkpoints/last.pt "
                    "(Ctrl-C again to abort at once)",
                    name,
                )

        from .signals import received

        if received:  # a SIGTERM arrived before training began
            self._interrupt = received[-1]
        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    # ------------------------------------------------------------------ evaluation
    def validate(self, data: DataModule | None = None) -> dict[str, float]:
        """Metrics on the validation split (model.eval(), inference mode)."""
        if data is not None:
            self.setup(data)
        self._call("on_validation_start")
        metrics = self._evaluate(self._eval_batches("val"))
        self._call("on_validation_end", metrics)
        return metrics

    def test(self, data: DataModule | None = None) -> dict[str, float]:
        """Evaluate the test split once, on the best checkpoint's weights when one exists."""
        if data is not None:
            self.setup(data)
        if self.test_metrics is not None:
            log.warning("the test split was already evaluated; evaluating it again")
        self._load_best_for_test()
        self._call("on_test_start")
        self.test_metrics = self._evaluate(self._eval_batches("test"))
        self._call("on_test_end", self.test_metrics)
        self._write_summary(force=True)
        return self.test_metrics

    def _load_best_for_test(self) -> None:
        best_file = next(
            (cb.best_path for cb in self.callbacks.values() if getattr(cb, "best_path", None)), None
        )
        if best_file is not None:
            if self.writes_files:
                self._writer.wait()  # rank 0's newest best.pt is on disk ...
            self.dist.barrier()  # ... before any rank reads it
        if best_file is not None and Path(best_file).is_file():
            state = load_checkpoint(best_file, map_location=self.device)
            self.unwrapped_model.load_state_dict(state["model"])
            self.tested_on = f"checkpoints/best.pt, epoch {state['epoch']}"
            self.weights_epoch = state["epoch"]
        else:
            self.tested_on = (
                f"the final weights (epoch {self.epoch})" if not self.restored else self.restored
            )

    def evaluate(self, split: str) -> dict[str, float]:
        """Metrics on one split with the current weights (no callbacks)."""
        return self._evaluate(self._eval_batches(split))

    @torch.inference_mode()
    def _evaluate(self, batches: EvalBatches) -> dict[str, float]:
        model = self.unwrapped_model  # no DDP collectives in evaluation; results are reduced below
        was_training = model.training
        model.eval()
        metrics = self._new_metrics()
        with self.precision.autocast():
            for x, y in batches.batches():
                outputs = model(x)
                metrics.update(self.loss_fn(outputs, y), outputs, y)
        model.train(was_training)
        return metrics.compute(self.dist.all_reduce_sum)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Model outputs for standardised features: class indices, or regression values in the
        target's units."""
        outputs = self._outputs(features)
        out = self.head.predict(outputs).cpu().numpy()
        if self.data.target_scaler is not None:
            out = self.data.target_scaler.inverse(out)
        return out

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities (n, num_classes) for standardised features."""
        return self.head.probabilities(self._outputs(features)).cpu().numpy()

    def _outputs(self, features: np.ndarray) -> torch.Tensor:
        return model_outputs(
            self.unwrapped_model,
            features,
            self.device,
            self.eval_batch_size,
            self.precision.autocast(),
        )

    def split_outputs(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(targets, predictions) on a split: class indices, or values in the target's units."""
        x, y = self.data.arrays[split]
        predictions = self.predict(x)
        if self.data.target_scaler is not None:
            y = self.data.target_scaler.inverse(y)
        return np.asarray(y), predictions

    def _new_metrics(self) -> MetricAccumulator:
        return MetricAccumulator(self.head, self.device, self._target_std)

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_state(self) -> dict:
        """Everything needed to continue this run exactly, as a CPU snapshot of plain containers
        and tensors. Collective under DDP (every rank's RNG state is gathered)."""
        state = {
            "format": CHECKPOINT_FORMAT,
            "epoch": self.epoch,
            "epoch_complete": self._epoch_complete,
            "batches_done": self._batches_done,
            "global_step": self.global_step,
            "model": self.unwrapped_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.schedule is None else self.schedule.state_dict(),
            "precision": self.precision.state_dict(),
            "callbacks": {name: cb.state_dict() for name, cb in self.callbacks.items()},
            "train_metrics": None if self._epoch_complete else self._train_metrics.state_dict(),
            "rng": self.dist.all_gather_object(rng_state()),
            "progress": self._progress_json(),  # already JSON, encoded incrementally
            "data": self._data_state,  # neither of these changes during a run
            "config": self.config,
            "versions": self._versions,
        }
        for cb in self.callbacks.values():
            cb.on_save_checkpoint(self, state)
        return freeze(state, PACKED_PARTS, JSON_PARTS)

    def _progress_json(self) -> str:
        """The run's history and bookkeeping as one JSON string: a checkpoint stays small and fast
        to write however long the run (each finished epoch is encoded once)."""
        done = self._history_json
        while len(done) < len(self.history) - 1:  # earlier epochs no longer change
            done.append(json.dumps(self.history[len(done)]))
        last = [json.dumps(self.history[-1])] if self.history else []
        progress = {
            "best": self.best,
            "skipped_steps": self.skipped_steps,
            "wall_time_s": self._wall_time(),
            "stop_reason": self.stop_reason,
            "should_stop": self.should_stop,
        }
        return json.dumps(progress)[:-1] + ', "history": [' + ",".join(done + last) + "]}"

    def _wait_for_writes_quietly(self) -> None:
        """On the way out of an error: finish queued writes without hiding the error."""
        if self.writes_files:
            try:
                self._writer.wait()
            except Exception:
                log.exception("a checkpoint or metrics file could not be written")

    def write_checkpoint(self, state: dict, path: str | Path) -> None:
        """Queue an atomic write of `state` to `path` (rank 0 only; off the training thread)."""
        if self.writes_files:
            self._writer.submit(save_checkpoint, state, Path(path))

    def run_async(self, work, *args) -> None:
        """Run `work(*args)` on the file-writing thread, after every write queued before it
        (rank 0 only). Loggers use it so nothing they write is newer than the last checkpoint."""
        if self.writes_files:
            self._writer.submit(work, *args)

    def copy_checkpoint(self, source: str | Path, path: str | Path) -> None:
        """Queue an atomic copy of a checkpoint file (after the writes queued before it)."""
        if self.writes_files:
            self._writer.submit(copy_checkpoint, Path(source), Path(path))

    def delete_file(self, path: str | Path) -> None:
        if self.writes_files:
            self._writer.submit(lambda p: Path(p).unlink(missing_ok=True), Path(path))

    def _resume(self, path: Path) -> None:
        state = load_checkpoint(path, map_location="cpu")
        self.unwrapped_model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.schedule is not None and state["scheduler"] is not None:
            self.schedule.load_state_dict(state["scheduler"])
        self.precision.load_state_dict(state["precision"])
        for name, cb in self.callbacks.items():
            if name in state["callbacks"]:
                cb.load_state_dict(state["callbacks"][name])
            cb.on_load_checkpoint(self, state)
        self.epoch, self.global_step = state["epoch"], state["global_step"]
        self._epoch_complete, self._batches_done = state["epoch_complete"], state["batches_done"]
        if not self._epoch_complete:
            self._train_metrics = self._new_metrics()
            self._train_metrics.load_state_dict(state["train_metrics"])
        progress = json.loads(state["progress"])
        self.history, self.best = progress["history"], progress["best"]
        self.skipped_steps, self._wall_time_before = (
            progress["skipped_steps"],
            progress["wall_time_s"],
        )
        self.should_stop, self.stop_reason = progress["should_stop"], progress["stop_reason"]
        rng = state["rng"]
        set_rng_state(rng[self.dist.rank] if self.dist.rank < len(rng) else rng[0])
        self.resumed_from = str(path)
        where = (
            f"epoch {self.epoch} complete"
            if self._epoch_complete
            else f"epoch {self.epoch}, after batch {self._batches_done}"
        )
        log.info("resumed from %s (%s, step %d)", path, where, self.global_step)

    # ------------------------------------------------------------------ the run's record
    def _update_best(self, logs: dict[str, float]) -> None:
        value = logs.get(self.monitor)
        if value is None or not math.isfinite(value):
            return
        best = self.best.get("value")
        if best is None or (value < best if self.mode == "min" else value > best):
            self.best = {
                "epoch": self.epoch,
                "value": value,
                "metrics": {k: v for k, v in logs.items() if k.endswith(("/val", "/train"))},
            }

    def _wall_time(self) -> float:
        return self._wall_time_before + (
            time.time() - getattr(self, "_session_start", self._started)
        )

    def summary(self) -> dict[str, Any]:
        """The run's record, as written to metrics.json."""
        last = self.history[-1] if self.history else {}
        spec = self.data.spec if self.data is not None else None
        return {
            "status": self.status,
            "stop_reason": self.stop_reason,
            "error": self.error,
            "monitor": self.monitor,
            "mode": self.mode,
            "best_val_metric": self.best.get("value"),
            "best_epoch": self.best.get("epoch"),
            "best": self.best.get("metrics", {}),
            "restored": self.restored,
            "final": {
                split: {k.rsplit("/", 1)[0]: v for k, v in last.items() if k.endswith("/" + split)}
                for split in ("train", "val")
            },
            "test": self.test_metrics,
            "tested_on": self.tested_on,
            "epochs_run": len(self.history),
            "max_epochs": self.max_epochs,
            "global_step": self.global_step,
            "skipped_steps": self.skipped_steps,
            "nonfinite": self.nonfinite,
            "wall_time_s": round(self._wall_time(), 3),
            "started_at": datetime.fromtimestamp(self._started, timezone.utc).isoformat(
                timespec="seconds"
            ),
            "updated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "resumed_from": self.resumed_from,
            "run_dir": str(self.run_dir),
            "environment": None
            if not self._setup_done
            else {
                "device": str(self.device),
                "precision": self.precision.name,
                "processes": self.dist.world_size,
                "torch_threads": torch.get_num_threads(),
                "torch": str(torch.__version__),
            },
            "dataset": None
            if spec is None
            else {
                "name": spec.name,
                "task": spec.task,
                "sizes": spec.sizes,
                "num_classes": spec.num_classes,
            },
            "history": self.history,
        }

    def _write_summary(self, force: bool = False) -> None:
        """metrics.json, rewritten as training goes (at most every 2 s, so that short epochs don't
        pay for it) and always at the end; checkpoints carry the same history for resuming."""
        now = time.monotonic()
        if self.writes_files and (force or now - self._summary_written >= 2.0):
            self._summary_written = now
            self._writer.submit(write_json, self.summary(), self.run_dir / "metrics.json")

    def finish(self, error: BaseException | None = None) -> dict[str, Any]:
        """End the run: health report, metrics.json, loggers closed. Call it also after errors."""
        from .health import diagnose

        if error is not None and self.status in (
            "created",
            "running",
            "completed",
            "stopped_early",
        ):
            self.status = (
                "interrupted"
                if isinstance(error, (TrainingInterrupted, KeyboardInterrupt))
                else "failed"
            )
            if self.error is None and not isinstance(error, TrainingInterrupted):
                self.error = describe(error)
        summary = self.summary()
        if self.head is not None and self.optimizer is not None:
            summary["health"] = diagnose(
                summary, self.head.task, self.optimizer.param_groups[0]["lr"]
            )
        for name, cb in self.callbacks.items():
            try:
                cb.on_run_end(self, summary)
            except Exception:  # closing one logger must not hide the run's own outcome
                log.exception("callback %s failed at the end of the run", name)
        if self.writes_files:
            self._writer.submit(write_json, summary, self.run_dir / "metrics.json")
            if error is None:
                self._writer.wait()
            else:
                self._wait_for_writes_quietly()
        return summary

    # ------------------------------------------------------------------ for callbacks
    @property
    def is_main_process(self) -> bool:
        return not hasattr(self, "dist") or self.dist.is_main

    @property
    def writes_files(self) -> bool:
        """Rank 0 writes the run directory; a fast_dev_run writes nothing but logs."""
        return self.is_main_process and not self.fast_dev_run

    def available_metrics(self) -> list[str]:
        task = self.data.spec.task
        return [f"{name}/{split}" for name in metric_names(task) for split in ("train", "val")]

    def request_stop(self, reason: str) -> None:
        """Stop after this epoch (callbacks call it; every rank decides alike from reduced metrics)."""
        self.should_stop = True
        self.stop_reason = reason

    def note_restored(self, epoch: int, text: str) -> None:
        self.restored = text
        self.weights_epoch = epoch
        if self.stop_reason:
            self.stop_reason = f"{self.stop_reason}; restored epoch {epoch}"

    def log_step(self, metrics: dict[str, float]) -> None:
        """Send per-step values to the loggers (x axis: optimizer step)."""
        for logger in self.loggers:
            logger.log_step(self, metrics)

    def callback(self, kind: type) -> Callback | None:
        return next((cb for cb in self.callbacks.values() if isinstance(cb, kind)), None)

    # ------------------------------------------------------------------ callback dispatch
    def _call(self, hook: str, *args) -> None:
        for cb in self.callbacks.values():
            getattr(cb, hook)(self, *args)

    def _call_batch(self, hook: str, *args) -> None:
        for cb in self._per_batch[hook]:
            getattr(cb, hook)(self, *args)


def model_outputs(
    model: nn.Module,
    features: np.ndarray,
    device: torch.device,
    batch_size: int,
    autocast: contextlib.AbstractContextManager | None = None,
) -> torch.Tensor:
    """The model's raw outputs (float32) for an array of features: in eval and inference mode,
    `batch_size` rows at a time; the model's train/eval mode is left as it was."""
    was_training = model.training
    model.eval()
    chunks = []
    try:
        with torch.inference_mode(), autocast or contextlib.nullcontext():
            x = torch.as_tensor(features, dtype=torch.float32, device=device)
            for i in range(0, len(x), batch_size):
                chunks.append(model(x[i : i + batch_size]).float())
    finally:
        model.train(was_training)
    return torch.cat(chunks)


def _named(callbacks) -> dict[str, Callback]:
    if callbacks is None:
        return {}
    if isinstance(callbacks, Mapping):
        return {str(k): v for k, v in callbacks.items() if v is not None}
    named: dict[str, Callback] = {}
    for cb in callbacks:
        name = type(cb).__name__
        named[name if name not in named else f"{name}_{len(named)}"] = cb
    return named


def _batch_limit(value, total: int, key: str) -> int | None:
    """`limit_*_batches`: a whole number of batches, a fraction in (0, 1], or null for all."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(
            f"{key} must be a number of batches or a fraction in (0, 1], got {value!r}.", key=key
        )
    if isinstance(value, float) and value <= 1.0:
        if value <= 0:
            raise UserError(f"{key} must be positive, got {value}.", key=key)
        return max(1, int(total * value))
    if value < 1 or value != int(value):
        raise UserError(
            f"{key} must be a whole number >= 1 or a fraction in (0, 1], got {value}.", key=key
        )
    return int(value)


def _default_run_dir() -> Path:
    return Path("outputs") / "runs" / datetime.now().strftime("%Y-%m-%d/%H-%M-%S-%f")


class _Both(contextlib.ExitStack):
    """Two context managers entered as one."""

    def __init__(self, first, second) -> None:
        super().__init__()
        self._pair = (first, second)

    def __enter__(self):
        super().__enter__()
        for context in self._pair:
            self.enter_context(context)
        return self
