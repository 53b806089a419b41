"""The callback protocol: hooks the Trainer calls at named points of its loop."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from ..loop import Trainer


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
    """

    def on_fit_start(self, trainer: Trainer) -> None: ...

    def on_train_epoch_start(self, trainer: Trainer) -> None: ...

    def on_train_batch_start(self, trainer: Trainer, batch_idx: int) -> None: ...

    def on_after_backward(self, trainer: Trainer) -> None: ...

    def on_before_optimizer_step(self, trainer: Trainer) -> None:
        """Gradients are complete and unscaled (AMP), before clipping and the step."""

    def on_train_batch_end(self, trainer: Trainer, batch_idx: int, loss: torch.Tensor) -> None:
        """`loss` is the detached batch loss on the device; reading it (`.item()`) synchronises."""

    def on_validation_start(self, trainer: Trainer) -> None: ...

    def on_validation_end(self, trainer: Trainer, metrics: dict[str, float]) -> None: ...

    def on_epoch_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        """After training and validation. `logs` holds the epoch's metrics ('loss/train',
        'accuracy/val', ...); a callback may add entries for the loggers that follow it."""

    def on_fit_end(self, trainer: Trainer) -> None: ...

    def on_test_start(self, trainer: Trainer) -> None: ...

    def on_test_end(self, trainer: Trainer, metrics: dict[str, float]) -> None: ...

    def on_run_end(self, trainer: Trainer, summary: dict[str, Any]) -> None:
        """The run is over (completed, stopped, interrupted or failed); `summary` is metrics.json."""

    def on_save_checkpoint(self, trainer: Trainer, checkpoint: dict) -> None: ...

    def on_load_checkpoint(self, trainer: Trainer, checkpoint: dict) -> None: ...

    def on_exception(self, trainer: Trainer, error: BaseException) -> None: ...

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None: ...


PER_BATCH_HOOKS = (
    "on_train_batch_start",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_train_batch_end",
)


def overrides(callback: Callback, hook: str) -> bool:
    """Whether `callback` implements `hook` (the loop only calls per-batch hooks that do)."""
    return getattr(type(callback), hook, None) is not getattr(Callback, hook)
