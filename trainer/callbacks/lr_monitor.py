"""Learning-rate logging: the rate each epoch trained with, per parameter group."""

from __future__ import annotations

from .base import Callback


class LearningRateMonitor(Callback):
    """Adds `lr` (and `lr/<group>` when the optimizer has several parameter groups) to each
    epoch's logs: the learning rate at the start of the epoch. With `logging_interval=step`
    it also sends the rate every optimizer step trained with to the loggers (x axis: the step,
    1 for the first)."""

    def __init__(self, logging_interval: str = "epoch") -> None:
        if logging_interval not in ("epoch", "step"):
            raise ValueError("logging_interval must be 'epoch' or 'step'")
        self.logging_interval = logging_interval
        per_step = logging_interval == "step"
        self.batch_hooks = ("on_before_optimizer_step", "on_train_batch_end") if per_step else ()
        self._epoch_lrs: dict[str, float] = {}
        self._step_lrs: dict[str, float] = {}
        self._last_step = -1

    def on_train_epoch_start(self, run) -> None:
        self._epoch_lrs = run.state.learning_rates()

    def on_before_optimizer_step(self, run) -> None:
        if self.logging_interval == "step":  # the rates this step trains with, before the
            self._step_lrs = run.state.learning_rates()  # schedule moves them for the next one

    def on_train_batch_end(self, run, batch_idx, loss) -> None:
        if self.logging_interval == "step" and run.state.global_step != self._last_step:
            self._last_step = run.state.global_step  # x: step n trained with the rate logged
            run.log_step(
                {
                    f"{k}_step" if k == "lr" else k.replace("lr/", "lr_step/"): v
                    for k, v in self._step_lrs.items()
                }
            )

    def on_epoch_end(self, run, logs) -> None:
        logs.update(self._epoch_lrs)
