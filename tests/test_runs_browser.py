"""The runs browser and the run comparison on run directories written by hand: every status a
run can be in (running, killed, missing, unreadable included), old runs missing newer keys,
sweeps, evaluations that are not runs, and the mistakes a user can make on the command line."""

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from trainer import compare, run_files, runs
from trainer.errors import UserError


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def make_run(folder, metrics=None, overrides=(), config=None, lock_pid=None, checkpoints=()):
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(list(overrides)))
    config = config or {"optimizer": {"_target_": "torch.optim.AdamW", "lr": 0.003}}
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics))
    if lock_pid is not None:
        lock = {"pid": lock_pid, "host": socket.gethostname(), "since": 0}
        (folder / ".lock").write_text(json.dumps(lock))
    if checkpoints:
        (folder / "checkpoints").mkdir()
        for name in checkpoints:
            (folder / "checkpoints" / name).write_bytes(b"")
    return folder


def finished(status="completed", started="2026-11-23T14:03:07+00:00", best=0.25, **extra):
    metrics = {
        "status": status,
        "monitor": "loss/val",
        "mode": "min",
        "best_val_metric": best,
        "best_epoch": 3,
        "best": {"loss/val": best, "accuracy/val": 0.9},
        "test": {"loss": 0.3, "accuracy": 0.875},
        "epochs_run": 4,
        "max_epochs": 4,
        "wall_time_s": 2.5,
        "started_at": started,
        "health": [{"kind": "too_short", "severity": "info", "message": "m", "evidence": {}}],
    }
    metrics.update(extra)
    return metrics


# ---------------------------------------------------------------------- reading one run
def test_health_verdict_is_the_runs_own_else_the_worst_finding():
    info = {"kind": "too_short", "severity": "info"}
    warning = {"kind": "plateau", "severity": "warning"}
    error = {"kind": "divergence", "severity": "error"}
    assert run_files.health_verdict({"health_verdict": "overfitting", "health": [error]}) == (
        "overfitting"
    )
    assert run_files.health_verdict({"health": [info]}) == "healthy"
    assert run_files.health_verdict({"health": []}) == "healthy"
    assert run_files.health_verdict({"health": [info, warning]}) == "plateau"
    assert run_files.health_verdict({"health": [warning, error]}) == "divergence"
    assert run_files.health_verdict({}) is None


@pytest.mark.parametrize(
    ("metrics", "lock", "status", "note"),
    [
        (None, "mine", "running", None),
        ({"status": "running", "epochs_run": 2}, "mine", "running", None),
        ({"status": "running", "epochs_run": 2}, "dead", "killed", "its process is gone"),
        ({"status": "running", "epochs_run": 2}, None, "killed", "its process is gone"),
        (None, "dead", "killed", "its process is gone"),
        (None, None, "missing", "no metrics.json"),
        ({"status": "interrupted"}, "dead", "interrupted", None),
        ({"status": "completed"}, None, "completed", None),
        ("{not json", None, "unreadable", "metrics.json is unreadable"),
    ],
)
def test_status_comes_from_metrics_json_and_the_lock(tmp_path, metrics, lock, status, note):
    pid = {"mine": os.getpid(), "dead": dead_pid(), None: None}[lock]
    folder = make_run(tmp_path / "run", None if isinstance(metrics, str) else metrics, lock_pid=pid)
    if isinstance(metrics, str):
        (folder / "metrics.json").write_text(metrics)
    run = run_files.read_run(folder)
    assert run["status"] == status
    assert (run["note"] or "").startswith(note or "")
    assert (run["note"] is None) == (note is None)


def test_an_old_run_without_newer_keys_reads_as_blanks(tmp_path):
    folder = make_run(
        tmp_path / "old",
        {"status": "failed", "error": "optimizer.lr='abc' is not a number.\nsecond line"},
        overrides=["optimizer.lr=abc", "hydra.job.chdir=false"],
    )
    run = run_files.read_run(folder)
    assert run == {
        "run_dir": str(folder),
        "started_at": run["started_at"],  # the config file's time: checked below
        "status": "failed",
        "mode": "train",
        "overrides": ["optimizer.lr=abc"],
        "monitor": None,
        "monitor_mode": None,
        "best": None,
        "best_epoch": None,
        "best_metrics": {},
        "test": {},
        "absent_splits": [],
        "epochs": None,
        "max_epochs": None,
        "wall_time_s": None,
        "health": None,
        "stop_reason": None,
        "error": "optimizer.lr='abc' is not a number.",
        "note": None,
        "checkpoints": [],
        "resumed_from": None,
    }
    mtime = (folder / ".hydra" / "config.yaml").stat().st_mtime
    assert run["started_at"] == time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(mtime))


def test_evaluations_and_predictions_are_not_runs(tmp_path):
    run = make_run(tmp_path / "run", finished())
    make_run(run / "evaluations" / "t", {"mode": "test", "status": "completed", "test": {}})
    make_run(run / "predictions" / "p", {"mode": "predict", "status": "completed"})
    assert run_files.read_run(run / "evaluations" / "t") is None
    assert run_files.find(tmp_path) == ([run], {})


def test_find_groups_sweep_jobs_under_their_sweep(tmp_path):
    a = make_run(tmp_path / "runs" / "2026-11-23" / "a", finished())
    b = make_run(tmp_path / "runs" / "2026-11-24" / "b", finished())
    sweep = tmp_path / "sweeps" / "2026-11-25" / "s"
    jobs = [make_run(sweep / f"{i}_optimizer.lr={lr}", finished()) for i, lr in enumerate("12")]
    (sweep / "multirun.yaml").write_text("{}")
    (tmp_path / "empty" / "nested").mkdir(parents=True)
    assert run_files.find(tmp_path) == ([a, b], {sweep: jobs})
    assert run_files.find(sweep) == ([], {sweep: jobs})
    assert run_files.find(a) == ([a], {})


# ---------------------------------------------------------------------- python -m trainer.runs
@pytest.fixture
def tree(tmp_path):
    """A completed run, a failed one, an interrupted one with last.pt, and a 2-job sweep."""
    root = tmp_path / "outputs"
    make_run(
        root / "runs" / "a",
        finished(started="2026-11-23T10:00:00+00:00"),
        overrides=["dataset=moons"],
    )
    make_run(
        root / "runs" / "b",
        {
            "status": "failed",
            "error": "the training loss became non-finite",
            "epochs_run": 0,
            "max_epochs": 3,
            "started_at": "2026-11-23T11:00:00+00:00",
            "health": [{"kind": "divergence", "severity": "error"}],
        },
        overrides=["optimizer.lr=1e6"],
    )
    make_run(
        root / "runs" / "c",
        finished("interrupted", started="2026-11-23T12:00:00+00:00", health_verdict="ok"),
        checkpoints=["last.pt", "best.pt"],
    )
    sweep = root / "sweeps" / "s"
    (sweep).mkdir(parents=True)
    (sweep / "multirun.yaml").write_text("{}")
    for i, lr in enumerate(("0.01", "0.1")):
        make_run(
            sweep / f"{i}_optimizer.lr={lr}",
            finished(started=f"2026-11-23T13:00:0{i}+00:00", best=0.2 + i / 10),
            overrides=["dataset=moons", f"optimizer.lr={lr}", "trainer.seed=1"],
        )
    return root


def cells(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def test_the_table_lists_runs_newest_first_with_sweeps_grouped(tree, capsys, monkeypatch):
    monkeypatch.chdir(tree.parent)
    assert runs.main(["outputs"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "5 runs under outputs (1 sweep)"
    assert cells(lines[2]) == [
        "when",
        "run",
        "overrides",
        "status",
        "epochs",
        "best",
        "test",
        "health",
    ]
    body = [cells(line) for line in lines[4:10]]
    assert body == [
        [
            "2026-11-23 13:00:00",
            "outputs/sweeps/s/",
            "dataset=moons trainer.seed=1",
            "sweep",
            "2 jobs",
        ],
        [
            "2026-11-23 13:00:00",
            "├ 0_optimizer.lr=0.01",
            "optimizer.lr=0.01",
            "completed",
            "4/4",
            "loss/val 0.2 (epoch 3)",
            "accuracy 0.875",
            "healthy",
        ],
        [
            "2026-11-23 13:00:01",
            "└ 1_optimizer.lr=0.1",
            "optimizer.lr=0.1",
            "completed",
            "4/4",
            "loss/val 0.3 (epoch 3)",
            "accuracy 0.875",
            "healthy",
        ],
        [
            "2026-11-23 12:00:00",
            "outputs/runs/c",
            "interrupted",
            "4/4",
            "loss/val 0.25 (epoch 3)",
            "accuracy 0.875",
            "ok",
        ],
        [
            "2026-11-23 11:00:00",
            "outputs/runs/b",
            "optimizer.lr=1e6",
            "failed",
            "0/3",
            "divergence",
        ],
        [
            "2026-11-23 10:00:00",
            "outputs/runs/a",
            "dataset=moons",
            "completed",
            "4/4",
            "loss/val 0.25 (epoch 3)",
            "accuracy 0.875",
            "healthy",
        ],
    ]
    assert lines[11:] == [
        "interrupted: outputs/runs/c: continue it with "
        "`python -m trainer trainer.resume=outputs/runs/c`",
        "failed: outputs/runs/b: the training loss became non-finite",
        "compare two runs: python -m trainer.compare <run dir> <run dir>",
    ]
    assert "\x1b[" not in out  # no colour codes when not a terminal


def test_status_filter_and_limit(tree, capsys):
    assert runs.main([str(tree), "--json", "--status", "finished"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["run_dir"] for r in listed["runs"]] == [
        str(tree / "sweeps" / "s" / "0_optimizer.lr=0.01"),
        str(tree / "sweeps" / "s" / "1_optimizer.lr=0.1"),
        str(tree / "runs" / "a"),
    ]
    assert [r["sweep_dir"] for r in listed["runs"]] == [str(tree / "sweeps" / "s")] * 2 + [None]
    assert [r["varies"] for r in listed["runs"]] == [
        ["optimizer.lr=0.01"],
        ["optimizer.lr=0.1"],
        None,
    ]
    assert runs.main([str(tree), "--json", "--status", "failed,interrupted"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["status"], r["error"]) for r in listed["runs"]] == [
        ("interrupted", None),
        ("failed", "the training loss became non-finite"),
    ]
    assert runs.main([str(tree), "--json", "--limit", "2"]) == 0  # the sweep counts as one
    listed = json.loads(capsys.readouterr().out)
    assert [r["job"] for r in listed["runs"]] == ["0_optimizer.lr=0.01", "1_optimizer.lr=0.1", None]
    assert runs.main([str(tree), "--status", "running"]) == 0
    assert capsys.readouterr().out == (
        f"no runs with status running under {tree} (5 runs there: 3 completed, 1 interrupted, "
        "1 failed)\n"
    )


def test_an_empty_directory_has_no_runs(tmp_path, capsys):
    assert runs.main([str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"no runs under {tmp_path}\n"
    assert runs.main([str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"root": str(tmp_path), "runs": []}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["missing-dir"], "DIR: 'missing-dir' does not exist (looked in"),
        (["--status", "fialed"], "--status: unknown status 'fialed'. Did you mean 'failed'? Valid"),
        (["--limit", "0"], "--limit: 0 is not a positive number of runs."),
        (["--limit", "x"], "trainer.runs: argument --limit: invalid int value: 'x'."),
        (["a", "b"], "trainer.runs: unrecognized arguments: b."),
    ],
)
def test_mistakes_name_the_argument(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as error:
        runs.main(argv)
    assert str(error.value).startswith(message)
    assert run_files.run_main(runs.main, argv, "trainer.runs") == 2
    assert "trainer.runs: error" in capsys.readouterr().err


# ---------------------------------------------------------------------- python -m trainer.compare
def test_config_difference_lists_changed_keys_and_keys_one_run_has():
    a = {"optimizer._target_": "AdamW", "optimizer.lr": 0.003, "model.hidden": [64, 64]}
    b = {"optimizer._target_": "SGD", "optimizer.lr": 0.003, "optimizer.momentum": 0.9}
    assert compare.config_difference(a, b) == [
        {"key": "optimizer._target_", "a": "AdamW", "b": "SGD", "only_in": None},
        {"key": "model.hidden", "a": [64, 64], "b": None, "only_in": "a"},
        {"key": "optimizer.momentum", "a": None, "b": 0.9, "only_in": "b"},
    ]


def test_compare_a_finished_run_with_a_running_one(tmp_path, capsys):
    a = make_run(tmp_path / "a", finished(), config={"optimizer": {"lr": 0.003}, "seed": 1})
    b = make_run(tmp_path / "b", None, config={"optimizer": {"lr": 0.01}}, lock_pid=os.getpid())
    assert compare.main([str(a), str(b), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["config"] == [
        {"key": "optimizer.lr", "a": 0.003, "b": 0.01, "only_in": None},
        {"key": "seed", "a": 1, "b": None, "only_in": "a"},
    ]
    rows = {row["name"]: row for row in result["metrics"]}
    assert rows["status"] == {
        "name": "status",
        "a": "completed",
        "b": "running",
        "delta": None,
        "better": None,
    }
    assert rows["best loss/val"] == {
        "name": "best loss/val",
        "a": 0.25,
        "b": None,
        "delta": None,
        "better": None,
    }
    assert compare.main([str(a), str(b)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert cells(out[0]) == ["A", str(a), "completed"]
    assert cells(out[1]) == ["B", str(b), "running"]
    assert out[3] == "config: 2 of 2 keys differ"
    assert [cells(line) for line in out[7:9]] == [
        ["optimizer.lr", "0.003", "0.01"],
        ["seed", "1", "(not set)"],
    ]


def test_compare_gives_the_delta_and_the_better_run(tmp_path, capsys):
    a = make_run(tmp_path / "a", finished(best=0.25))
    b = make_run(tmp_path / "b", finished(best=0.2, test={"loss": 0.3, "accuracy": 0.9}))
    result = compare.compare(str(a), str(b))
    assert result["config"] == []
    rows = {
        row["name"]: (row["a"], row["b"], row["delta"], row["better"]) for row in result["metrics"]
    }
    assert rows["best loss/val"] == (0.25, 0.2, pytest.approx(-0.05), "b")
    assert rows["test accuracy"] == (0.875, 0.9, pytest.approx(0.025), "b")
    assert rows["test loss"] == (0.3, 0.3, 0.0, None)
    assert rows["epochs"] == (4, 4, 0, None)
    assert compare.main([str(a), str(b)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "config: identical" in out
    table = {cells(line)[0]: cells(line)[1:] for line in out if line.startswith(" ")}
    assert table["best loss/val"] == ["0.25", "0.2", "-0.05 (-20.0%) (B better)"]
    assert table["test accuracy"] == ["0.875", "0.9", "+0.025 (+2.9%) (B better)"]


def test_compare_reads_the_newest_resumes_config(tmp_path):
    a = make_run(tmp_path / "a", finished(), config={"trainer": {"max_epochs": 4}})
    resumed = a / ".hydra" / "resumed-2026-11-24_10-00-00"
    resumed.mkdir()
    (resumed / "config.yaml").write_text(yaml.safe_dump({"trainer": {"max_epochs": 9}}))
    b = make_run(tmp_path / "b", finished(), config={"trainer": {"max_epochs": 4}})
    result = compare.compare(str(a), str(b))
    assert result["a"]["config_file"] == str(resumed / "config.yaml")
    assert result["config"] == [{"key": "trainer.max_epochs", "a": 9, "b": 4, "only_in": None}]


def test_compare_refuses_what_is_not_a_run(tmp_path):
    run = make_run(tmp_path / "run", finished())
    sweep = tmp_path / "sweep"
    make_run(sweep / "0_x=1", finished())
    (sweep / "multirun.yaml").write_text("{}")
    make_run(run / "evaluations" / "t", {"mode": "test", "status": "completed"})
    cases = {
        str(tmp_path / "nope"): f"B: '{tmp_path / 'nope'}' does not exist",
        str(sweep): f"B: '{sweep}' is a sweep's directory (its jobs: 0_x=1).",
        str(tmp_path): f"B: '{tmp_path}' is not a run directory (it has no .hydra/ folder).",
        str(run / "evaluations" / "t"): "B: '"
        + str(run / "evaluations" / "t")
        + "' is an evaluation's or a prediction's directory (mode=test or mode=predict).",
    }
    for path, message in cases.items():
        with pytest.raises(UserError) as error:
            compare.compare(str(run), path)
        assert str(error.value).startswith(message)


def test_a_narrow_terminal_keeps_paths_whole_and_every_column(tree, monkeypatch):
    from rich.console import Console

    monkeypatch.chdir(tree.parent)
    entries = runs.select(runs.collect(Path("outputs")), None, None)
    console = Console(width=100, color_system=None)
    with console.capture() as capture:
        console.print(runs.table(entries, "title", width=100))
    lines = capture.get().splitlines()
    assert max(len(line) for line in lines) <= 100  # fits: nothing cut at the right edge
    assert cells(lines[2]) == ["when", "run", "status", "epochs", "best", "test", "health"]
    assert cells(lines[4]) == ["2026-11-23", "outputs/sweeps/s/", "sweep", "2 jobs"]
    assert cells(lines[5])[:2] == ["13:00:00", "dataset=moons"]  # the overrides below the path
    for name in ("runs/a", "runs/b", "runs/c"):
        assert sum(f" outputs/{name} " in line for line in lines) == 1


def test_a_resumed_run_shows_its_latest_overrides_and_its_first_start(tmp_path):
    folder = make_run(
        tmp_path / "run",
        finished(started="2026-11-24T10:00:05+00:00"),  # a resume's own start
        overrides=["trainer.max_epochs=4", "dataset=moons"],
    )
    composed = 1795428000  # 2026-11-23T10:00:00Z: when Hydra first wrote the run's config
    os.utime(folder / ".hydra" / "config.yaml", (composed, composed))
    resumed = folder / ".hydra" / "resumed-2026-11-24_10-00-00"
    resumed.mkdir()
    replayed = ["trainer.max_epochs=4", "dataset=moons", "trainer.resume=run"]
    (resumed / "overrides.yaml").write_text(yaml.safe_dump([*replayed, "trainer.max_epochs=9"]))
    run = run_files.read_run(folder)
    assert run["overrides"] == ["dataset=moons", "trainer.max_epochs=9"]
    assert run["started_at"] == "2026-11-23T10:00:00+00:00"


def test_a_sweep_over_seeds_shows_the_seeds(tmp_path):
    sweep = tmp_path / "s"
    for i in range(2):
        make_run(
            sweep / f"{i}_trainer.seed={i}", finished(), overrides=[f"trainer.seed={i}", "x=1"]
        )
    (sweep / "multirun.yaml").write_text("{}")
    (entry,) = runs.collect(tmp_path)
    assert entry["overrides"] == ["x=1"]
    assert [job["varies"] for job in entry["jobs"]] == [["trainer.seed=0"], ["trainer.seed=1"]]


def test_compare_two_failed_runs_leaves_out_empty_rows_and_says_why_each_failed(tmp_path, capsys):
    a = make_run(
        tmp_path / "a", {"status": "failed", "error": "loss became nan\nmore", "epochs_run": 0}
    )
    b = make_run(
        tmp_path / "b", {"status": "failed", "error": "optimizer.lr='abc' is not a number."}
    )
    result = compare.compare(str(a), str(b))
    assert [(r["name"], r["a"], r["b"]) for r in result["metrics"]] == [
        ("status", "failed", "failed"),
        ("epochs", 0, None),
    ]
    assert compare.main([str(a), str(b)]) == 0
    assert capsys.readouterr().out.splitlines()[-2:] == [
        "A failed: loss became nan",
        "B failed: optimizer.lr='abc' is not a number.",
    ]
