"""Losses: the default per task, the output layout each needs, and clear errors on misfits."""

import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainer.errors import UserError
from trainer.losses import NLL, BCEWithLogits, CrossEntropy, Focal, auto, build_loss, head_for


def test_auto_picks_the_conventional_loss_and_output_count():
    assert isinstance(auto("regression"), nn.MSELoss)
    assert head_for(auto("binary"), "binary", 2, 1, "auto", "moons").num_outputs == 1
    assert head_for(auto("multiclass"), "multiclass", 10, 1, "auto", "digits").num_outputs == 10
    assert head_for(CrossEntropy(), "binary", 2, 1, "cross_entropy", "moons").num_outputs == 2
    assert head_for(nn.MSELoss(), "regression", None, 3, "mse", "x").num_outputs == 3


@pytest.mark.parametrize(
    "loss,task",
    [(BCEWithLogits(), "multiclass"), (nn.MSELoss(), "binary"), (CrossEntropy(), "regression")],
)
def test_a_loss_that_does_not_fit_the_task_names_the_valid_ones(loss, task):
    with pytest.raises(UserError, match="Valid losses here"):
        head_for(loss, task, 3 if task != "regression" else None, 1, "the_loss", "the_data")


def test_focal_with_gamma_zero_is_cross_entropy_and_down_weights_easy_examples():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.2, 0.3]])
    target = torch.tensor([0, 2])
    assert torch.allclose(
        Focal(gamma=0.0, task="multiclass")(logits, target), F.cross_entropy(logits, target)
    )
    assert Focal(gamma=2.0, task="multiclass")(logits, target) < F.cross_entropy(logits, target)
    binary = Focal(gamma=0.0, task="binary")
    logit, y = torch.tensor([[0.3], [-2.0]]), torch.tensor([[1.0], [0.0]])
    assert torch.allclose(binary(logit, y), F.binary_cross_entropy_with_logits(logit, y))


def test_nll_equals_cross_entropy_on_logits_and_balanced_weights_follow_counts():
    logits, target = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 0, 1])
    assert torch.allclose(NLL()(logits, target), F.cross_entropy(logits, target))
    loss = build_loss(
        functools.partial(CrossEntropy, class_weights="balanced"),
        "multiclass",
        np.array([60, 30, 10]),
    )
    assert loss.weight.tolist() == pytest.approx([100 / 180, 100 / 90, 100 / 30])
    bce = build_loss(
        functools.partial(BCEWithLogits, pos_weight="balanced"), "binary", np.array([80, 20])
    )
    assert bce.pos_weight.item() == pytest.approx(4.0)
    assert build_loss(CrossEntropy, "multiclass", np.array([60, 30, 10])).weight is None
    with pytest.raises(UserError, match="label_smoothing"):
        CrossEntropy(label_smoothing=1.0)


def test_losses_the_loop_cannot_train_with_are_refused_with_the_fix():
    with pytest.raises(UserError, match="loss.reduction=none gives one loss per sample") as info:
        build_loss(functools.partial(torch.nn.MSELoss, reduction="none"), "regression", None)
    assert info.value.key == "loss.reduction"
    with pytest.raises(UserError, match="takes probabilities .* use loss=bce_logits") as info:
        build_loss(torch.nn.BCELoss, "binary", None)
    assert info.value.key == "loss._target_"


def test_a_plain_loss_function_trains_with_its_module_twins_layout():
    from trainer.losses import FunctionLoss

    binary = build_loss(
        functools.partial(torch.nn.functional.binary_cross_entropy_with_logits), "binary", None
    )
    assert isinstance(binary, FunctionLoss)
    head = head_for(binary, "binary", 2, 1, "loss", "moons")
    assert (head.kind, head.num_outputs) == ("logit", 1)
    outputs, targets = torch.tensor([[0.0], [2.0]]), head.targets(np.array([0, 1]))
    expected = torch.nn.BCEWithLogitsLoss()(outputs, targets)
    assert torch.equal(binary(outputs, targets), expected)
    multi = build_loss(functools.partial(torch.nn.functional.cross_entropy), "multiclass", None)
    assert head_for(multi, "multiclass", 3, 1, "loss", "iris").num_outputs == 3


def test_focal_alpha_is_one_weight_per_class_on_multiclass_tasks():
    counts = np.array([10, 20, 30])
    focal = build_loss(functools.partial(Focal, alpha=[1.0, 2.0, 0.5]), "multiclass", counts)
    logits, target = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), torch.tensor([0, 1])
    log_p = F.log_softmax(logits, dim=1).gather(1, target[:, None])[:, 0]
    expected = (torch.tensor([1.0, 2.0]) * (1 - log_p.exp()) ** 2 * -log_p).mean()
    assert torch.allclose(focal(logits, target), expected)
    assert not torch.allclose(focal(logits, target), Focal(task="multiclass")(logits, target))
    for alpha in (0.25, [1.0, 2.0]):  # a binary setting, or the wrong number of classes
        with pytest.raises(UserError, match=r"one weight per class, in class order") as info:
            build_loss(functools.partial(Focal, alpha=alpha), "multiclass", counts)
        assert info.value.key == "loss.alpha"
    with pytest.raises(UserError, match=r"positive class's weight, a number in \(0, 1\)"):
        build_loss(functools.partial(Focal, alpha=[0.5, 0.5]), "binary", counts[:2])
