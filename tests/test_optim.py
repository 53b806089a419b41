"""Optimizer building: parameter groups and the fused implementation."""

import functools

import pytest
import torch

from trainer.errors import UserError
from trainer.models import MLP
from trainer.optim import build_optimizer, parameter_groups


def test_biases_and_norm_weights_can_skip_weight_decay():
    model = MLP((4,), 2, hidden_sizes=[8], batch_norm=True)
    groups = parameter_groups(model, weight_decay=0.1, decay_bias_and_norm=False)
    by_name = {g["name"]: g for g in groups}
    assert by_name["no_decay"]["weight_decay"] == 0.0
    assert all(p.ndim < 2 for p in by_name["no_decay"]["params"])
    assert all(p.ndim == 2 for p in by_name["default"]["params"])
    assert len(parameter_groups(model, 0.1, decay_bias_and_norm=True)) == 1


def test_module_learning_rates_and_unknown_prefixes():
    model = MLP((4,), 2, hidden_sizes=[8])
    optimizer = build_optimizer(
        functools.partial(torch.optim.SGD, lr=0.1),
        model,
        torch.device("cpu"),
        module_lr={"layers.3": 0.01},
    )
    rates = {g["name"]: g["lr"] for g in optimizer.param_groups}
    assert rates == {"default": 0.1, "layers.3": 0.01}
    with pytest.raises(UserError, match="matches no parameter"):
        parameter_groups(model, 0.0, module_lr={"head": 0.1})


def test_fused_kernels_are_used_unless_the_config_chose():
    model = MLP((4,), 2)
    assert build_optimizer(
        functools.partial(torch.optim.AdamW, lr=1e-3), model, torch.device("cpu")
    ).defaults["fused"]
    chosen = build_optimizer(
        functools.partial(torch.optim.AdamW, lr=1e-3, foreach=True), model, torch.device("cpu")
    )
    assert not chosen.defaults["fused"]
    rmsprop = build_optimizer(
        functools.partial(torch.optim.RMSprop, lr=1e-3), model, torch.device("cpu")
    )
    assert type(rmsprop) is torch.optim.RMSprop and rmsprop.defaults["lr"] == 1e-3


def test_lr_logs_the_default_groups_rate_and_every_group(tmp_path):
    from helpers import make_trainer

    from trainer.callbacks import LearningRateMonitor

    trainer, data = make_trainer(
        tmp_path,
        callbacks={"lr": LearningRateMonitor()},
        max_epochs=1,
        optimizer=functools.partial(torch.optim.AdamW, lr=0.01, weight_decay=0.1),
        decay_bias_and_norm=False,
        module_lr={"layers.1": 0.001},
    )
    trainer.fit(data)
    rates = {k: v for k, v in trainer.record.history[-1].items() if k.startswith("lr")}
    assert rates == {
        "lr": 0.01,
        "lr/layers.1": 0.001,
        "lr/layers.1/no_decay": 0.001,
        "lr/default": 0.01,
        "lr/no_decay": 0.01,
    }
