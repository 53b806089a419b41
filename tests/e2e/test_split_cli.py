"""data.split with a zero through the real CLI: no test split ([0.8,0.2,0]) in a sweep, read back
by the sweep table and the runs browser, refused by mode=test; all data for training ([1,0,0])
with early stopping off, and refused with it on."""

import hashlib
import json
import subprocess
import sys

import pytest
import torch
from helpers import cli_env, metrics_of, run_cli, unsaid
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

pytestmark = pytest.mark.e2e

NO_TEST = "no test split (data.split test fraction 0): the end reports validation only"
ALL_DATA = (
    "all data for training (data.split validation and test fractions 0): nothing measures how "
    "well the model generalises; the run monitors loss/train (best.pt: its best epoch, last.pt: "
    "the final weights)"
)


def _tree(folder):
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_a_sweep_without_a_test_split_reports_validation_only(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["data.split=[0.8,0.2,0]", "trainer.max_epochs=2", "logger=none"]
    result = run_cli(
        [*args, "optimizer.lr=0.01,0.003"], tmp_path, run_dir=sweep, multirun=True, check=True
    )
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0_optimizer.lr=0.01", "1_optimizer.lr=0.003"]
    for job in jobs:
        metrics = metrics_of(job)
        assert (metrics["test"], metrics["tested_on"]) == (None, None)
        assert metrics["absent_splits"] == {"test": NO_TEST}
        assert metrics["dataset"]["sizes"] == {"train": 800, "val": 200, "test": 0}
        assert (metrics["monitor"], metrics["epochs_run"]) == ("loss/val", 2)
        assert sorted(metrics["final"]["val"]) == [
            "accuracy",
            "f1_macro",
            "loss",
            "precision_macro",
            "recall_macro",
        ]
    assert unsaid(result, f"split {NO_TEST}", f"test {NO_TEST}", "sweep: 2 runs ranked") == []
    summary = json.loads((sweep / "summary.json").read_text())
    assert (summary["failed"], summary["ranked_by"]) == (0, "loss/val")
    assert [k for row in summary["runs"] for k in row if k.startswith("test_")] == []
    assert "test:" not in result.stdout  # the table shows no test line for the chosen run

    browsed = subprocess.run(
        [sys.executable, "-m", "trainer.runs", str(sweep), "--json"],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert browsed.returncode == 0, browsed.stderr
    runs = json.loads(browsed.stdout)["runs"]
    assert [(r["status"], r["test"], r["absent_splits"]) for r in runs] == 2 * [
        ("completed", {}, ["test"])
    ]

    before = _tree(jobs[0])
    refused = run_cli(["mode=test", f"trainer.resume='{jobs[0]}'"], tmp_path)  # (= in the name)
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "Traceback" not in refused.stdout + refused.stderr
    phrase = "needs a test split, and this run has none: data.split=[0.8,0.2,0] gave the test"
    assert unsaid(refused, phrase) == []
    assert _tree(jobs[0]) == before and not refused.dir.exists()


def test_all_data_for_training_with_early_stopping_off(tmp_path):
    args = ["data.split=[1,0,0]", "~callbacks.early_stopping", "trainer.max_epochs=2"]
    result = run_cli(args, tmp_path, check=True)
    run_dir = result.dir
    metrics = metrics_of(run_dir)
    assert metrics["dataset"]["sizes"] == {"train": 1000, "val": 0, "test": 0}
    assert metrics["global_step"] == 2 * 32  # every epoch: 1000 samples in batches of 32
    assert (metrics["monitor"], metrics["mode"], metrics["test"]) == ("loss/train", "min", None)
    assert metrics["best_val_metric"] == min(h["loss/train"] for h in metrics["history"])
    assert metrics["absent_splits"] == {
        "val": ALL_DATA,
        "test": "no test split (data.split test fraction 0)",
    }
    assert [k for h in metrics["history"] for k in h if k.endswith("/val")] == []
    assert [f["kind"] for f in metrics["health"]] == ["too_short"]
    assert unsaid(result, "moons: 1000 train / 0 val / 0 test", f"split {ALL_DATA}") == []
    assert unsaid(result, "monitor loss/train (min)", "best loss/train") == []

    last = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    best = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)
    assert (last["epoch"], best["epoch"]) == (2, metrics["best_epoch"])
    assert last["data"]["sizes"] == {"train": 1000, "val": 0, "test": 0}
    assert sorted(p.name for p in (run_dir / "figures").iterdir()) == [
        "confusion_matrix_train.png",
        "curves.png",
        "decision_boundary.png",
    ]  # (no lr_schedule.png: the rate never changed)
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert [t for t in scalars if t.endswith("/val") or t.endswith("/test")] == []
    assert "best/loss/train" in scalars and len(events.Scalars("loss/train")) == 2


def test_all_data_for_training_with_early_stopping_on_is_refused(tmp_path):
    before = _tree(tmp_path)
    result = run_cli(["data.split=[1,0,0]", "trainer.max_epochs=2"], tmp_path)
    assert result.returncode == 2
    text = result.stdout + result.stderr
    assert "Traceback" not in text
    assert (
        unsaid(
            result,
            "data.split=[1,0,0] leaves no validation split, and callbacks.early_stopping stops",
            "Either turn early stopping off (~callbacks.early_stopping, or callbacks=none)",
            "or give validation a share, e.g. data.split=[0.85,0.15,0]",
        )
        == []
    )
    assert _tree(tmp_path) == before and not result.dir.exists()
