"""What a person sees in the terminal: progress, the start panel, the summary, the health report."""

import json
import os
import pty
import select
import subprocess
import sys

import pytest
from helpers import cli_env, metrics_of, run_cli

pytestmark = pytest.mark.e2e


def test_not_a_tty_one_plain_line_per_epoch_and_a_summary(tmp_path):
    result = run_cli(["trainer.max_epochs=5", "logger=none"], tmp_path, check=True)
    out = result.stdout
    assert "\r" not in out and "\x1b[" not in out  # no bars, no colour codes in a log file or CI
    epoch_lines = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert [line.split("|")[0].strip() for line in epoch_lines] == [
        f"epoch {i}/5" for i in range(1, 6)
    ]
    assert all(
        "train loss" in line and "val loss" in line and "lr 3.00e-03" in line
        for line in epoch_lines
    )
    for text in (
        "data",
        "moons: 700 train / 150 val / 150 test",
        "parameters",
        "optimizer",
        "device",
        "summary",
        "best",
        "test",
        "wall time",
        "run dir",
        "health report",
    ):
        assert text in out, text
    log = (result.dir / "trainer.log").read_text()
    assert all(log.count(line) == 1 for line in epoch_lines)  # the log file has every line once


def test_the_summary_says_why_and_when_it_stopped(tmp_path):
    result = run_cli(
        ["trainer.max_epochs=100", "callbacks.early_stopping.patience=3", "logger=none"],
        tmp_path,
        check=True,
    )
    metrics = metrics_of(result.dir)
    assert metrics["status"] == "stopped_early"
    reason = metrics["stop_reason"]
    assert reason.startswith(
        f"stopped at epoch {metrics['epochs_run']}: no improvement in loss/val for 3 epochs"
    )
    assert reason.endswith(f"restored epoch {metrics['best_epoch']}")
    assert " ".join(reason.split()) in " ".join(result.stdout.replace("│", " ").split())


def test_health_report_in_terminal_metrics_and_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = run_cli(
        [
            "dataset.n_samples=120",
            "dataset.noise=0.35",
            "model.hidden_sizes=[256,256]",
            "optimizer.lr=0.01",
            "trainer.max_epochs=120",
            "~callbacks.early_stopping",
            "logger.figures=false",
        ],
        tmp_path,
        check=True,
    )
    metrics = metrics_of(result.dir)
    assert metrics["health"][0]["kind"] == "overfitting"
    assert "overfitting: val loss rose from" in " ".join(result.stdout.replace("│", " ").split())
    events = EventAccumulator(str(result.dir), size_guidance={"tensors": 0})
    events.Reload()
    text = events.Tensors("health/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "overfitting" in text


def test_a_terminal_gets_live_progress_bars(tmp_path):
    primary, secondary = pty.openpty()
    env = cli_env()
    env.update(TERM="xterm-256color", COLUMNS="120", LINES="40")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trainer",
            "trainer.max_epochs=3",
            "logger=none",
            "dataset.n_samples=20000",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=tmp_path,
        env=env,
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        close_fds=True,
    )
    os.close(secondary)
    chunks = []
    while True:
        ready, _, _ = select.select([primary], [], [], 120)
        if not ready:
            break
        try:
            data = os.read(primary, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    process.wait(timeout=120)
    os.close(primary)
    screen = b"".join(chunks).decode(errors="replace")
    assert process.returncode == 0, screen[-2000:]
    assert "━" in screen  # rich's progress bar
    assert "batches" in screen or "epoch 1" in screen
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs_run"] == 3


def test_the_commands_after_a_run_are_printed_whole_in_a_narrow_terminal(tmp_path):
    run_dir = tmp_path / ("a-run-directory-whose-name-is-longer-than-a-narrow-terminal" * 2)
    env = cli_env()
    env["COLUMNS"] = "60"
    result = subprocess.run(
        [sys.executable, "-m", "trainer", "trainer.max_epochs=2", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"resume:      python -m trainer trainer.resume={run_dir}" in lines
    assert f"tensorboard: tensorboard --logdir {run_dir}" in lines
