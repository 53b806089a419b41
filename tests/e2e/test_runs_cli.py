"""`python -m trainer.runs` and `python -m trainer.compare` on runs the real CLI made: a completed
run, a failed one (NaN loss), a sweep with a failed job, and a run seen while it trains and again
after SIGTERM interrupted it. Output is piped, as in a script: no colour codes, nothing folded."""

import json
import re
import signal
import subprocess
import sys
from datetime import datetime

import pytest
from helpers import cli_env, metrics_of, run_cli, run_module

pytestmark = pytest.mark.e2e

QUICK = ["trainer.max_epochs=2", "logger=none"]
LONG = [
    "trainer.max_epochs=100000",
    "callbacks.early_stopping.patience=100000",
    "dataset.n_samples=3000",
    "logger=none",
]


def tool(module, *args, cwd):
    return run_module(f"trainer.{module}", args, cwd, timeout=120)


def _wait_for_epoch(process, epoch, timeout=180):
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        line = process.stdout.readline()
        if line.startswith(f"epoch {epoch:>6}/"):
            return
        if not line and process.poll() is not None:
            raise AssertionError(f"the run ended early: {process.stderr.read()[-2000:]}")
    raise AssertionError("no progress line in time")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """outputs/ with runs a (completed), b (failed), sweeps/s (2 jobs, one failed) and c
    (interrupted), made in that order; `running` is the browser's JSON while c trained."""
    home = tmp_path_factory.mktemp("project")
    out = home / "outputs"
    done = run_cli(["dataset=moons", *QUICK], home, run_dir=out / "runs" / "a")
    assert done.returncode == 0, done.stderr
    nan = run_cli([*QUICK, "optimizer.lr=1e6"], home, run_dir=out / "runs" / "b")
    assert nan.returncode == 2, nan.stderr
    sweep = run_cli(
        [*QUICK, "optimizer.lr=0.001,abc"], home, run_dir=out / "sweeps" / "s", multirun=True
    )
    assert sweep.returncode == 3, sweep.stderr
    process = subprocess.Popen(
        [sys.executable, "-m", "trainer", *LONG, f"hydra.run.dir={out / 'runs' / 'c'}"],
        cwd=home,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_epoch(process, 2)
        running = tool("runs", "--json", "--status", "running", cwd=home)
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=120)
    assert process.returncode == 143
    return home, json.loads(running.stdout)


def cells(line):
    return re.split(r"\s{2,}", line.strip())


def verdict(metrics):
    """The health verdict as the task defines it: the worst warning or error's kind, or healthy."""
    worst = [
        f["kind"] for s in ("error", "warning") for f in metrics["health"] if f["severity"] == s
    ]
    return metrics.get("health_verdict") or (worst[0] if worst else "healthy")


def when(run_dir):
    """When a run started, as the task defines it: when Hydra wrote its config, or metrics.json's
    started_at if earlier; local time, to the second."""
    started = [int((run_dir / ".hydra" / "config.yaml").stat().st_mtime)]
    if (run_dir / "metrics.json").is_file() and "started_at" in metrics_of(run_dir):
        started.append(datetime.fromisoformat(metrics_of(run_dir)["started_at"]).timestamp())
    return datetime.fromtimestamp(min(started)).strftime("%Y-%m-%d %H:%M:%S")


def test_a_run_in_progress_is_running(project):
    home, running = project
    assert [(r["run_dir"], r["status"]) for r in running["runs"]] == [
        (str(home / "outputs" / "runs" / "c"), "running")
    ]
    run = running["runs"][0]
    assert run["overrides"] == LONG
    assert run["max_epochs"] == 100000
    assert run["health"] is None  # a health report comes at the end


def test_the_table_shows_every_run_newest_first(project):
    home, _ = project
    result = tool("runs", cwd=home)
    assert result.returncode == 0, result.stderr
    assert "\x1b[" not in result.stdout  # piped: no colour codes
    lines = result.stdout.splitlines()
    assert lines[0] == "5 runs under outputs (1 sweep)"
    out = home / "outputs"
    a, b, c = (metrics_of(out / "runs" / name) for name in "abc")
    job_dir = out / "sweeps" / "s" / "0_optimizer.lr=0.001"
    job = metrics_of(job_dir)
    assert c["status"] == "interrupted" and b["status"] == "failed"
    assert [cells(line) for line in lines[4:10]] == [
        [
            when(out / "runs" / "c"),
            "outputs/runs/c",
            " ".join(LONG),
            "interrupted",
            f"{c['epochs_run']}/100000",
            f"loss/val {c['best_val_metric']:.4g} (epoch {c['best_epoch']})",
            verdict(c),
        ],
        [when(job_dir), "outputs/sweeps/s/", " ".join(QUICK), "sweep", "2 jobs"],
        [
            when(job_dir),
            "├ 0_optimizer.lr=0.001",
            "optimizer.lr=0.001",
            "completed",
            "2/2",
            f"loss/val {job['best_val_metric']:.4g} (epoch 2)",
            f"accuracy {job['test']['accuracy']:.4g}",
            "healthy",
        ],
        [
            when(out / "sweeps" / "s" / "1_optimizer.lr=abc"),
            "└ 1_optimizer.lr=abc",
            "optimizer.lr=abc",
            "failed",
        ],
        [
            when(out / "runs" / "b"),
            "outputs/runs/b",
            f"{' '.join(QUICK)} optimizer.lr=1e6",
            "failed",
            "0/2",
            "divergence",
        ],
        [
            when(out / "runs" / "a"),
            "outputs/runs/a",
            f"dataset=moons {' '.join(QUICK)}",
            "completed",
            "2/2",
            f"loss/val {a['best_val_metric']:.4g} (epoch 2)",
            f"accuracy {a['test']['accuracy']:.4g}",
            "healthy",
        ],
    ]
    assert lines[11:] == [
        "interrupted: outputs/runs/c: continue it with "
        "`python -m trainer trainer.resume=outputs/runs/c`",
        "failed: outputs/sweeps/s/1_optimizer.lr=abc: optimizer.lr='abc' is not a number.",
        f"failed: outputs/runs/b: {b['error']}",
        "compare two runs: python -m trainer.compare <run dir> <run dir>",
    ]


def test_json_and_the_status_filter(project):
    home, _ = project
    result = tool("runs", "outputs", "--json", "--status", "failed", cwd=home)
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    out = home / "outputs"
    assert [(r["run_dir"], r["sweep_dir"], r["error"]) for r in listed["runs"]] == [
        (
            str(out / "sweeps" / "s" / "1_optimizer.lr=abc"),
            str(out / "sweeps" / "s"),
            "optimizer.lr='abc' is not a number.",
        ),
        (str(out / "runs" / "b"), None, metrics_of(out / "runs" / "b")["error"]),
    ]
    finished = tool("runs", "outputs/runs", "--json", "--status", "finished", cwd=home)
    assert [r["run_dir"] for r in json.loads(finished.stdout)["runs"]] == [str(out / "runs" / "a")]


def test_compare_two_real_runs(project):
    home, _ = project
    out = home / "outputs"
    job = "outputs/sweeps/s/0_optimizer.lr=0.001"
    result = tool("compare", "outputs/runs/a", job, "--json", cwd=home)
    assert result.returncode == 0, result.stderr
    compared = json.loads(result.stdout)
    assert compared["config"] == [{"key": "optimizer.lr", "a": 0.003, "b": 0.001, "only_in": None}]
    a, b = metrics_of(out / "runs" / "a"), metrics_of(home / job)
    rows = {row["name"]: row for row in compared["metrics"]}
    assert rows["test accuracy"]["a"] == a["test"]["accuracy"]
    assert rows["test accuracy"]["b"] == b["test"]["accuracy"]
    assert rows["test accuracy"]["delta"] == b["test"]["accuracy"] - a["test"]["accuracy"]
    assert rows["best loss/val"]["better"] == (
        "a" if a["best_val_metric"] < b["best_val_metric"] else "b"
    )
    table = tool("compare", "outputs/runs/a", job, cwd=home)
    lines = table.stdout.splitlines()
    assert [cells(line) for line in lines[:2]] == [
        ["A", "outputs/runs/a", "completed", f"dataset=moons {' '.join(QUICK)}"],
        ["B", job, "completed", f"{' '.join(QUICK)} optimizer.lr=0.001"],
    ]
    config_at = lines.index(f"config: 1 of {compared['config_keys']} keys differ")
    assert cells(lines[config_at + 4]) == ["optimizer.lr", "0.003", "0.001"]

    failed = tool("compare", "outputs/runs/a", "outputs/runs/b", "--json", cwd=home)
    statuses = {r["name"]: (r["a"], r["b"]) for r in json.loads(failed.stdout)["metrics"]}
    assert statuses["status"] == ("completed", "failed")
    assert statuses["health"] == ("healthy", "divergence")
    assert statuses["best epoch"] == (2, None)


def test_a_missing_or_empty_directory(tmp_path):
    (tmp_path / "empty").mkdir()
    result = tool("runs", "empty", cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "no runs under empty\n", "")
    missing = tool("runs", cwd=tmp_path)
    assert missing.returncode == 2 and missing.stdout == ""
    assert "DIR: 'outputs' does not exist (looked in" in missing.stderr
    assert "Traceback" not in missing.stderr
    wrong = tool("compare", "empty", "outputs", cwd=tmp_path)
    assert wrong.returncode == 2 and wrong.stdout == ""
    assert "A: 'empty' is not a run directory (it has no .hydra/ folder)" in wrong.stderr
