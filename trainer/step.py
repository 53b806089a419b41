"""The training step: what happens between two optimizer steps, used by `Trainer.fit` and by
the learning-rate range test alike.

    zero_grad -> per micro-batch: forward (autocast) -> loss -> backward (scaled)
              -> unscale -> (measure, clip) -> non-finite policy -> optimizer step

Accumulation: `accumulate` micro-batches make one optimizer step, each counted by its share of
the step's samples (and under DDP of the global batch), with DDP's gradient all-reduce only on
the last one. Nothing here reads a value back to the host, except where `on_nonfinite=skip`
must decide about this very step.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from .data.batches import TensorBatches
from .errors import NonFiniteError
from .precision import Precision

MAX_SKIPPED_IN_A_ROW = 20  # on_nonfinite=skip: this many non-finite steps in a row is divergence


class TrainStep:
    """Forward/backward of micro-batches and the optimizer step, with the run's numerics."""

    def __init__(
        self,
        model: nn.Module,
        loss_fn: nn.Module,
        optimizer: torch.optim.Optimizer,
        precision: Precision,
        *,
        accumulate: int = 1,
        clip_norm: float | None = None,
        clip_value: float | None = None,
        skip_nonfinite: bool = False,
        ddp: bool = False,
        world_size: int = 1,
    ) -> None:
        self.model, self.loss_fn = model, loss_fn
        self.optimizer, self.precision = optimizer, precision
        unwrapped = model.module if ddp else model
        self.params = [p for p in unwrapped.parameters() if p.requires_grad]
        self.accumulate, self.clip_norm, self.clip_value = accumulate, clip_norm, clip_value
        self.skip_nonfinite = skip_nonfinite
        self.skipped_in_a_row = 0  # on_nonfinite=skip: too many in a row means diverged
        self.ddp, self.world_size = ddp, world_size
        self._autocast = precision.autocast()  # re-entered every batch (a no-op at fp32)
        self._shares = accumulate > 1 or world_size > 1  # micro-batches weighted by their share
        self._group_samples: list[int] = []
        self._foreach: bool | None = None  # foreach kernels for norms and clipping (not on mps)
        # One _foreach_norm over every gradient, where they share a device and dtype (decided once)
        self._fused_norms: bool | None = None
        self._layer_index: torch.Tensor | None = None  # the two layers' places among the params
        self.last_norm: torch.Tensor | None = None  # of the last step that measured it
        # The first and last weight layers (Linear, Conv): their gradient norms, measured with
        # the total, tell vanishing gradients from a small total.
        weights = [i for i, p in enumerate(self.params) if p.dim() >= 2]
        self._layers = [weights[0], weights[-1]] if len(weights) >= 2 else []
        self.start_epoch(None)

    def start_epoch(self, batches: TensorBatches | None) -> None:
        """Reset the epoch's gradient-norm sum; plan the samples in each optimizer step."""
        self.norm_sum: torch.Tensor | float = 0.0
        self.norm_count = 0
        self.layer_sum: torch.Tensor | float = 0.0
        self.layer_count = 0
        self._norms_read: tuple[tuple[int, int], dict] = ((0, 0), {})
        if batches is not None:
            sizes, k = batches.global_sizes(), self.accumulate
            self._group_samples = [sum(sizes[i : i + k]) for i in range(0, len(sizes), k)]
            self.num_batches = len(batches)

    def starts_group(self, batch_idx: int) -> bool:
        return batch_idx % self.accumulate == 0

    def ends_group(self, batch_idx: int) -> bool:
        return (batch_idx + 1) % self.accumulate == 0 or batch_idx + 1 == self.num_batches

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def forward_backward(
        self, x: torch.Tensor, y: torch.Tensor, batch_idx: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One micro-batch; returns its (detached) loss and outputs."""
        context = self._forward_context(self.ends_group(batch_idx)) if self.ddp else self._autocast
        with context:
            outputs = self.model(x)
            loss = self.loss_fn(outputs, y)
        scaled = loss
        if self._shares:  # (one micro-batch, one process: the loss as it is)
            share = len(x) * self.world_size / self._group_samples[batch_idx // self.accumulate]
            scaled = loss if share == 1.0 else loss * share
        try:
            self.precision.backward(scaled)
        except RuntimeError as error:  # trainer.detect_anomaly found the op: not a bug
            if "returned nan values" not in str(error):
                raise
            raise NonFiniteError(
                f"trainer.detect_anomaly: {str(error).strip().splitlines()[0]} (batch "
                f"{batch_idx + 1} of the epoch): the loss or the gradients became NaN there. "
                "Lower optimizer.lr, clip gradients (trainer.grad_clip.norm=1.0), or check that "
                "op's inputs (a log or sqrt of a value <= 0, a division by 0).",
                key="trainer.detect_anomaly",
            ) from None
        return loss.detach(), outputs.detach()

    def unscale(self) -> None:
        """True gradients (unscaled under fp16) before anything reads or clips them."""
        self.precision.unscale(self.optimizer)

    def apply(self, measure_norm: bool = False) -> bool:
        """Clip, apply the non-finite policy and step (after `unscale`); False when skipped."""
        norm = None
        if self.clip_norm is not None or self.skip_nonfinite or measure_norm:
            norm = self._grad_norm(measure_layers=measure_norm)  # (before clipping)
        if self.clip_norm is not None:
            nn.utils.clip_grads_with_norm_(self.params, self.clip_norm, norm, self._foreach)
        if self.skip_nonfinite and not torch.isfinite(norm).item():
            # After DDP's all-reduce the gradients are equal on every rank: all skip together.
            self.zero_grad()
            if self.precision.scaler is not None:
                self.precision.scaler.update()
            self.skipped_in_a_row += 1
            return False
        self.skipped_in_a_row = 0
        if self.clip_value is not None:
            nn.utils.clip_grad_value_(self.params, self.clip_value)
        if norm is not None:
            self.last_norm = norm.detach()
            self.norm_sum = self.norm_sum + self.last_norm
            self.norm_count += 1
        self.precision.step(self.optimizer)
        return True

    def _grad_norm(self, measure_layers: bool) -> torch.Tensor:
        """The total gradient norm, as `clip_grad_norm_` computes it (the norm of the tensors'
        norms); with `measure_layers`, the first and last weight layers' norms are added to the
        epoch's sums. Gradients on one device in one dtype (the usual case) take one
        `_foreach_norm`, whose per-tensor norms give the layers' too (5 ops in all, not 12)."""
        grads = [p.grad for p in self.params if p.grad is not None]
        if self._fused_norms is None and grads:
            kinds = {(g.device, g.dtype) for g in grads}
            self._fused_norms = len(kinds) == 1 and grads[0].device.type in ("cpu", "cuda")
            self._foreach = grads[0].device.type != "mps"
            self._layer_index = torch.tensor(self._layers, dtype=torch.long, device=grads[0].device)
        if not (self._fused_norms and len(grads) == len(self.params)):  # (some without grads)
            if (
                measure_layers
                and self._layers
                and all(self.params[i].grad is not None for i in self._layers)
            ):
                layers = [self.params[i].grad for i in self._layers]
                norms = torch.stack([torch.linalg.vector_norm(g) for g in layers])
                self.layer_sum = self.layer_sum + norms.detach()
                self.layer_count += 1
            return nn.utils.get_total_norm(grads, foreach=self._foreach)
        per_tensor = torch.stack(torch._foreach_norm(grads))  # (what get_total_norm runs)
        if measure_layers and self._layers:
            self.layer_sum = self.layer_sum + per_tensor.index_select(0, self._layer_index)
            self.layer_count += 1
        return torch.linalg.vector_norm(per_tensor)

    def check(
        self, loss: torch.Tensor | None, interrupted: bool, dist, device: torch.device
    ) -> tuple[bool, bool]:
        """(non-finite, interrupted): whether `loss` or the epoch's gradient norms went NaN/inf
        (with on_nonfinite=skip: whether MAX_SKIPPED_IN_A_ROW steps in a row were skipped), and
        whether any process has a pending signal. Under DDP every
        rank gets the same answer, from one small collective; otherwise one host read at most."""
        checks_loss = not self.skip_nonfinite
        diverged = self.diverged_skipping()
        if not (checks_loss or dist.active):
            return diverged, interrupted
        flag = torch.tensor(diverged, device=device)
        if checks_loss and loss is not None:
            flag = ~torch.isfinite(loss)
            if self.norm_count:
                flag = flag | ~torch.isfinite(self.norm_sum)
        if not dist.active:
            return bool(flag.item()), interrupted
        flags = torch.stack([flag.float(), torch.tensor(float(interrupted), device=device)])
        torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
        bad, interrupted = (value > 0 for value in flags.tolist())
        return bad, interrupted

    def diverged_skipping(self) -> bool:
        """on_nonfinite=skip: MAX_SKIPPED_IN_A_ROW steps in a row were skipped (diverged)."""
        return self.skip_nonfinite and self.skipped_in_a_row >= MAX_SKIPPED_IN_A_ROW

    def nonfinite_found(self, state, steps: list[int], value: float) -> dict:
        """What the run records of a non-finite loss (metrics.json `nonfinite`)."""
        return {
            "epoch": state.epoch,
            "steps": steps,
            "lr": state.learning_rates()["lr"],
            "value": str(value),
            "skipped_in_a_row": self.skipped_in_a_row,
        }

    def epoch_grad_norms(self) -> dict[str, float]:
        """The epoch's mean gradient norm over the steps that measured it (`grad_norm`) and the
        first and last weight layers' (`grad_norm/first_layer`, `grad_norm/last_layer`); {}
        when none was measured. One host read, kept until the next measurement."""
        counts = (self.norm_count, self.layer_count)
        if self._norms_read[0] != counts:
            self._norms_read = (counts, self._read_norms())
        return self._norms_read[1]

    def _read_norms(self) -> dict[str, float]:
        if not self.norm_count:
            return {}
        means = [self.norm_sum.reshape(1) / self.norm_count]
        if self.layer_count:
            means.append(self.layer_sum / self.layer_count)
        values = torch.cat(means).tolist()
        names = ["grad_norm", "grad_norm/first_layer", "grad_norm/last_layer"]
        return dict(zip(names, values))

    def _forward_context(self, last_in_group: bool):
        """Autocast; under DDP with accumulation, no gradient all-reduce before the group's last
        micro-batch."""
        if self.ddp and not last_in_group:
            stack = contextlib.ExitStack()
            stack.enter_context(self.model.no_sync())
            stack.enter_context(self.precision.autocast())
            return stack
        return self._autocast


def nonfinite_error(found: dict) -> NonFiniteError:
    """The error for a loss that went NaN/inf: where, at which rate, and what to do."""
    last = (
        "checkpoints/last.pt keeps the last good epoch"
        if found["epoch"] > 1
        else "no epoch had finished"
    )
    first, last_step = found["steps"]
    if found.get("skipped_in_a_row"):
        return NonFiniteError(
            f"trainer.on_nonfinite=skip skipped {found['skipped_in_a_row']} optimizer steps in "
            f"a row (up to step {last_step}, epoch {found['epoch']}) at learning rate "
            f"{found['lr']:.3g}: the weights diverged and no longer recover, so the run stops "
            "as diverged. Lower optimizer.lr or clip gradients (trainer.grad_clip.norm=1.0); "
            f"{last}.",
            key="trainer.on_nonfinite",
        )
    return NonFiniteError(
        f"the training loss became non-finite ({found['value']}) between optimizer steps "
        f"{first} and {last_step} (epoch {found['epoch']}) at learning rate {found['lr']:.3g}. "
        "Lower optimizer.lr, clip gradients (trainer.grad_clip.norm=1.0), or drop such "
        f"batches with trainer.on_nonfinite=skip; {last}.",
        key="optimizer.lr",
    )
