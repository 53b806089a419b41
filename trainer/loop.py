"""The Trainer: the classic PyTorch training loop, right by default, with callbacks at named points.

    for epoch in epochs:
        model.train()
        for x, y in batches:                      # in-memory tensors, indexed on the device
            zero_grad -> forward -> loss -> backward -> (clip) -> step -> (per-step schedule)
        model.eval(); inference_mode()             # validation, metrics over the whole split
        (per-epoch schedule) -> record -> callbacks: early stopping, checkpoints, loggers
    test once, at the end, on the best weights

The parts it calls live in modules of their own: devices in prepare.py, the step (precision,
clipping, accumulation, non-finite policy) in step.py, evaluation in evaluation.py, what a
checkpoint restores in state.py, metrics.json in record.py, what callbacks see in context.py.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .callbacks.base import Callback, end_of_run, in_call_order, per_batch_hooks
from .checkpoints import load_checkpoint, snapshot
from .context import RunConfig, RunContext
from .data.module import DataModule
from .devices import anomaly_detection
from .distributed import peer_failure
from .errors import DistributedFailure, TrainingInterrupted
from .files import BackgroundWriter, write_json
from .health.baselines import chance_level
from .metrics import MetricAccumulator
from .paths import new_run_dir, resolve_checkpoint
from .pitfalls import Pitfall, active_pitfall, with_pitfall
from .prepare import place
from .record import RunRecord
from .settings import ParamGroupSettings, TrainerSettings
from .signals import StopSignals
from .state import TrainingState
from .step import nonfinite_error

log = logging.getLogger("trainer")


class Trainer:
    """Trains `model` with `loss` and an optimizer built from `optimizer` (a factory taking the
    parameter groups, e.g. `functools.partial(torch.optim.AdamW, lr=1e-3)` or a Hydra `_partial_`).

    Settings are keywords of `TrainerSettings` (max_epochs=50, batch_size=32, ...). `fit(data)`
    trains and validates every epoch; `test(data)` evaluates the test split once, on the best
    weights; `finish()` writes the run's metrics.json and closes the loggers. `pitfall` (from
    trainer.pitfalls) repeats one classic mistake on purpose, chosen once at set-up. After `setup`,
    `state`, `record` and `predictions` hold the model and optimizer, the history, and what the
    model predicts.
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
        decay_bias_and_norm: bool = ParamGroupSettings.decay_bias_and_norm,
        module_lr: Mapping[str, float] | None = None,
        run_dir: str | Path | None = None,
        run_config: RunConfig | dict | None = None,
        pitfall: Pitfall | None = None,
        **settings: Any,
    ) -> None:
        self.settings = TrainerSettings.from_keywords(**settings)
        self.model, self.loss_fn = model, loss
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.scheduler_interval = scheduler_interval
        self.pitfall = active_pitfall(pitfall)  # a classic mistake on purpose (pitfalls/)
        self.callbacks = in_call_order(with_pitfall(callbacks, self.pitfall), loggers)
        self.param_groups = ParamGroupSettings(decay_bias_and_norm, dict(module_lr or {}))
        self.run_dir = Path(run_dir) if run_dir is not None else new_run_dir()
        self.config = RunConfig.of(run_config)
        self.record = RunRecord(self.run_dir, self.settings)
        self.state: TrainingState | None = None
        self.context: RunContext | None = None
        self.files: BackgroundWriter | None = None  # set in setup: None where nothing is written
        self._writer = BackgroundWriter()
        self._signals = StopSignals()

    # ------------------------------------------------------------------ set-up
    def setup(self, data: DataModule) -> None:
        """Device, precision, processes, data on the device, optimizer, schedule, resume.
        `fit`, `validate` and `test` call it; call it first to inspect the set-up."""
        if self.context is not None:
            return
        s = self.settings
        placed = place(
            self.model,
            self.loss_fn,
            self.optimizer_factory,
            self.scheduler_factory,
            self.scheduler_interval,
            self.param_groups,
            s,
            data,
            self.pitfall,
        )
        self.dist, self.device, self.head = placed.dist, placed.device, placed.head
        self.model, self.state, self.step = placed.model, placed.state, placed.step
        self.train_batches = placed.train_batches
        self._target_std, self.predictions = placed.target_std, placed.predictions
        self._evaluate = placed.evaluate  # (in the context a pitfall may have chosen)
        # Callbacks ask for the gradient norm every n steps (grad_norm_every_n_steps).
        asks = [getattr(cb, "grad_norm_every_n_steps", 0) for cb in self.callbacks.values()]
        self._grad_norm_every = min((n for n in asks if n), default=0)
        precision = self.state.precision.name
        chance = chance_level(data, self.loss_fn)  # what the health report judges against
        self.record.describe_setup(self.device, precision, self.dist.world_size, data.spec, chance)
        self._data_state = data.state_dict()
        # What every checkpoint carries unchanged, copied once: `checkpoint` copies the rest.
        self._fixed = snapshot({"data": self._data_state, "config": self.config.resolved})
        self._train_metrics = self._new_metrics()
        self._last_loss: torch.Tensor | None = None
        self.context = RunContext(
            state=self.state,
            record=self.record,
            data=data,
            predictions=self.predictions,
            config=self.config,
            run_dir=self.run_dir,
            files=self._writer if self.writes_files else None,
            is_main_process=self.is_main_process,
            checkpoint=self.checkpoint,
            request_stop=self.record.request_stop,
            log_step=functools.partial(self._call, "log_step"),  # (loggers log; others pass)
        )
        if s.resume:
            self._resume(resolve_checkpoint(s.resume))
        self.files = self._writer if self.writes_files else None  # (nothing written before)

    # ------------------------------------------------------------------ fit
    def fit(self, data: DataModule) -> dict[str, Any]:
        """Train for up to `max_epochs`, validating after every epoch."""
        self.setup(data)
        state, record = self.state, self.record
        record.start()
        record.write(self.files, force=True)
        self._call("on_fit_start")
        self._per_batch = per_batch_hooks(self.callbacks)  # (as on_fit_start left them)
        try:
            with self._signals, anomaly_detection(self.settings.detect_anomaly):
                while (
                    state.epoch < self.settings.max_epochs or not state.epoch_complete
                ) and not record.should_stop:
                    started = time.perf_counter()
                    train = self._train_epoch()
                    train_time = time.perf_counter() - started
                    val = self.validate()
                    logs = self._epoch_logs(train, val, started, train_time)
                    if state.schedule is not None:
                        state.schedule.after_epoch(logs[record.best.monitor])
                    record.add_epoch(logs, state.global_step)
                    self._call("on_epoch_end", logs)  # early stopping, loggers, checkpoints
                    record.write(self.files)
                    if self._interrupt_agreed():
                        raise TrainingInterrupted(self._signals.received)
        except BaseException as error:
            lost = peer_failure(error) if self.dist.active else None
            failure = DistributedFailure(lost) if lost is not None else error
            record.failed(failure, state.epoch)
            record.global_step = state.global_step  # (an epoch cut short: its steps count too)
            self._call("on_exception", failure)  # e.g. the checkpoint callback saves last.pt
            if self.files is not None:
                self.files.wait(quietly=True)
            if failure is error:
                raise
            raise failure from None
        record.stopped()
        self._call("on_fit_end")
        record.write(self.files, force=True)
        if self.files is not None:  # checkpoints and metrics.json are on disk when fit returns
            self.files.wait()
        return record.summary()

    def _train_epoch(self) -> dict[str, float]:
        """One pass over the training batches (or the rest of one, after a mid-epoch resume)."""
        state, step = self.state, self.step
        if state.epoch_complete:
            state.start_epoch()
            self._train_metrics = self._new_metrics()
        self.model.train()
        self._call("on_train_epoch_start")
        step.start_epoch(self.train_batches)
        self._last_check_step = state.global_step
        skip_nonfinite = step.skip_nonfinite
        batches = self.train_batches.batches(state.epoch, state.batches_done)
        for batch_idx, (x, y) in enumerate(batches, start=state.batches_done):
            if step.starts_group(batch_idx):
                # A signal stops the run here; under DDP the ranks agree at the periodic check.
                if self._signals.received is not None and not self.dist.active:
                    raise TrainingInterrupted(self._signals.received)
                step.zero_grad()
            self._call_batch("on_train_batch_start", batch_idx)
            loss, outputs = step.forward_backward(x, y, batch_idx)
            self._call_batch("on_after_backward")
            self._last_loss = loss
            if not skip_nonfinite or torch.isfinite(loss).item():
                self._train_metrics.update(loss, outputs, y)
            state.batches_done = batch_idx + 1
            if step.ends_group(batch_idx):
                self._optimizer_step()
            self._call_batch("on_train_batch_end", batch_idx, loss)
        state.epoch_complete = True
        train = self._train_metrics.compute(self.dist.all_reduce_sum)  # (all ranks: the same)
        self._check_epoch_finite(train["loss"] if self._train_metrics.samples else 0.0)
        return train

    def _optimizer_step(self) -> None:
        state, step = self.state, self.step
        step.unscale()
        self._call_batch("on_before_optimizer_step")  # gradients complete and unscaled
        every = self._grad_norm_every
        if not step.apply(measure_norm=bool(every) and state.global_step % every == 0):
            self.record.skipped_steps += 1  # on_nonfinite=skip dropped a non-finite step
            return
        state.grad_norm = step.last_norm
        if state.schedule is not None:
            state.schedule.after_step()
        state.global_step += 1
        if state.global_step % self.settings.check_finite_every_n_steps == 0:
            self._check_finite(may_interrupt=True)

    def _epoch_logs(self, train: dict, val: dict, started: float, train_time: float) -> dict:
        logs: dict[str, float] = {"epoch": self.state.epoch}
        logs |= {f"{name}/train": value for name, value in train.items()}
        logs |= {f"{name}/val": value for name, value in val.items()}
        logs |= self.step.epoch_grad_norms()  # (the total's and the first and last layers')
        logs["time/epoch_s"] = time.perf_counter() - started
        logs["throughput/samples_per_s"] = self.train_batches.samples() / max(train_time, 1e-9)
        return logs

    # ------------------------------------------------------------------ checks between steps
    def _check_finite(self, may_interrupt: bool) -> None:
        """Stop when the loss went NaN/inf (with on_nonfinite=stop), and under DDP agree on a
        pending signal. Runs every `check_finite_every_n_steps` optimizer steps on the latest
        loss: never per step."""
        received = self._signals.received is not None
        bad, interrupted = self.step.check(self._last_loss, received, self.dist, self.device)
        if bad:
            self._stop_nonfinite(self._last_loss.item())
        self._last_check_step = self.state.global_step
        if interrupted:
            self._signals.received = self._signals.received or "SIGTERM (on another rank)"
            if may_interrupt:
                raise TrainingInterrupted(self._signals.received)

    def _check_epoch_finite(self, loss: float) -> None:
        """At the end of an epoch, on values already read to the host: the epoch's loss, which
        turned non-finite with the first such batch, and its mean gradient norm (with
        on_nonfinite=skip: whether too many steps in a row were skipped). Equal on every rank."""
        if self.step.diverged_skipping() or (
            not self.step.skip_nonfinite
            and not (
                math.isfinite(loss)
                and math.isfinite(self.step.epoch_grad_norms().get("grad_norm", 0.0))
            )
        ):
            self._stop_nonfinite(loss)
        self._last_check_step = self.state.global_step

    def _stop_nonfinite(self, value: float) -> None:
        steps = [self._last_check_step, self.state.global_step]
        self.record.nonfinite = self.step.nonfinite_found(self.state, steps, value)
        raise nonfinite_error(self.record.nonfinite)

    def _interrupt_agreed(self) -> bool:
        """At an epoch boundary: whether any process received a stop signal."""
        received = self._signals.received is not None
        if self.dist.active and self.dist.any(received, self.device):
            self._signals.received = self._signals.received or "SIGTERM (on another rank)"
            return True
        return received

    # ------------------------------------------------------------------ evaluation
    def validate(self, data: DataModule | None = None) -> dict[str, float]:
        """Metrics on the validation split (model.eval(), inference mode); {} without one."""
        if data is not None:
            self.setup(data)
        if not self.context.data.spec.sizes["val"]:  # data.split gave validation no share
            return {}
        self._call("on_validation_start")
        metrics = self.evaluate("val")
        self._call("on_validation_end", metrics)
        return metrics

    def test(self, data: DataModule | None = None) -> dict[str, float]:
        """Evaluate the test split once, on the best checkpoint's weights when one exists."""
        if data is not None:
            self.setup(data)
        record = self.record
        if record.test is not None:
            log.warning("the test split was already evaluated; evaluating it again")
        best_file = next(
            (cb.best_path for cb in self.callbacks.values() if getattr(cb, "best_path", None)), None
        )
        if best_file is not None:
            if self.files is not None:
                self.files.wait()  # rank 0's newest best.pt is on disk ...
            self.dist.barrier()  # ... before any rank reads it
        if best_file is not None and Path(best_file).is_file():
            best = load_checkpoint(best_file, map_location=self.device)
            self.state.model.load_state_dict(best["model"])
            record.tested_on = f"checkpoints/best.pt, epoch {best['epoch']}"
            record.weights_epoch = best["epoch"]
        else:
            record.tested_on = record.restored or f"the final weights (epoch {self.state.epoch})"
        self._call("on_test_start")
        record.test = self.evaluate("test")
        self._call("on_test_end", record.test)
        record.write(self.files, force=True)
        return record.test

    def evaluate(self, split: str) -> dict[str, float]:
        """Metrics on one split with the current weights (no callbacks)."""
        return self._evaluate(split)

    def _new_metrics(self) -> MetricAccumulator:
        return MetricAccumulator(self.head, self.device, self._target_std)

    # ------------------------------------------------------------------ the run's files
    def checkpoint(self) -> dict:
        """Everything needed to continue this run exactly, as a CPU snapshot of plain containers
        and tensors. Collective under DDP (every rank's RNG state is gathered)."""
        complete = self.state.epoch_complete
        state = self.state.checkpoint(
            self.dist,
            callbacks={name: cb.state_dict() for name, cb in self.callbacks.items()},
            train_metrics=None if complete else self._train_metrics.state_dict(),
            progress=self.record.progress_json(),
            **self._fixed,
        )
        for cb in self.callbacks.values():
            cb.on_save_checkpoint(self.context, state)
        return {k: v if v is self._fixed.get(k) else snapshot(v) for k, v in state.items()}

    def _resume(self, path: Path) -> None:
        checkpoint = load_checkpoint(path, map_location="cpu")
        state, record = self.state, self.record
        state.restore(checkpoint, self._data_state, self.config.resolved, self.dist.rank)
        for name, cb in self.callbacks.items():
            if name in checkpoint["callbacks"]:
                cb.load_state_dict(checkpoint["callbacks"][name])
            cb.on_load_checkpoint(self.context, checkpoint)
        if not state.epoch_complete:
            self._train_metrics.load_state_dict(checkpoint["train_metrics"])
        record.load_progress(checkpoint["progress"])
        record.global_step, record.resumed_from = state.global_step, str(path)
        log.info("resumed from %s (%s)", path, state.position())

    def finish(self, error: BaseException | None = None) -> dict[str, Any]:
        """End the run: health report, metrics.json, loggers closed. Call it also after errors."""
        from .health import diagnose_run, verdict
        from .linear_weights import original_units

        record = self.record
        if error is not None and record.status != "failed":  # fit's own failure is recorded
            record.failed(error, self.state.epoch if self.state else 0)
        summary = record.summary()
        if self.context is not None:  # model=linear: its weights in the data's units
            summary |= original_units(self.state.model, self.context.data)
        if self.state is not None and self.state.optimizer is not None:
            summary["health"] = diagnose_run(self, summary)
            summary["health_verdict"] = verdict(summary["health"])
        if self.context is not None:  # (a failed set-up ran no callback: none to close)
            end_of_run(self.callbacks, self.context, summary)
        if self.files is not None:
            self.files.submit(write_json, summary, self.run_dir / "metrics.json")
            self.files.wait(quietly=error is not None)
        return summary

    @property
    def is_main_process(self) -> bool:
        return not hasattr(self, "dist") or self.dist.is_main

    @property
    def writes_files(self) -> bool:
        """Rank 0 writes the run directory; a fast_dev_run writes nothing but logs."""
        return self.is_main_process and not self.settings.fast_dev_run

    # ------------------------------------------------------------------ callback dispatch
    def _call(self, hook: str, *args) -> None:
        for cb in self.callbacks.values():
            getattr(cb, hook)(self.context, *args)

    def _call_batch(self, hook: str, *args) -> None:
        for cb in self._per_batch[hook]:
            getattr(cb, hook)(self.context, *args)
