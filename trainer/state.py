"""The training state: everything that continues a run exactly, and nothing else.

The model's weights, the optimizer, the learning-rate schedule, the loss scaler, the counters
and the random number generators. A checkpoint holds it beside the run record and the
callbacks' state (see `Trainer.checkpoint`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .checkpoints import CHECKPOINT_FORMAT, rng_state, set_rng_state
from .errors import UserError
from .precision import Precision
from .schedulers import Schedule


class TrainingState:
    """Model (unwrapped: never the DDP wrapper), optimizer, schedule, precision and counters."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None,
        schedule: Schedule | None,
        precision: Precision,
        batches_per_epoch: int = 0,
        steps_per_epoch: int = 0,
    ) -> None:
        self.model = model
        self.optimizer, self.schedule = optimizer, schedule
        self.precision = precision
        self.batches_per_epoch, self.steps_per_epoch = batches_per_epoch, steps_per_epoch
        self.epoch = 0  # the epoch in progress or last completed (1-based)
        self.global_step = 0  # optimizer steps taken
        self.batches_done = 0  # batches of the current epoch done (for a mid-epoch resume)
        self.epoch_complete = True
        self.grad_norm: torch.Tensor | None = None  # of the last step where it was measured
        # The rates as set, per group: a schedule keeps them as initial_lr; a plateau schedule
        # changes them only later.
        groups = optimizer.param_groups if optimizer is not None else []
        self._set_lrs = [float(g.get("initial_lr", g["lr"])) for g in groups]

    def start_epoch(self) -> None:
        self.epoch += 1
        self.batches_done = 0
        self.epoch_complete = False

    def position(self) -> str:
        """Where the run stands: 'epoch 3 complete, step 66' or 'epoch 4, after batch 7, ...'."""
        if self.epoch_complete:
            return f"epoch {self.epoch} complete, step {self.global_step}"
        return f"epoch {self.epoch}, after batch {self.batches_done}, step {self.global_step}"

    def base_lr(self) -> float:
        """The rate the user set for the default parameter group (optimizer.lr), before any
        schedule moved it: what advice about the learning rate starts from."""
        groups = self.optimizer.param_groups
        main = next((i for i, g in enumerate(groups) if g.get("name") == "default"), 0)
        return self._set_lrs[main]

    def learning_rates(self) -> dict[str, float]:
        """`lr` (the default parameter group's, i.e. optimizer.lr as scheduled: the same tag in
        every run of a sweep), and `lr/<group>` for each group when there are several."""
        groups = self.optimizer.param_groups
        main = next((g for g in groups if g.get("name") == "default"), groups[0])
        rates = {"lr": float(main["lr"])}
        if len(groups) > 1:
            rates |= {f"lr/{g.get('name', i)}": float(g["lr"]) for i, g in enumerate(groups)}
        return rates

    def state_dict(self) -> dict[str, Any]:
        """Live references (the caller snapshots them before training goes on)."""
        return {
            "epoch": self.epoch,
            "epoch_complete": self.epoch_complete,
            "batches_done": self.batches_done,
            "global_step": self.global_step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.schedule is None else self.schedule.state_dict(),
            "precision": self.precision.state_dict(),
        }

    def checkpoint(self, dist, **parts: Any) -> dict[str, Any]:
        """A checkpoint's content: the format, this state, every process's random number
        generators (collective under DDP) and the run's other `parts` (callbacks, record, ...)."""
        from . import __version__

        return {
            "format": CHECKPOINT_FORMAT,
            **self.state_dict(),
            "callbacks": parts.pop("callbacks"),
            "train_metrics": parts.pop("train_metrics"),
            "rng": dist.all_gather_object(rng_state()),
            **parts,
            "versions": {"trainer": __version__, "torch": str(torch.__version__)},
        }

    def restore(
        self, checkpoint: dict[str, Any], data: dict[str, Any], config: dict, rank: int = 0
    ) -> None:
        """This state from a checkpoint, with this process's random number generators. A
        checkpoint of another model or data set (`data`: the DataModule's state), or one this
        command would train on with another optimizer or schedule (`config`: the resolved
        config, {} from Python), is refused before anything changes."""
        check_same_data(checkpoint["data"], data)
        check_same_training(checkpoint.get("config") or {}, config)
        check_same_model(checkpoint["model"], self.model.state_dict())
        self.load_state_dict(checkpoint)
        rng = checkpoint["rng"]
        set_rng_state(rng[rank] if rank < len(rng) else rng[0])

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.schedule is not None and state["scheduler"] is not None:
            self.schedule.load_state_dict(state["scheduler"])
        self.precision.load_state_dict(state["precision"])
        self.epoch, self.global_step = state["epoch"], state["global_step"]
        self.epoch_complete, self.batches_done = state["epoch_complete"], state["batches_done"]


def check_same_model(saved: dict[str, Any], built: dict[str, Any]) -> None:
    """The checkpoint's weights fit the model this config builds, name by name, shape by shape."""

    def shape(tensor) -> list[int]:
        return list(getattr(tensor, "shape", []))

    differences = [
        f"checkpoint has {name} {shape(saved[name])}, this config builds {shape(built[name])}"
        for name in saved
        if name in built and shape(saved[name]) != shape(built[name])
    ]
    differences += [f"this config has no {name}" for name in saved if name not in built]
    differences += [f"the checkpoint has no {name}" for name in built if name not in saved]
    if differences:
        shown = "; ".join(differences[:4]) + ("; ..." if len(differences) > 4 else "")
        raise UserError(
            f"trainer.resume: the checkpoint was trained with another model ({shown}). Resume "
            "with the model settings it was trained with (they are in its .hydra/config.yaml), "
            "or start a new run without trainer.resume.",
            key="trainer.resume",
        )


def check_same_training(saved: dict[str, Any], current: dict[str, Any]) -> None:
    """A resume continues with the optimizer and schedule its run trained with: their state
    (moments, steps taken, the schedule's position) only means something with those values."""
    if not saved or not current:
        return
    changed = [
        f"{section}.{key}: {_short(saved[section].get(key))} -> {_short(value)}"
        for section in ("optimizer", "scheduler")
        if isinstance(saved.get(section), dict) and isinstance(current.get(section), dict)
        for key, value in current[section].items()
        if saved[section].get(key) != value
    ]
    freeze = [(config.get("model") or {}).get("freeze") or [] for config in (saved, current)]
    changed += [f"model.freeze: {freeze[0]} -> {freeze[1]}"] if freeze[0] != freeze[1] else []
    if changed:
        raise UserError(
            f"trainer.resume continues a run with the optimizer and schedule it trained with, "
            f"and this command changes them ({'; '.join(changed)}). The optimizer's state and "
            "the schedule's position follow the old values, so a resume cannot change them: "
            "leave them as they were, or start a new run for other values.",
            key=changed[0].split(":")[0],
        )


def check_same_data(saved: dict[str, Any], built: dict[str, Any]) -> None:
    """The checkpoint's data set is this config's: name, task, split sizes, features, classes."""
    keys = ("name", "task", "sizes", "input_shape", "num_classes", "feature_names")
    differences = [
        f"{key}: checkpoint {_short(saved.get(key))}, this config {_short(built.get(key))}"
        for key in keys
        if saved.get(key) != built.get(key)
    ]
    if differences:
        raise UserError(
            f"trainer.resume: the checkpoint was trained on other data ({'; '.join(differences)})."
            " Resume with the dataset and data settings it was trained with, or start a new run.",
            key="trainer.resume",
        )


def _short(value: Any, limit: int = 80) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
