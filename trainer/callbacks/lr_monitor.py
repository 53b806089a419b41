"""Learning-rate logging: the rate each epoch trained with, per parameter group."""

from __future__ import annotations

from .base import Callback


class LearningRateMonitor(Callback):
    """Adds `lr` (and `lr/<group>` when the optimizer has several parameter groups) to each
    epoch's logs: the learning rate at the start of the epoch. With `logging_interval=step`
    it also sends the rate of every optimizer step to the loggers (x axis: the step)."""

    def __init__(self, logging_interval: str = "epoch") -> None:
        if logging_interval not in ("epoch", "step"):
            raise ValueError("logging_interval must be 'epoch' or 'step'")
        self.logging_interval = logging_interval
        self._epoch_lrs: dict[str, float] = {}
        self._last_step = -1

    def _rates(self, trainer) -> dict[str, float]:
        """`lr` (the default parameter group's, i.e. optimizer.lr as scheduled: the same tag in every
        run of a sweep), and `lr/<group>` for each group when there are several."""
        groups = trainer.optimizer.param_groups
        # optimizer.lr's group
        main = next((g for g in groups if g.get("name") == "default"), groups[0])
        rates = {"lr": float(main["lr"])}
        if len(groups) > 1:
            rates |= {f"lr/{g.get('name', i)}": float(g["lr"]) for i, g in enumerate(groups)}
        return rates

    def on_train_epoch_start(self, trainer) -> None:
        self._epoch_lrs = self._rates(trainer)

    def on_train_batch_end(self, trainer, batch_idx, loss) -> None:
        if self.logging_interval == "step" and trainer.global_step != self._last_step:
            self._last_step = trainer.global_step
            trainer.log_step(
                {
                    f"{k}_step" if k == "lr" else k.replace("lr/", "lr_step/"): v
                    for k, v in self._rates(trainer).items()
                }
            )

    def on_epoch_end(self, trainer, logs) -> None:
        logs.update(self._epoch_lrs)
