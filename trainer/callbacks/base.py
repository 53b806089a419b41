"""The callback protocol: hooks the Trainer calls at named points of its loop.

Every hook receives the run's `RunContext` (see trainer/context.py): `state` (model, optimizer,
epoch, global_step), `record` (history, best epoch, status), `data`, `predictions`, `config`,
`run_dir`, `files`, `is_main_process`, and three actions: `checkpoint()`, `request_stop(reason)`,
`log_step(metrics)`. That is all a callback gets of the Trainer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..best import check_same_monitor, resolve_mode
from ..errors import UserError, WriteFailure

if TYPE_CHECKING:
    import torch

    from ..context import RunContext


class Callback:
    """Override the hooks you need. Keep state in attributes and return it from `state_dict()`:
    checkpoints save it and resuming restores it with `load_state_dict()`.

    Order of calls in `fit`:
        on_fit_start
        per epoch:  on_train_epoch_start
                    per batch: on_train_batch_start, on_after_backward,
                               [on_before_optimizer_step: once per optimizer step], on_train_batch_end
                    on_validation_start, on_validation_end(metrics)
                    on_epoch_end(logs)          <- early stopping, checkpoints, loggers
        on_fit_end
    then `test`: on_test_start, on_test_end(metrics); a run ends with on_run_end(summary).
    on_exception(error) is called when fit stops on an exception or a signal.
    A callback with a `grad_norm_every_n_steps` attribute > 0 asks the loop to measure the
    gradient norm that often (`run.state.grad_norm`; the epoch mean is logged as `grad_norm`).
    One with a `batch_hooks` attribute (a tuple of hook names, set by `on_fit_start` at the
    latest) is called per batch only at those: the others it implements have nothing to do in
    this run (a progress bar without a terminal).
    """

    def on_fit_start(self, run: RunContext) -> None: ...

    def on_train_epoch_start(self, run: RunContext) -> None: ...

    def on_train_batch_start(self, run: RunContext, batch_idx: int) -> None: ...

    def on_after_backward(self, run: RunContext) -> None: ...

    def on_before_optimizer_step(self, run: RunContext) -> None:
        """Gradients are complete and unscaled (AMP), before clipping and the step."""

    def on_train_batch_end(self, run: RunContext, batch_idx: int, loss: torch.Tensor) -> None:
        """`loss` is the detached batch loss on the device; reading it (`.item()`) synchronises."""

    def on_validation_start(self, run: RunContext) -> None: ...

    def on_validation_end(self, run: RunContext, metrics: dict[str, float]) -> None: ...

    def on_epoch_end(self, run: RunContext, logs: dict[str, float]) -> None:
        """After training and validation, with the epoch in `run.record` already. `logs` holds
        the epoch's metrics ('loss/train', 'accuracy/val', ...); a callback may add entries for
        the loggers that follow it."""

    def on_fit_end(self, run: RunContext) -> None: ...

    def on_test_start(self, run: RunContext) -> None: ...

    def on_test_end(self, run: RunContext, metrics: dict[str, float]) -> None: ...

    def on_run_end(self, run: RunContext, summary: dict[str, Any]) -> None:
        """The run is over (completed, stopped, interrupted or failed); `summary` is metrics.json."""

    def on_save_checkpoint(self, run: RunContext, checkpoint: dict) -> None: ...

    def on_load_checkpoint(self, run: RunContext, checkpoint: dict) -> None: ...

    def on_exception(self, run: RunContext, error: BaseException) -> None: ...

    def log_step(self, run: RunContext, metrics: dict[str, float]) -> None:
        """Loggers only: per-step values another callback sent with `run.log_step`."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None: ...


PER_BATCH_HOOKS = (
    "on_train_batch_start",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_train_batch_end",
)


def per_batch_hooks(callbacks: dict[str, Callback]) -> dict[str, list[Callback]]:
    """Per hook of PER_BATCH_HOOKS, the callbacks the loop calls there: those that implement
    it, or where a callback has `batch_hooks` (set by `on_fit_start` at the latest), those it
    names: a hook with nothing to do in this run costs nothing per batch."""
    return {
        hook: [
            cb
            for cb in callbacks.values()
            if (
                hook in cb.batch_hooks
                if getattr(cb, "batch_hooks", None) is not None
                else getattr(type(cb), hook, None) is not getattr(Callback, hook)
            )
        ]
        for hook in PER_BATCH_HOOKS
    }


def named_callbacks(callbacks) -> dict[str, Callback]:
    """Callbacks by name: a mapping as given, a list named by class (EarlyStopping, ...)."""
    if callbacks is None:
        return {}
    if isinstance(callbacks, Mapping):
        return {str(k): v for k, v in callbacks.items() if v is not None}
    named: dict[str, Callback] = {}
    for cb in callbacks:
        name = type(cb).__name__
        named[name if name not in named else f"{name}_{len(named)}"] = cb
    return named


def in_call_order(callbacks, loggers) -> dict[str, Callback]:
    """The loggers after the other callbacks, so they see everything logged, and before those
    that run last (`runs_last`: checkpoints, so that last.pt follows the epoch's events)."""
    named, loggers = named_callbacks(callbacks), named_callbacks(loggers)
    last = {k: v for k, v in named.items() if getattr(v, "runs_last", False)}
    return {k: v for k, v in named.items() if k not in last} | loggers | last


def end_of_run(callbacks: dict[str, Callback], run: RunContext, summary: dict[str, Any]) -> None:
    """`on_run_end` for each callback: one failing (a logger that cannot write) must not hide
    the run's own outcome or stop the others from closing."""
    import logging

    log = logging.getLogger("trainer")
    for name, cb in callbacks.items():
        try:
            cb.on_run_end(run, summary)
        except Exception as error:
            if WriteFailure.wraps(error):
                log.error("callback %s: %s", name, WriteFailure.of(error))
            else:
                log.exception("callback %s failed at the end of the run", name)


def same_monitor(callback: str, run: RunContext, monitor: str | None, mode: str | None) -> None:
    """A callback's own monitor/mode, if given, must be the run's: one metric picks the best
    epoch for early stopping, checkpoints and the summary alike."""
    best = run.record.best
    check_same_monitor(callback, monitor, best.monitor)
    if mode is not None and resolve_mode(best.monitor, mode) != best.mode:
        raise UserError(
            f"callbacks.{callback}.mode='{mode}' differs from the run's mode '{best.mode}' for "
            f"{best.monitor}. Set trainer.mode={mode} instead (and leave callbacks.{callback}.mode "
            "null).",
            key=f"callbacks.{callback}.mode",
        )
