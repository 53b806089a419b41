"""data.split with a zero: no test split ([0.8,0.2,0]), all data for training ([1,0,0]), test but
no validation ([0.8,0,0.2]). Exact split sizes, stratification, seeds; what the config accepts and
refuses; what the Trainer, the health report, the figures, the sweep table and the runs browser
make of a run without a split."""

import hashlib
import json

import numpy as np
import pytest
import yaml
from helpers import make_trainer, moons_data
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from trainer.best import monitor_without_validation
from trainer.config import register_resolvers, validate
from trainer.data.splits import absent_splits, given_split_indices, require_split, split_indices
from trainer.errors import UserError
from trainer.paths import config_dir


def compose_config(*overrides):
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose("config", overrides=list(overrides))


# ---------------------------------------------------------------------- split_indices
@pytest.mark.parametrize(
    "n,fractions,sizes",
    [
        (50, (0.8, 0.2, 0.0), (40, 10, 0)),
        (50, (1.0, 0.0, 0.0), (50, 0, 0)),
        (50, (0.8, 0.0, 0.2), (40, 0, 10)),
        (101, (0.85, 0.15, 0.0), (86, 15, 0)),
        (5, (0.5, 0.5, 0.0), (2, 3, 0)),  # rounding leaves no sample for the absent test split
        (7, (0.5, 0.0, 0.5), (4, 0, 3)),
    ],
)
def test_a_zero_fraction_is_an_empty_split_and_the_rest_is_shared_out(n, fractions, sizes):
    for stratify in (None, np.arange(n) % 2):
        parts = split_indices(n, fractions, seed=0, stratify=stratify)
        assert tuple(len(p) for p in parts) == sizes
        assert sorted(np.concatenate(parts).tolist()) == list(range(n))  # each sample once
        assert all(p.dtype.kind == "i" for p in parts)


def test_stratified_splits_keep_the_class_proportions_with_a_zero():
    labels = np.array([0] * 30 + [1] * 20)
    train, val, test = split_indices(50, (0.8, 0.2, 0.0), seed=3, stratify=labels)
    assert np.bincount(labels[train]).tolist() == [24, 16]
    assert np.bincount(labels[val]).tolist() == [6, 4]
    assert len(test) == 0
    train, val, test = split_indices(50, (0.8, 0.0, 0.2), seed=3, stratify=labels)
    assert (np.bincount(labels[train]).tolist(), len(val)) == ([24, 16], 0)
    assert np.bincount(labels[test]).tolist() == [6, 4]


def test_splits_with_a_zero_are_seed_stable():
    first = split_indices(200, (0.8, 0.2, 0.0), seed=5)
    again = split_indices(200, (0.8, 0.2, 0.0), seed=5)
    other = split_indices(200, (0.8, 0.2, 0.0), seed=6)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], other[0])
    # all data for training: the same samples, shuffled by the seed
    everything = split_indices(200, (1.0, 0.0, 0.0), seed=5)[0]
    assert sorted(everything.tolist()) == list(range(200))
    assert everything.tolist() == split_indices(200, (1.0, 0.0, 0.0), seed=5)[0].tolist()


def test_the_default_split_is_unchanged():
    parts = split_indices(1000, (0.7, 0.15, 0.15), seed=0)
    digest = hashlib.sha256(np.concatenate(parts).astype(np.int64).tobytes()).hexdigest()
    assert [len(p) for p in parts] == [700, 150, 150]
    assert digest == "246c2d91f597c4a959c432803f3b5ee0f2f0d8f66c6d6433e8ca87131e8201ff"


def test_an_accidental_empty_split_is_still_an_error():
    with pytest.raises(UserError) as info:
        split_indices(50, (0.99, 0.01, 0.0), seed=0)
    assert info.value.key == "data.split"
    assert str(info.value).startswith(
        "data.split=[0.99, 0.01, 0.0] leaves an empty split for 50 samples (train 50, val 0, "
        "test 0); use larger fractions or more data (a fraction of 0 leaves that split out on "
        "purpose"
    )


def test_given_splits_with_a_zero_fraction_hold_nothing_out():
    given = {"train": np.arange(40), "val": np.arange(40, 50), "test": None}
    train, val, test = given_split_indices(given, (1.0, 0.0, 0.0), seed=0)
    assert sorted(train.tolist()) == list(range(40))
    assert val.tolist() == list(range(40, 50))
    assert len(test) == 0
    train, val, test = given_split_indices(
        {"train": np.arange(50), "val": None, "test": None}, (0.8, 0.2, 0.0), seed=0
    )
    assert (len(train), len(val), len(test)) == (40, 10, 0)
    with pytest.raises(UserError) as info:  # a share that rounds to nothing is still an error
        given_split_indices({"train": np.arange(20), "val": None, "test": None}, (0.98, 0.02, 0), 0)
    assert info.value.key == "dataset.val"


def test_a_data_module_without_validation_and_test_standardises_on_all_of_it():
    data = moons_data(200, split=(1.0, 0.0, 0.0))
    assert data.spec.sizes == {"train": 200, "val": 0, "test": 0}
    x_all = data.source.features
    np.testing.assert_allclose(data.feature_scaler.mean, x_all.mean(0), rtol=1e-5)
    assert data.arrays["val"][0].shape == (0, 2) and data.arrays["test"][1].shape == (0,)


def test_regression_and_multi_label_targets_keep_their_width_in_an_empty_split():
    from trainer.data import ArrayData, DataModule
    from trainer.tasks import Head

    x = np.random.RandomState(0).randn(40, 3)
    regression = DataModule(
        ArrayData(x, x[:, :2].sum(1), "regression", "r", ["a", "b", "c"]), split=(0.8, 0.2, 0.0)
    )
    assert regression.arrays["test"][1].shape == (0, 1)
    labels = (x[:, :2] > 0).astype(int)
    multilabel = DataModule(
        ArrayData(x, labels, "multilabel", "m", ["a", "b", "c"]), split=(1.0, 0.0, 0.0)
    )
    assert multilabel.arrays["val"][1].shape == (0, 2)
    head = Head("multilabel", "labels", 2, ("p", "q"))
    assert tuple(head.targets(multilabel.arrays["val"][1]).shape) == (0, 2)
    assert tuple(Head("regression", "values", 1).targets(np.zeros(3)).shape) == (3, 1)


# ---------------------------------------------------------------------- the config
@pytest.mark.parametrize(
    "overrides",
    [
        ["data.split=[0.8,0.2,0]"],  # early stopping on validation: fine
        ["data.split=[0.85,0.15,0]"],
        ["data.split=[1,0,0]", "~callbacks.early_stopping"],
        ["data.split=[1,0,0]", "callbacks=none"],
        ["data.split=[1,0,0]", "callbacks=model_checkpoint"],  # the set without early stopping
        ["data.split=[0.8,0,0.2]", "~callbacks.early_stopping"],
        ["data.split=[1,0,0]", "~callbacks.early_stopping", "trainer.monitor=accuracy/train"],
        ["data.split=[1,0,0]", "mode=test"],  # test/predict use the run's own config
    ],
)
def test_splits_with_a_zero_that_need_nothing_missing_are_accepted(overrides):
    assert validate(compose_config(*overrides))["data"].split[2] in (0.0, 0.15, 0.2)


@pytest.mark.parametrize(
    "overrides,key,message",
    [
        (
            ["data.split=[1,0,0]"],
            "data.split",
            "data.split=[1,0,0] leaves no validation split, and callbacks.early_stopping stops "
            "on a validation metric (trainer.monitor=loss/val) that such a run cannot measure. "
            "Either turn early stopping off (~callbacks.early_stopping, or callbacks=none): the "
            "run trains all trainer.max_epochs on 100% of the data; or give validation a share, "
            "e.g. data.split=[0.85,0.15,0] (no test split) or data.split=[0.7,0.15,0.15].",
        ),
        (
            ["data.split=[1,0,0]", "mode=lr_find"],  # its "use it" command must train
            "data.split",
            "data.split=[1,0,0] leaves no validation split, and callbacks.early_stopping",
        ),
        (
            ["data.split=[0.8,0,0.2]", "callbacks=early_stopping"],
            "data.split",
            "data.split=[0.8,0,0.2] leaves no validation split, and callbacks.early_stopping",
        ),
        (
            ["data.split=[1,0,0]", "~callbacks.early_stopping", "trainer.monitor=accuracy/val"],
            "trainer.monitor",
            "trainer.monitor='accuracy/val' is measured on the validation split, and "
            "data.split=[1,0,0] leaves none. Monitor it on the training split "
            "(trainer.monitor=accuracy/train), or give validation a share, e.g. "
            "data.split=[0.85,0.15,0].",
        ),
        (
            ["data.split=[0.7,0.3]"],
            "data.split",
            "data.split=[0.7, 0.3] must be three fractions (train, validation, test), each >= 0, "
            "train > 0, that sum to 1: [0.7,0.15,0.15] (the default), [0.8,0.2,0] (no test "
            "split) or [1,0,0] (all data for training, with early stopping off); these are 2 "
            "fraction(s).",
        ),
        (["data.split=[0,0.5,0.5]"], "data.split", "; the train fraction is 0."),
        (["data.split=[0.9,-0.1,0.2]"], "data.split", "; -0.1 is not a fraction >= 0."),
        (["data.split=[0.8,0.3,0]"], "data.split", "; these sum to 1.1."),
    ],
)
def test_splits_that_cannot_work_are_refused_naming_the_key(overrides, key, message):
    with pytest.raises(UserError) as info:
        validate(compose_config(*overrides))
    assert info.value.key == key
    assert message in str(info.value)


def test_the_monitor_without_validation():
    assert monitor_without_validation("loss/val") == "loss/train"  # the default follows
    assert monitor_without_validation("f1_macro/train") == "f1_macro/train"
    with pytest.raises(UserError) as info:
        monitor_without_validation("r2/val", "[0.8,0,0.2]")
    assert info.value.key == "trainer.monitor"
    assert "data.split=[0.8,0,0.2] leaves none" in str(info.value)


def test_what_a_run_without_a_split_says():
    assert absent_splits({"train": 8, "val": 1, "test": 1}) == {}
    assert absent_splits({"train": 8, "val": 2, "test": 0}) == {
        "test": "no test split (data.split test fraction 0): the end reports validation only"
    }
    assert absent_splits({"train": 10, "val": 0, "test": 0}) == {
        "val": "all data for training (data.split validation and test fractions 0): nothing "
        "measures how well the model generalises; the run monitors loss/train (best.pt: its "
        "best epoch, last.pt: the final weights)",
        "test": "no test split (data.split test fraction 0)",
    }
    with pytest.raises(UserError) as info:
        require_split({"test": 0}, "test", "mode=test on run/checkpoints/best.pt", [0.8, 0.2, 0])
    assert info.value.key == "data.split"
    assert str(info.value).startswith(
        "mode=test on run/checkpoints/best.pt needs a test split, and this run has none: "
        "data.split=[0.8,0.2,0] gave the test fraction 0, so there is nothing to evaluate"
    )


# ---------------------------------------------------------------------- the Trainer
def test_the_trainer_trains_on_all_data_and_monitors_the_training_loss(tmp_path):
    trainer, data = make_trainer(tmp_path, data=moons_data(200, split=(1, 0, 0)), max_epochs=2)
    trainer.fit(data)
    record = trainer.record
    assert record.best.monitor == "loss/train" and record.best.epoch in (1, 2)
    assert [k for k in record.history[-1] if k.endswith("/val")] == []
    assert trainer.train_batches.samples() == 200
    with pytest.raises(UserError) as info:
        trainer.test(data)
    assert info.value.key == "data.split"
    assert str(info.value).startswith("Trainer.test needs a test split, and this run has none")
    summary = trainer.finish()
    assert (summary["monitor"], summary["test"], summary["final"]["val"]) == (
        "loss/train",
        None,
        {},
    )
    assert sorted(summary["absent_splits"]) == ["test", "val"]
    assert summary["dataset"]["sizes"] == {"train": 200, "val": 0, "test": 0}
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["absent_splits"] == summary["absent_splits"]


def test_the_trainer_refuses_a_validation_monitor_without_validation(tmp_path):
    data = moons_data(200, split=(1, 0, 0))
    trainer, data = make_trainer(tmp_path, data=data, max_epochs=1, monitor="accuracy/val")
    with pytest.raises(UserError) as info:
        trainer.fit(data)
    assert info.value.key == "trainer.monitor"


def test_the_default_run_says_nothing_about_splits(tmp_path):
    trainer, data = make_trainer(tmp_path, data=moons_data(200), max_epochs=1)
    trainer.fit(data)
    assert trainer.record.best.monitor == "loss/val"
    assert "absent_splits" not in trainer.finish()


# ---------------------------------------------------------------------- what reads a run
def _train_only_summary(losses):
    history = [
        {"epoch": i + 1, "loss/train": v, "accuracy/train": 0.9, "lr": 0.01}
        for i, v in enumerate(losses)
    ]
    return {
        "status": "completed",
        "monitor": "loss/train",
        "best_epoch": 1 + losses.index(min(losses)),
        "history": history,
        "max_epochs": len(losses),
        "dataset": {
            "sizes": {"train": 100, "val": 0, "test": 0},
            "baseline": {"loss": 0.6931, "accuracy": 0.5},
        },
    }


def test_the_health_report_judges_the_training_curve_and_says_what_it_cannot_see():
    from trainer.health import diagnose, verdict

    findings = diagnose(_train_only_summary([0.6, 0.4, 0.3, 0.25, 0.2, 0.18]), "binary", 0.01)
    assert [(f["kind"], f["severity"]) for f in findings] == [("no_validation", "info")]
    assert findings[0]["message"] == (
        "no validation split (data.split validation fraction 0): overfitting cannot be seen, nor "
        "a plateau or a run stopped too early; the report judged the training curve only "
        "(learning rate, gradients); the training loss reached 0.18 against the chance level "
        "0.6931."
    )
    assert verdict(findings) == "healthy"
    bouncing = [0.6, 0.3, 0.5, 0.25, 0.55, 0.3, 0.6, 0.35]
    kinds = [f["kind"] for f in diagnose(_train_only_summary(bouncing), "binary", 0.01)]
    assert kinds == ["lr_too_high", "no_validation"]


def test_the_curves_figure_of_a_run_without_validation(tmp_path):
    from trainer.curve_figures import main_metric, training_curves

    summary = _train_only_summary([0.6, 0.4, 0.3])
    assert main_metric(summary["history"], "loss/train") == "accuracy"
    fig = training_curves(summary["history"], summary)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels == ["train", "best epoch 3", "_child2"]  # the ring on the monitored curve


def test_a_sweep_without_validation_says_what_its_ranking_means(tmp_path):
    from trainer.sweeps import summarize

    for num, (lr, best) in enumerate([("0.1", 0.30), ("0.01", 0.20)]):
        job = tmp_path / f"{num}_optimizer.lr={lr}"
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"optimizer.lr={lr}"]))
        (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"loss": {}, "data": {}}))
        metrics = _train_only_summary([0.5, best]) | {
            "best_val_metric": best,
            "mode": "min",
            "test": None,
            "epochs_run": 2,
            "absent_splits": absent_splits({"train": 100, "val": 0, "test": 0}),
        }
        (job / "metrics.json").write_text(json.dumps(metrics))
    summary = summarize(tmp_path, show=False)
    assert [(r["job"], r["rank"]) for r in summary["runs"]] == [
        ("1_optimizer.lr=0.01", 1),
        ("0_optimizer.lr=0.1", 2),
    ]
    assert summary["ranking_note"] == (
        "ranked by loss/train: the jobs have no validation split (data.split validation "
        "fraction 0), so this ranks how well each fits its training data, not how well it "
        "generalises."
    )
    assert not (tmp_path / "val_curves.png").exists()  # no validation curve to overlay


def test_the_runs_browser_says_no_test_split(tmp_path):
    from trainer import run_files, runs

    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["data.split=[0.8,0.2,0]"]))
    metrics = {
        "status": "completed",
        "monitor": "loss/val",
        "mode": "min",
        "best_val_metric": 0.25,
        "best_epoch": 2,
        "epochs_run": 2,
        "max_epochs": 2,
        "test": None,
        "tested_on": None,
        "absent_splits": absent_splits({"train": 80, "val": 20, "test": 0}),
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    run = run_files.read_run(run_dir)
    assert (run["test"], run["absent_splits"]) == ({}, ["test"])
    assert runs._cells(run)[2:4] == ["loss/val 0.25 (epoch 2)", "no test split"]
