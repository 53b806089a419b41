"""Signals against the real CLI: SIGTERM saves and exits non-zero, kill -9 loses at most the epoch in
progress, and resuming continues the same run directory and TensorBoard curves without duplicates."""

import signal
import subprocess
import sys
import time

import pytest
import torch
from helpers import cli_env, metrics_of, run_cli

pytestmark = pytest.mark.e2e

LONG = [
    "trainer.max_epochs=100000",
    "callbacks.early_stopping.patience=100000",
    "dataset.n_samples=3000",
    "logger.figures=false",
    "callbacks.model_checkpoint.every_n_seconds=0",  # last.pt after every epoch (default: 5 s budget)
]


def _start(tmp_path, run_dir):
    return subprocess.Popen(
        [sys.executable, "-m", "trainer", *LONG, f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_epoch(process, epoch, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = process.stdout.readline()
        if line.startswith(f"epoch {epoch:>6}/"):
            return line
        if not line and process.poll() is not None:
            raise AssertionError(f"the run ended early: {process.stderr.read()[-2000:]}")
    raise AssertionError("no progress line in time")


def _scalar_steps(run_dir, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return [e.step for e in events.Scalars(tag)]


def test_sigterm_saves_last_pt_marks_interrupted_and_resume_continues(tmp_path):
    run_dir = tmp_path / "run"
    process = _start(tmp_path, run_dir)
    _wait_for_epoch(process, 3)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    assert "interrupted by SIGTERM" in stderr and f"trainer.resume={run_dir}" in stderr
    metrics = metrics_of(run_dir)
    assert metrics["status"] == "interrupted"
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    stopped_at = state["epoch"]
    assert stopped_at >= 3 and state["global_step"] == metrics["global_step"]

    # Resume in the same directory, with the original settings, until a few epochs later.
    result = run_cli(
        [f"trainer.resume={run_dir}", f"trainer.max_epochs={stopped_at + 2}"],
        tmp_path,
        run_dir=None,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    resumed = metrics_of(run_dir)
    assert resumed["status"] == "completed" and resumed["epochs_run"] == stopped_at + 2
    assert resumed["resumed_from"].endswith("last.pt")
    assert [h["epoch"] for h in resumed["history"]] == list(range(1, stopped_at + 3))
    steps = _scalar_steps(run_dir, "loss/train")
    assert steps == list(range(1, stopped_at + 3))  # one point per epoch: no duplicates, no gaps
    assert len(list((run_dir / ".hydra").glob("resumed-*"))) == 1  # the original .hydra/ is kept
    assert (run_dir / "trainer.log").read_text().count("resumed from") == 1


def test_kill_9_loses_at_most_the_epoch_in_progress(tmp_path):
    run_dir = tmp_path / "run"
    process = _start(tmp_path, run_dir)
    _wait_for_epoch(process, 5)
    last = run_dir / "checkpoints" / "last.pt"

    def saved_epoch():
        return torch.load(last, weights_only=True)["epoch"] if last.exists() else 0

    deadline = time.time() + 60
    while saved_epoch() < 4 and time.time() < deadline:
        process.stdout.readline()  # the run goes on: kill it wherever it is once epoch 4 is saved
    process.kill()  # at a random point of the epochs that follow: between any two writes
    process.wait(timeout=60)
    state = torch.load(last, weights_only=True)
    assert state["epoch"] >= 4 and state["epoch_complete"]
    assert (
        metrics_of(run_dir)["status"] == "running"
    )  # whole, if up to 2 s old (rewritten at most every 2 s)
    result = run_cli(
        [f"trainer.resume={run_dir}", f"trainer.max_epochs={state['epoch'] + 1}"],
        tmp_path,
        run_dir=None,
    )
    assert result.returncode == 0, result.stderr
    assert _scalar_steps(run_dir, "loss/val") == list(range(1, state["epoch"] + 2))
    assert [h["epoch"] for h in metrics_of(run_dir)["history"]] == list(
        range(1, state["epoch"] + 2)
    )
