"""Multi-label data, targets and losses: several 0/1 target columns, one logit per label."""

import re

import numpy as np
import pytest
import torch

from trainer.data import DataModule
from trainer.data.arrays import ArrayData
from trainer.data.csv_file import load_csv
from trainer.data.multilabel import multilabel
from trainer.errors import UserError
from trainer.losses import BCEWithLogits, CrossEntropy, Focal, auto, build_loss, head_for


def _table(tmp_path, rows=None, name="labels.csv"):
    rows = rows or [f"{i * 0.1:.1f},{i % 3},{i % 2},{int(i % 4 == 0)}" for i in range(40)]
    path = tmp_path / name
    path.write_text("x,k,a,b\n" + "\n".join(rows) + "\n")
    return path


def test_a_csv_with_two_target_columns_is_multilabel(tmp_path):
    data = load_csv(str(_table(tmp_path)), target=["a", "b"])
    assert (data.task, data.class_names, data.target_names) == (
        "multilabel",
        ["a", "b"],
        ["a", "b"],
    )
    assert data.feature_names == ["x", "k"]
    assert data.targets[:4].tolist() == [[0, 1], [1, 0], [0, 0], [1, 0]]
    treatments = {c["name"]: c["treatment"] for c in data.columns}
    assert treatments["b"] == "target: multi-label, label 'b': 1 in 10 of 40 rows (25.0%)"
    module = DataModule(data)
    assert (module.spec.num_targets, module.spec.num_classes) == (2, 2)
    train = module.arrays["train"][1]
    assert module.class_counts().tolist() == [
        (len(train) - train.sum(0)).tolist(),
        train.sum(0).tolist(),
    ]


def test_a_target_column_that_is_not_0_1_is_named_with_its_values(tmp_path):
    rows = [f"{i},{i % 3},{i % 2},{i % 3}" for i in range(30)]
    rows[7] = "7,1,yes,x"
    with pytest.raises(UserError) as error:
        load_csv(str(_table(tmp_path, rows)), target=["a", "b"])
    assert error.value.key == "dataset.target"
    assert "column 'b' holds 11 other values: '2' (10 rows, first at line 4), 'x' (line 9)" in str(
        error.value
    )
    assert "'a'" not in str(error.value).split("but in")[1]  # yes is a 1


@pytest.mark.parametrize(
    ("target", "task", "key", "phrase"),
    [
        (["a", "b"], "binary", "dataset.task", "use dataset.task=multilabel (or auto)"),
        (["a"], "multilabel", "dataset.task", "needs two or more 0/1 target columns"),
        (["a", "a"], "auto", "dataset.target", "names 'a' more than once"),
        (["a", "zz"], "auto", "dataset.target", "names 'zz', not columns of"),
    ],
)
def test_target_lists_that_cannot_be_multilabel(tmp_path, target, task, key, phrase):
    with pytest.raises(UserError, match=re.escape(phrase)) as error:
        load_csv(str(_table(tmp_path)), target=target, task=task)
    assert error.value.key == key


def test_a_label_with_one_value_only_is_refused_by_name():
    y = np.zeros((20, 2), dtype=int)
    y[::2, 0] = 1
    data = ArrayData(np.ones((20, 1)), y, "multilabel", "d", ["x"], class_names=["p", "q"])
    with pytest.raises(UserError, match="label 'q' is 0 in every row"):
        data.check_usable()


def test_the_builtin_set_and_its_settings():
    data = multilabel(n_samples=50, n_features=4, n_labels=3, labels_per_sample=1, seed=1)
    assert data.targets.shape == (50, 3) and data.class_names == ["label0", "label1", "label2"]
    with pytest.raises(UserError, match="dataset.labels_per_sample=3 must be smaller") as error:
        multilabel(n_labels=3, labels_per_sample=3)
    assert error.value.key == "dataset.labels_per_sample"


def test_auto_is_bce_with_one_logit_per_label_and_other_losses_are_refused():
    loss = auto("multilabel")
    assert isinstance(loss, BCEWithLogits)
    head = head_for(loss, "multilabel", 3, 3, "auto", "multilabel", ["a", "b", "c"])
    assert (head.kind, head.num_outputs, head.labels) == ("labels", 3, ("a", "b", "c"))
    for wrong in (CrossEntropy(), torch.nn.MSELoss()):
        with pytest.raises(UserError) as error:
            head_for(wrong, "multilabel", 3, 3, "cross_entropy", "multilabel")
        assert error.value.key == "loss"
        assert "a multilabel task with 3 labels" in str(error.value)
        assert "Valid losses here: auto, bce_logits, focal." in str(error.value)
    torch_head = head_for(torch.nn.BCEWithLogitsLoss(), "multilabel", 3, 3, "bce", "d")
    assert (torch_head.kind, torch_head.num_outputs) == ("labels", 3)


def test_pos_weight_per_label():
    counts = np.array([[30, 10], [10, 30]])  # negatives, positives per label
    balanced = BCEWithLogits("balanced", task="multilabel", class_counts=counts)
    assert balanced.pos_weight.tolist() == [3.0, float(np.float32(1 / 3))]
    listed = BCEWithLogits([1, 2], task="multilabel", class_counts=counts)
    assert listed.pos_weight.tolist() == [1.0, 2.0]
    with pytest.raises(UserError, match=r"has 3 weights for 2 labels") as error:
        BCEWithLogits([1, 2, 3], task="multilabel", class_counts=counts)
    assert error.value.key == "loss.pos_weight"
    with pytest.raises(UserError, match=r"has 2 weights for a binary task"):
        BCEWithLogits([1, 2], task="binary", class_counts=np.array([5, 5]))
    logits, target = torch.tensor([[0.5, -1.0]]), torch.tensor([[1.0, 1.0]])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, target, pos_weight=torch.tensor([1.0, 2.0])
    )
    assert listed(logits, target).item() == expected.item()


def test_focal_loss_on_labels_is_sigmoid_per_label():
    loss = build_loss(
        lambda gamma=0.0, alpha=None, task="binary", class_counts=None: Focal(
            gamma, alpha, task, class_counts
        ),
        "multilabel",
        np.array([[5, 5], [5, 5]]),
    )
    logits, target = torch.tensor([[0.3, -2.0], [1.0, 0.5]]), torch.tensor([[1.0, 0.0], [0, 1]])
    assert loss.kind == "labels"
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
    assert loss(logits, target).item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("weights", ["balanced", [1.0, 2.0, 3.0]])
def test_class_weights_on_labels_point_to_pos_weight(weights):
    counts = np.array([[5, 6, 7], [5, 4, 3]])
    with pytest.raises(UserError, match="use loss=bce_logits with loss.pos_weight=balanced") as e:
        CrossEntropy(class_weights=weights, class_counts=counts)
    assert e.value.key == "loss.class_weights"
