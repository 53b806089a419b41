"""Multi-label classification and the metrics for imbalance, through the real command line:
what metrics.json, TensorBoard, the panels and predictions.csv say."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from helpers import metrics_of, run_cli, unsaid

pytestmark = pytest.mark.e2e

QUICK = ["trainer.max_epochs=2", "logger=none"]
LABELS = ("label0", "label1", "label2")
MULTILABEL = ["loss", "accuracy", "exact_match", "precision_macro", "recall_macro", "f1_macro"]
LR = {"lr", "lr/default", "lr/no_decay"}  # the learning rates of the parameter groups
CLASSIFICATION = ["loss", "accuracy", "precision_macro", "recall_macro", "f1_macro"]


def _multilabel_names(labels) -> list[str]:
    return MULTILABEL + [f"{m}/{label}" for label in labels for m in ("accuracy", "f1")]


def _epoch_keys(names) -> set[str]:
    keys = {f"{n}/{split}" for n in names for split in ("train", "val")}
    return (
        keys
        | {
            "epoch",
            "grad_norm",
            "grad_norm/first_layer",
            "grad_norm/last_layer",
            "time/epoch_s",
            "throughput/samples_per_s",
        }
        | LR
    )


def test_builtin_multilabel_set_reports_every_metric_in_every_place(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    args = ["dataset=multilabel", "dataset.n_samples=300", "dataset.n_labels=3"]
    args += ["trainer.max_epochs=3", "trainer.monitor=f1_macro/val"]
    result = run_cli(args, tmp_path, check=True)
    metrics = metrics_of(result.dir)
    names = _multilabel_names(LABELS)
    assert (metrics["dataset"]["task"], metrics["dataset"]["num_classes"]) == ("multilabel", 3)
    assert (metrics["monitor"], metrics["mode"]) == ("f1_macro/val", "max")
    assert [set(h) for h in metrics["history"]] == [_epoch_keys(names)] * 3
    assert list(metrics["test"]) == names
    assert set(metrics["best"]) == {f"{n}/{s}" for n in names for s in ("train", "val")}
    f1 = [h["f1_macro/val"] for h in metrics["history"]]
    assert metrics["best_epoch"] == 1 + f1.index(max(f1))
    assert metrics["best_val_metric"] == max(f1)
    for row in metrics["history"]:  # the macro F1 is the mean of the labels' own
        assert row["f1_macro/val"] == pytest.approx(
            sum(row[f"f1/{label}/val"] for label in LABELS) / 3, abs=1e-12
        )
    events = EventAccumulator(str(result.dir), size_guidance={"scalars": 0})
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {f"{n}/{s}" for n in names for s in ("train", "val", "test")} <= tags
    assert events.Scalars("f1/label2/val")[-1].value == pytest.approx(
        metrics["history"][-1]["f1/label2/val"], rel=1e-6
    )
    assert not unsaid(result, "multilabel, 3 labels", "monitor f1_macro/val (max)", "exact")
    assert sorted(p.name for p in (result.dir / "checkpoints").glob("*.pt")) == [
        "best.pt",
        "last.pt",
    ]


def _labels_csv(path, n: int = 240) -> None:
    rng = np.random.RandomState(0)
    x = rng.normal(size=(n, 3))
    a, b = (x[:, 0] > 0).astype(int), (x[:, 1] > 0.5).astype(int)
    c = (x[:, 0] + x[:, 2] > 0).tolist()
    rows = ["f0,f1,f2,a,b,c"] + [
        f"{x[i, 0]:.4f},{x[i, 1]:.4f},{x[i, 2]:.4f},{a[i]},{b[i]},{str(c[i]).lower()}"
        for i in range(n)
    ]
    path.write_text("\n".join(rows) + "\n")


def test_csv_labels_train_and_predict_a_column_per_label(tmp_path):
    _labels_csv(tmp_path / "labels.csv")
    train = ["dataset=csv", "dataset.path=labels.csv", "dataset.target=[a,b,c]", *QUICK]
    trained = run_cli(train, tmp_path, run_dir=tmp_path / "run", check=True)
    summary = metrics_of(trained.dir)
    assert list(summary["test"]) == _multilabel_names("abc")
    assert [c["name"] for c in summary["dataset"]["columns"]] == ["f0", "f1", "f2", "a", "b", "c"]
    assert not unsaid(trained, "target: multi-label, label 'c': 1 in")
    args = ["mode=predict", f"trainer.resume={trained.dir}", "predict.input=labels.csv"]
    predicted = run_cli(args, tmp_path, run_dir=tmp_path / "predict", check=True)
    with (predicted.dir / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    added = [f"prediction_{n}" for n in "abc"] + [f"probability_{n}" for n in "abc"]
    assert list(rows[0]) == ["f0", "f1", "f2", "a", "b", "c", *added]
    for row in rows:
        for label in "abc":
            assert row[f"prediction_{label}"] == str(int(float(row[f"probability_{label}"]) > 0.5))
    truth = np.array([[int(r["a"]), int(r["b"]), int(r["c"] == "true")] for r in rows])
    guess = np.array([[int(r[f"prediction_{n}"]) for n in "abc"] for r in rows])
    score = metrics_of(predicted.dir)["score"]
    assert list(score) == _multilabel_names("abc")[1:]
    assert score["exact_match"] == float(np.mean((truth == guess).all(axis=1)))
    assert score["accuracy/b"] == float(np.mean(truth[:, 1] == guess[:, 1]))
    assert not unsaid(predicted, "vs. the labels", "exact_match")


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (
            ["dataset.target=[a,f2]"],
            "dataset.target: a multi-label target is one 0/1 column per label (1, 0, true, false, "
            "yes, no), but in",
        ),
        (["dataset.target=[a,b]", "loss=cross_entropy"], "Valid losses here: auto, bce_logits"),
        (
            ["dataset.target=[a,b]", "trainer.monitor=f1/c/val"],
            "valid: accuracy/a/train, accuracy/a/val,",
        ),
        (["dataset.target=a", "dataset.task=multilabel"], "needs two or more 0/1 target columns"),
    ],
)
def test_multilabel_mistakes_are_one_paragraph(tmp_path, args, phrase):
    _labels_csv(tmp_path / "labels.csv")
    result = run_cli(["dataset=csv", "dataset.path=labels.csv", *args, *QUICK], tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    assert not unsaid(result, phrase)
    assert "Traceback" not in result.stderr
    if "f2" in args[0]:  # the values found, with their first line
        assert not unsaid(result, "column 'f2' holds 240 other values: '0.9787' (line 2), ")
        assert not unsaid(result, "'0.4439' (line 6) and 235 more.")


def _imbalanced_csv(path) -> None:
    """400 / 50 / 50 rows of three overlapping classes."""
    rng = np.random.RandomState(0)
    rows = []
    for k, (n, centre) in enumerate([(400, (0, 0)), (50, (1.5, 0)), (50, (0, 1.5))]):
        rows += [f"{u:.4f},{v:.4f},{'abc'[k]}" for u, v in rng.normal(size=(n, 2)) + centre]
    rng.shuffle(rows)
    path.write_text("u,v,label\n" + "\n".join(rows) + "\n")


def test_class_weights_raise_macro_recall_on_an_imbalanced_set(tmp_path):
    _imbalanced_csv(tmp_path / "imbalanced.csv")
    base = ["dataset=csv", "dataset.path=imbalanced.csv", "dataset.target=label"]
    base += ["loss=cross_entropy", "trainer.max_epochs=5", "logger=none"]
    runs = {}
    for weights in ("null", "balanced"):
        result = run_cli(
            [*base, f"loss.class_weights={weights}"], tmp_path, run_dir=tmp_path / weights
        )
        assert result.returncode == 0, result.stderr[-3000:]
        runs[weights] = metrics_of(result.dir)
        assert list(runs[weights]["test"]) == CLASSIFICATION
        assert set(runs[weights]["final"]["val"]) == set(CLASSIFICATION)
        assert not unsaid(result, "recall_macro", "f1_macro")
    plain, weighted = runs["null"]["test"], runs["balanced"]["test"]
    # weighting the two small classes trades accuracy (mostly class a) for their recall
    assert weighted["recall_macro"] > plain["recall_macro"] + 0.1
    assert weighted["accuracy"] < plain["accuracy"]
