"""Epoch metrics kept on the device equal the textbook formulas, sample-weighted."""

import numpy as np
import pytest
import torch

from trainer.best import resolve_mode
from trainer.metrics import MetricAccumulator
from trainer.tasks import Head


def test_classification_loss_and_accuracy_are_sample_weighted():
    head = Head("multiclass", "logits", 3)
    acc = MetricAccumulator(head, torch.device("cpu"))
    logits = torch.randn(50, 3, generator=torch.Generator().manual_seed(0))
    target = torch.randint(0, 3, (50,), generator=torch.Generator().manual_seed(1))
    for lo, hi in ((0, 32), (32, 50)):  # unequal batches
        loss = torch.nn.functional.cross_entropy(logits[lo:hi], target[lo:hi])
        acc.update(loss, logits[lo:hi], target[lo:hi])
    result = acc.compute()
    assert result["loss"] == pytest.approx(
        torch.nn.functional.cross_entropy(logits, target).item(), rel=1e-6
    )
    assert result["accuracy"] == pytest.approx((logits.argmax(1) == target).float().mean().item())


def test_regression_metrics_are_in_original_units():
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    rng = np.random.RandomState(0)
    y = rng.normal(size=(80, 1)).astype(np.float32)
    pred = (y + 0.3 * rng.normal(size=(80, 1))).astype(np.float32)
    std = 7.0
    acc = MetricAccumulator(
        Head("regression", "values", 1), torch.device("cpu"), torch.tensor([std])
    )
    for i in range(0, 80, 16):
        acc.update(
            torch.tensor(0.0), torch.from_numpy(pred[i : i + 16]), torch.from_numpy(y[i : i + 16])
        )
    result = acc.compute()
    assert result["mae"] == pytest.approx(mean_absolute_error(y * std, pred * std), rel=1e-5)
    assert result["rmse"] == pytest.approx(mean_squared_error(y * std, pred * std) ** 0.5, rel=1e-5)
    assert result["r2"] == pytest.approx(r2_score(y, pred), rel=1e-5)


def test_binary_logit_accuracy_and_metric_directions():
    acc = MetricAccumulator(Head("binary", "logit", 1), torch.device("cpu"))
    acc.update(
        torch.tensor(0.5), torch.tensor([[2.0], [-1.0], [0.5]]), torch.tensor([[1.0], [1.0], [0.0]])
    )
    assert acc.compute()["accuracy"] == pytest.approx(1 / 3)
    assert resolve_mode("accuracy/val") == "max" and resolve_mode("r2/val") == "max"
    assert resolve_mode("loss/val") == "min" and resolve_mode("mae/val") == "min"
    assert resolve_mode("accuracy/val", "min") == "min"  # what the user set wins


# ---------------------------------------------------------------------- precision, recall, F1
def _feed(head, logits, targets, batches=((0, 7), (7, 20), (20, None))):
    acc = MetricAccumulator(head, torch.device("cpu"))
    for lo, hi in batches:  # unequal batches
        acc.update(torch.tensor(0.25), logits[lo:hi], targets[lo:hi])
    return acc.compute()


def test_macro_f1_of_a_hand_made_confusion_matrix_equals_sklearn():
    from sklearn.metrics import f1_score, precision_score, recall_score

    # rows: true class, columns: predicted class; class 3 never occurs nor is predicted
    confusion = np.array([[5, 2, 1, 0], [0, 7, 3, 0], [2, 0, 4, 0], [0, 0, 0, 0]])
    pairs = [(t, p) for t in range(4) for p in range(4) for _ in range(confusion[t, p])]
    y_true, y_pred = (np.array(v) for v in zip(*pairs))
    logits = torch.nn.functional.one_hot(torch.from_numpy(y_pred), 4).double()
    result = _feed(Head("multiclass", "logits", 4), logits, torch.from_numpy(y_true))
    # by hand: precision 5/7, 7/9, 4/8; recall 5/8, 7/10, 4/6; F1 2tp/(pred + true)
    f1 = [10 / 15, 14 / 19, 8 / 14]
    assert result["f1_macro"] == pytest.approx(sum(f1) / 3, abs=1e-15)
    assert result["f1_macro"] == pytest.approx(f1_score(y_true, y_pred, average="macro"), abs=1e-15)
    assert result["precision_macro"] == pytest.approx(
        precision_score(y_true, y_pred, average="macro"), abs=1e-15
    )
    assert result["recall_macro"] == pytest.approx(
        recall_score(y_true, y_pred, average="macro"), abs=1e-15
    )
    assert result["accuracy"] == 16 / 24
    assert list(result) == ["loss", "accuracy", "precision_macro", "recall_macro", "f1_macro"]


def test_binary_macro_metrics_average_both_classes_as_sklearn():
    from sklearn.metrics import f1_score, recall_score

    y_true = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    y_pred = np.array([1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    logit = torch.from_numpy(np.where(y_pred == 1, 2.0, -2.0)).reshape(-1, 1)
    target = torch.from_numpy(y_true).double().reshape(-1, 1)
    result = _feed(Head("binary", "logit", 1), logit, target)
    assert result["f1_macro"] == pytest.approx(f1_score(y_true, y_pred, average="macro"), abs=1e-15)
    assert result["recall_macro"] == pytest.approx((2 / 4 + 15 / 16) / 2, abs=1e-15)
    assert result["recall_macro"] == pytest.approx(
        recall_score(y_true, y_pred, average="macro"), abs=1e-15
    )


def test_multilabel_metrics_equal_sklearn_per_label_and_overall():
    from sklearn.metrics import (
        accuracy_score,
        f1_score,
        hamming_loss,
        precision_score,
        recall_score,
    )

    rng = np.random.RandomState(3)
    y_true = (rng.uniform(size=(20, 4)) < 0.4).astype(np.int64)
    y_pred = np.where(rng.uniform(size=(20, 4)) < 0.25, 1 - y_true, y_true)
    y_true[:, 3], y_pred[:, 3] = 0, 0  # a label never set nor predicted: F1 0, as sklearn says
    logits = torch.from_numpy(np.where(y_pred == 1, 1.5, -1.5))
    head = Head("multilabel", "labels", 4, ("a", "b", "c", "d"))
    result = _feed(head, logits, torch.from_numpy(y_true).double())
    per_label_f1 = f1_score(y_true, y_pred, average=None, zero_division=0)
    expected = {
        "loss": 0.25,
        "accuracy": 1 - hamming_loss(y_true, y_pred),
        "exact_match": accuracy_score(y_true, y_pred),
        "precision_macro": precision_score(y_true, y_pred, average="macro", zero_division=0),
        "recall_macro": recall_score(y_true, y_pred, average="macro", zero_division=0),
        "f1_macro": f1_score(y_true, y_pred, average="macro", zero_division=0),
    }
    for j, name in enumerate("abcd"):
        expected[f"accuracy/{name}"] = float(np.mean(y_true[:, j] == y_pred[:, j]))
        expected[f"f1/{name}"] = per_label_f1[j]
    assert list(result) == list(expected)
    for key, value in expected.items():
        assert result[key] == pytest.approx(value, abs=1e-15), key
    assert result["f1/d"] == 0.0 and result["accuracy/d"] == 1.0


def test_multilabel_counts_are_exact_after_a_checkpoint_round_trip():
    head = Head("multilabel", "labels", 2, ("x", "y"))
    logits = torch.tensor([[1.0, -1.0], [1.0, 1.0], [-1.0, -1.0]])
    target = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    acc = MetricAccumulator(head, torch.device("cpu"))
    acc.update(torch.tensor(0.5), logits, target)
    # [loss sum, n, exact, tp x, tp y, predicted x, predicted y, actual x, actual y]
    assert acc.state_dict()["sums"].tolist() == [1.5, 3, 2, 1, 1, 2, 1, 1, 1]
    again = MetricAccumulator(head, torch.device("cpu"))
    again.load_state_dict(acc.state_dict())
    assert again.compute() == acc.compute()


def test_monitors_of_the_new_metrics_and_their_directions():
    from trainer.errors import UserError
    from trainer.metrics import check_monitor

    check_monitor("f1_macro/val", "multiclass")
    check_monitor("exact_match/val", "multilabel", ("a", "b"))
    check_monitor("f1/b/val", "multilabel", ("a", "b"))
    with pytest.raises(UserError, match=r"trainer.monitor='exact_match/val' .* f1_macro/val"):
        check_monitor("exact_match/val", "binary")
    for monitor in ("f1_macro/val", "precision_macro/val", "recall_macro/train", "f1/b/val"):
        assert resolve_mode(monitor) == "max", monitor
    assert resolve_mode("exact_match/val") == "max" and resolve_mode("accuracy/b/val") == "max"


def test_class_counts_in_a_checkpoint_keep_their_layout_and_resume_exactly():
    # Few classes are counted as a confusion matrix; what a checkpoint holds is still the
    # documented layout, and an epoch resumed from it ends with the counts of one whole pass.
    head = Head("multiclass", "logits", 3)
    logits = torch.nn.functional.one_hot(torch.tensor([0, 1, 1, 2, 0]), 3).float()
    target = torch.tensor([0, 1, 2, 2, 1])
    acc = MetricAccumulator(head, torch.device("cpu"))
    acc.update(torch.tensor(0.5), logits[:3], target[:3])
    # [loss sum, n, right, tp per class, predicted per class, actual per class]
    assert acc.state_dict()["sums"].tolist() == [1.5, 3, 2, 1, 1, 0, 1, 2, 0, 1, 1, 1]
    resumed = MetricAccumulator(head, torch.device("cpu"))
    resumed.load_state_dict(acc.state_dict())
    for each in (acc, resumed):
        each.update(torch.tensor(0.5), logits[3:], target[3:])
    assert resumed.state_dict()["sums"].tolist() == [2.5, 5, 3, 1, 1, 1, 2, 2, 1, 1, 2, 2]
    assert resumed.compute() == acc.compute()


@pytest.mark.parametrize("classes", [5, 40])  # a confusion matrix, per-class comparisons
def test_macro_metrics_of_few_and_many_classes_equal_sklearn(classes):
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    rng = np.random.RandomState(classes)
    y_true = rng.randint(0, classes, 300)
    y_pred = np.where(rng.uniform(size=300) < 0.6, y_true, rng.randint(0, classes, 300))
    logits = torch.nn.functional.one_hot(torch.from_numpy(y_pred), classes).double()
    batches = [(i, i + 64) for i in range(0, 300, 64)]
    result = _feed(Head("multiclass", "logits", classes), logits, torch.from_numpy(y_true), batches)
    assert result == {
        "loss": 0.25,
        "accuracy": pytest.approx(accuracy_score(y_true, y_pred), abs=1e-15),
        "precision_macro": pytest.approx(
            precision_score(y_true, y_pred, average="macro"), abs=1e-12
        ),
        "recall_macro": pytest.approx(recall_score(y_true, y_pred, average="macro"), abs=1e-12),
        "f1_macro": pytest.approx(f1_score(y_true, y_pred, average="macro"), abs=1e-12),
    }
