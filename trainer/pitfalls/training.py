"""Pitfalls of the training step and the training data: gradients never zeroed, batches never
shuffled (and sorted by target), a learning rate far too high."""

from __future__ import annotations

import functools

import numpy as np
import torch

from ..step import TrainStep
from .base import Pitfall


class _GradientsNeverZeroed(TrainStep):
    """The training step without `optimizer.zero_grad()`: every backward adds its gradients to
    those of all the steps before it, and the optimizer steps on the running sum."""

    def zero_grad(self) -> None:
        pass  # the mistake: the line that should be here is missing


class ForgetZeroGrad(Pitfall):
    """`+pitfall=forget_zero_grad`: `optimizer.zero_grad()` is never called."""

    name = "forget_zero_grad"
    what = (
        "optimizer.zero_grad() is never called, so each step's gradient is the sum of the "
        "gradients of every batch so far"
    )
    step_class = _GradientsNeverZeroed

    def __init__(self) -> None:
        super().__init__()
        self._params: list[torch.Tensor] = []
        self._previous: list[torch.Tensor] | None = None  # the gradients after the last step
        self._ratio_sum: torch.Tensor | float = 0.0
        self._steps = 0
        self._restored: list | None = None

    def on_fit_start(self, run) -> None:
        super().on_fit_start(run)
        self._params = [p for p in run.state.model.parameters() if p.requires_grad]

    def on_before_optimizer_step(self, run) -> None:
        """How much of the gradient the optimizer applies is left over from earlier batches:
        |applied| / |this step's own gradient| (on the device: read once an epoch)."""
        grads = [p.grad.detach() for p in self._params if p.grad is not None]
        if not grads:
            return
        applied = _norm(grads)
        previous = self._previous
        own = applied if previous is None or len(previous) != len(grads) else None
        if own is None:
            own = _norm([g - before for g, before in zip(grads, previous)])
        self._ratio_sum = self._ratio_sum + applied / own.clamp_min(1e-30)
        self._steps += 1
        self._previous = [g.clone() for g in grads]

    def on_epoch_end(self, run, logs) -> None:
        if self._steps:
            ratio = float(self._ratio_sum / self._steps)
            self._logs["pitfall/grad_carried_over"] = ratio
            self.report["grad_carried_over_last_epoch"] = ratio
        self._ratio_sum, self._steps = 0.0, 0
        super().on_epoch_end(run, logs)

    # The summed gradients are part of the run's state: a resumed run continues the same sum.
    def state_dict(self) -> dict:
        grads = [None if p.grad is None else p.grad.detach().clone() for p in self._params]
        return {**super().state_dict(), "grads": grads}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self._restored = state.get("grads")

    def on_load_checkpoint(self, run, checkpoint) -> None:
        params = [p for p in run.state.model.parameters() if p.requires_grad]
        if self._restored and len(self._restored) == len(params):
            for p, grad in zip(params, self._restored):
                p.grad = None if grad is None else torch.as_tensor(grad).to(p.device, p.dtype)
            self._previous = [p.grad.detach().clone() for p in params if p.grad is not None]
        self._restored = None


def _norm(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in tensors]))


def sorted_order(y: torch.Tensor) -> torch.Tensor:
    """The indices that sort the rows of `y` by target (stable; several columns: by the first,
    then the next, ...), as files often come: all of one class, then the next."""
    if y.dim() == 1:
        return torch.argsort(y, stable=True)
    columns = y.detach().reshape(len(y), -1).cpu().numpy()
    order = np.lexsort(columns.T[::-1])  # lexsort's last key is the primary one
    return torch.as_tensor(order, device=y.device)


class NoShuffle(Pitfall):
    """`+pitfall=no_shuffle`: the training split sorted by target and never shuffled."""

    name = "no_shuffle"
    what = (
        "the training split comes sorted by its target (as files often do: class by class) and "
        "is never shuffled, so every epoch sees the same batches in the same order"
    )

    def __init__(self) -> None:
        super().__init__()
        self._losses: list[torch.Tensor] = []
        self._last_target: float | None = None

    def splits(self, tensors: dict) -> dict:
        train = tensors["train"]
        if not isinstance(train, tuple):  # streamed from files (a DataLoader): as listed
            self.report["order"] = "as the data set lists its samples (streamed: not re-sorted)"
            return tensors
        x, y = train
        order = sorted_order(y)
        self.report["order"] = "sorted by target"
        last = y[order[-1]].reshape(-1)
        self._last_target = float(last[0]) if len(last) == 1 else None
        return {**tensors, "train": (x.index_select(0, order), y.index_select(0, order))}

    def batches(self, batches):
        batches.shuffle = False  # the mistake: the same order every epoch
        return batches

    def on_train_batch_end(self, run, batch_idx, loss) -> None:
        self._losses.append(loss.float())

    def on_epoch_end(self, run, logs) -> None:
        if self._losses:
            losses = torch.stack(self._losses)
            low, high = losses.aminmax()
            self._logs["pitfall/batch_loss_min"] = float(low)
            self._logs["pitfall/batch_loss_max"] = float(high)
        self._losses = []
        super().on_epoch_end(run, logs)

    def on_fit_end(self, run) -> None:
        """(with the weights the last epoch left, before early stopping restores the best)
        How far the model leans to the class every epoch ended on."""
        head = run.predictions.head
        if (
            self._last_target is None
            or head.task not in ("binary", "multiclass")
            or getattr(run.data, "streams", False)
        ):
            return
        targets, predicted = run.predictions.on_split("val")
        last = int(round(self._last_target))
        self.report["last_class"] = last
        self.report["val_share_of_last_class"] = float(np.mean(np.asarray(targets) == last))
        self.report["val_predicted_as_last_class"] = float(np.mean(np.asarray(predicted) == last))

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self._losses = []


class LrFarTooHigh(Pitfall):
    """`+pitfall=lr_far_too_high`: the rate the user set, times `factor`."""

    name = "lr_far_too_high"

    def __init__(self, factor: float = 1000.0) -> None:
        self.factor = float(factor)
        self.what = (
            f"the learning rate is {self.factor:g} times the one set: optimizer.lr, and a "
            "schedule's own max_lr and base_lr"
        )
        super().__init__()
        self.report["factor"] = self.factor

    def rates(self, optimizer, scheduler):
        groups = optimizer.param_groups
        main = next((g for g in groups if g.get("name") == "default"), groups[0])
        self.report["lr_set"] = float(main["lr"])
        for group in groups:
            group["lr"] = group["lr"] * self.factor
        self.report["lr_used"] = float(main["lr"])
        if isinstance(scheduler, functools.partial):  # (onecycle, cyclic: rates of their own)
            own = {
                key: value * self.factor
                for key, value in scheduler.keywords.items()
                if key in ("max_lr", "base_lr") and isinstance(value, (int, float))
            }
            if own:
                scheduler = functools.partial(
                    scheduler.func,
                    *scheduler.args,
                    **{
                        **scheduler.keywords,
                        **own,
                    },
                )
        return scheduler
