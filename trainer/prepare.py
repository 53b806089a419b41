"""Putting a run's parts in place, once, before the first step: the processes (DDP), the
device, the precision, the data as tensors on the device, the model there (wrapped for DDP),
then the optimizer and the schedule built on the placed model, the training step and the
evaluation. A pitfall of the pitfall lab (pitfalls/) chooses some of these differently here,
once: the loop runs whatever it is given."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .best import monitor_without_validation
from .data.batches import TensorBatches, training_batches
from .data.module import DataModule
from .devices import configure_torch, resolve_device
from .distributed import Distributed
from .errors import UserError
from .evaluation import Predictions, SplitEvaluator
from .losses import head_for
from .metrics import MetricAccumulator, check_monitor
from .optim import build_optimizer
from .pitfalls import Pitfall
from .precision import Precision
from .schedulers import build_schedule
from .settings import ParamGroupSettings, TrainerSettings
from .state import TrainingState
from .step import TrainStep
from .tasks import Head


@dataclass
class Placed:
    """What `place` made: everything the loop runs on."""

    dist: Distributed
    device: torch.device
    head: Head
    model: nn.Module  # what the loop calls: DDP-wrapped when several processes train
    tensors: dict[str, tuple[torch.Tensor, torch.Tensor]]  # (x, y) per split, on the device
    train_batches: TensorBatches
    state: TrainingState
    step: TrainStep | None  # None for evaluation only (no optimizer)
    predictions: Predictions  # the model's predictions in the data's terms
    target_std: torch.Tensor | None  # regression targets' scale, for metrics in their units
    evaluate: SplitEvaluator  # metrics on a named split with the current weights


def place(
    model: nn.Module,
    loss_fn: nn.Module,
    optimizer: Any,
    scheduler: Any,
    scheduler_interval: str | None,
    param_groups: ParamGroupSettings,
    settings: TrainerSettings,
    data: DataModule,
    pitfall: Pitfall | None = None,
) -> Placed:
    """Build the run's parts in dependency order (`optimizer` and `scheduler` are factories, or
    a built optimizer, or None to evaluate only). `pitfall`: a classic mistake to make on
    purpose (None: the right way)."""
    s, spec = settings, data.spec
    pitfall = pitfall or Pitfall()  # (the base class is the right way: it changes nothing)
    dist = Distributed(s.strategy, s.ddp_backend)
    device = resolve_device(s.device, dist.local_rank)
    dist.check_device(device, spec.sizes["train"])
    configure_torch(s.num_threads, s.deterministic)
    if dist.active:  # distinct dropout noise per process; identical weights come from DDP
        torch.manual_seed(s.seed + dist.rank)
    precision = Precision(s.precision, device)
    head = head_for(
        loss_fn,
        spec.task,
        spec.num_classes,
        spec.num_targets,
        type(loss_fn).__name__,
        spec.name,
        spec.class_names,
    )
    if not spec.sizes["val"]:  # no validation split: loss/val becomes loss/train (best.py)
        s.monitor = monitor_without_validation(s.monitor)
    check_monitor(s.monitor, spec.task, head.labels)

    # The model on its device before the optimizer is built: its state lives beside the weights.
    unwrapped = model.to(device)
    loss_fn.to(device)
    wrapped = dist.wrap(unwrapped, device)
    if getattr(data, "streams", False):  # the DataLoader path: read batch by batch
        tensors = data.splits_on(device, head.targets)
    else:
        tensors = {  # moved to the device once
            name: (torch.as_tensor(x).to(device), head.targets(y).to(device))
            for name, (x, y) in data.arrays.items()
        }
    tensors = pitfall.splits(tensors)
    norms = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
    batch_norm = any(isinstance(module, norms) for module in unwrapped.modules())
    if batch_norm and s.batch_size < 2 * dist.world_size:
        raise UserError(
            f"trainer.batch_size={s.batch_size}: the model has BatchNorm layers, which cannot "
            f"train on one sample per {'process' if dist.active else 'batch'}; use "
            f"trainer.batch_size={2 * dist.world_size} or more (or model.batch_norm=false).",
            key="trainer.batch_size",
        )
    min_per_rank = 2 if batch_norm else 1  # a last batch of one sample is left out of the epoch
    batches = pitfall.batches(
        training_batches(
            tensors["train"], s, dist.rank, dist.world_size, min_per_rank, data.augment
        )
    )
    steps_per_epoch = -(-len(batches) // s.accumulate_grad_batches)
    if s.max_epochs is None:  # (the settings object is the Trainer's: everything reads this)
        s.max_epochs = s.auto_epochs(steps_per_epoch)
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        optimizer = build_optimizer(
            optimizer, unwrapped, device, param_groups.decay_bias_and_norm, param_groups.module_lr
        )
    if optimizer is not None:
        scheduler = pitfall.rates(optimizer, scheduler)
    schedule = None
    if scheduler is not None:
        schedule = build_schedule(
            scheduler, optimizer, scheduler_interval, steps_per_epoch, s.max_epochs
        )
    state = TrainingState(unwrapped, optimizer, schedule, precision, len(batches), steps_per_epoch)
    step = None
    if optimizer is not None:
        step = pitfall.step_class(
            wrapped,
            loss_fn,
            optimizer,
            precision,
            accumulate=s.accumulate_grad_batches,
            clip_norm=s.grad_clip.norm,
            clip_value=s.grad_clip.value,
            skip_nonfinite=s.on_nonfinite == "skip",
            ddp=dist.active,
            world_size=dist.world_size,
        )
    std = data.target_scaler.std if data.target_scaler is not None else None
    target_std = None if std is None else torch.as_tensor(std, dtype=torch.float32)
    predictions = Predictions(unwrapped, head, data, device, s.eval_batch_size, precision.autocast)
    evaluate = SplitEvaluator(
        state,
        loss_fn,
        tensors,
        s,
        dist,
        lambda: MetricAccumulator(head, device, target_std),
        pitfall.evaluation_mode,
    )
    pitfall.attach(evaluate)
    return Placed(
        dist,
        device,
        head,
        wrapped,
        tensors,
        batches,
        state,
        step,
        predictions,
        target_std,
        evaluate,
    )
