"""Run safety: a directory holds one run, a failed start changes nothing, failures on the way
leave an honest record, and every exit code means one thing."""

import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys

import pytest
import torch
from helpers import FAST, cli_env, metrics_of, run_cli, run_module, trainer_cli, unsaid

pytestmark = pytest.mark.e2e


def _files(folder, skip=()):
    """sha256 of every file of a run directory, .hydra/ and the log included."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.relative_to(folder).parts[0] not in skip
    }


def _text(result):
    return " ".join((result.stdout + result.stderr).split())


def _refused(result, *phrases):
    text = _text(result)
    assert result.returncode == 2, text[-2000:]
    assert "Traceback" not in text
    assert unsaid(result, *phrases) == [], text[-2000:]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 3-epoch run, copied fresh for each test that changes it."""
    tmp = tmp_path_factory.mktemp("finished")
    run_cli([*FAST], tmp, check=True)
    return tmp / "run"


@pytest.fixture
def run_copy(finished, tmp_path):
    target = tmp_path / "run"
    shutil.copytree(finished, target)
    return target


def test_resuming_a_completed_run_changes_nothing_and_says_how_to_extend_it(run_copy, tmp_path):
    before = _files(run_copy)
    result = run_cli([f"trainer.resume={run_copy}"], tmp_path, run_dir=run_copy, check=True)
    assert (
        unsaid(
            result,
            "it completed 3 of trainer.max_epochs=3",
            f"trainer.resume={run_copy} trainer.max_epochs=6",
        )
        == []
    )
    assert _files(run_copy) == before


def test_extending_a_completed_run_equals_the_longer_run(run_copy, tmp_path):
    run_cli([f"trainer.resume={run_copy}", "trainer.max_epochs=5"], tmp_path, check=True)
    run_cli([*FAST, "trainer.max_epochs=5"], tmp_path, run_dir=tmp_path / "long", check=True)
    extended = torch.load(run_copy / "checkpoints" / "last.pt", weights_only=True)
    straight = torch.load(tmp_path / "long" / "checkpoints" / "last.pt", weights_only=True)
    for name, value in straight["model"].items():
        assert torch.equal(extended["model"][name], value), name
    assert _timeless(run_copy) == _timeless(tmp_path / "long")


def _timeless(run):
    """A run's history without its wall-clock measurements."""
    return [
        {k: v for k, v in epoch.items() if not k.startswith(("time/", "throughput/"))}
        for epoch in metrics_of(run)["history"]
    ]


def test_last_pt_holds_the_last_trained_epoch_not_the_restored_best(tmp_path):
    # patience 1 stops early; every_n_epochs=4 would skip the final epoch without the rule
    args = [*FAST, "trainer.max_epochs=40", "callbacks.early_stopping.patience=1"]
    args += ["callbacks.model_checkpoint.every_n_epochs=4", "optimizer.lr=0.05"]
    run_cli(args, tmp_path, check=True)
    summary = metrics_of(tmp_path / "run")
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    best = torch.load(tmp_path / "run" / "checkpoints" / "best.pt", weights_only=True)
    assert summary["status"] == "stopped_early" and summary["restored"] is not None
    assert last["epoch"] == summary["epochs_run"] != best["epoch"] == summary["best_epoch"]


def test_a_new_run_in_a_finished_runs_directory_is_refused(run_copy, tmp_path):
    before = _files(run_copy)
    result = run_cli([*FAST], tmp_path, run_dir=run_copy)
    _refused(result, f"hydra.run.dir='{run_copy}' already holds a completed run (3 epochs)")
    assert unsaid(result, f"trainer.resume={run_copy}") == []
    assert _files(run_copy) == before


def test_a_second_process_is_refused_and_a_stale_lock_taken_over(run_copy, tmp_path):
    lock = run_copy / ".lock"
    lock.write_text(json.dumps({"pid": os.getpid(), "host": os.uname().nodename, "since": 0}))
    before = _files(run_copy)
    busy = run_cli([f"trainer.resume={run_copy}", "trainer.max_epochs=4"], tmp_path)
    _refused(busy, f"'{run_copy}' is in use by another process (pid {os.getpid()}")
    assert _files(run_copy) == before
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], text=True, capture_output=True
    ).stdout.strip()
    lock.write_text(json.dumps({"pid": int(gone), "host": os.uname().nodename, "since": 0}))
    run_cli([f"trainer.resume={run_copy}", "trainer.max_epochs=4"], tmp_path, check=True)
    assert metrics_of(run_copy)["epochs_run"] == 4 and not lock.exists()  # released at the end


@pytest.mark.parametrize(
    "change,phrase",
    [
        (
            "model.hidden_sizes=[8]",
            "checkpoint has layers.1.weight [64, 2], this config builds [8, 2]",
        ),
        ("dataset=circles", "the checkpoint was trained on other data (name: checkpoint moons"),
    ],
)
def test_a_resume_that_does_not_fit_is_refused_before_any_file_changes(
    run_copy, tmp_path, change, phrase
):
    before = _files(run_copy)
    result = run_cli([f"trainer.resume={run_copy}", "trainer.max_epochs=5", change], tmp_path)
    _refused(result, phrase)
    assert _files(run_copy) == before


def test_a_truncated_checkpoint_is_refused_before_any_file_changes(run_copy, tmp_path):
    last = run_copy / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:300])
    before = _files(run_copy)
    _refused(
        run_cli([f"trainer.resume={run_copy}", "trainer.max_epochs=5"], tmp_path),
        "is not a checkpoint: torch.save did not write it, or it is truncated or corrupt",
    )
    assert _files(run_copy) == before


def test_a_run_killed_before_its_first_checkpoint_names_the_right_path(run_copy, tmp_path):
    shutil.rmtree(run_copy / "checkpoints")
    _refused(
        run_cli([f"trainer.resume={run_copy}"], tmp_path),
        f"no {run_copy / 'checkpoints' / 'last.pt'} and no best.pt",
        "it stopped before its first checkpoint (last.pt comes "
        "callbacks.model_checkpoint.every_n_seconds into training, 5 s by default",
    )


def test_a_full_disk_is_one_paragraph_and_an_honest_record(tmp_path):
    def small_files():  # writes past 60 kB fail as on a full disk (EFBIG instead of ENOSPC)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))

    result = subprocess.run(
        [sys.executable, "-m", "trainer", *FAST, f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        preexec_fn=small_files,
    )
    _refused(result, f"could not write '{tmp_path / 'run' / 'checkpoints'}")
    record = metrics_of(tmp_path / "run")
    assert record["status"] == "failed" and record["error"].startswith("could not write")


def test_an_output_directory_that_cannot_be_written_is_refused_before_anything(tmp_path):
    (tmp_path / "a_file").write_text("not a folder")
    _refused(
        run_cli([*FAST], tmp_path, run_dir=tmp_path / "a_file" / "run"),
        f"hydra.run.dir='{tmp_path / 'a_file' / 'run'}' cannot be written",
    )


def test_sighup_stops_like_sigterm_with_a_resume_hint(tmp_path):
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trainer",
            "trainer.max_epochs=100000",
            "logger=none",
            "callbacks.early_stopping.patience=100000",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    while not process.stdout.readline().startswith("epoch      2/"):
        assert process.poll() is None, process.stderr.read()
    process.send_signal(signal.SIGHUP)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 129, stderr
    assert "interrupted by SIGHUP" in stderr and f"trainer.resume={run_dir}" in stderr
    assert metrics_of(run_dir)["status"] == "interrupted"


def test_a_failed_start_leaves_no_run_directory(tmp_path):
    result = run_cli([*FAST, "optimizer.lr=-1"], tmp_path, run_dir=tmp_path / "never")
    _refused(result, "optimizer.lr=-1 is out of range: it must be > 0")
    assert not (tmp_path / "never").exists()


def test_mode_test_writes_into_the_evaluated_run_and_nowhere_else(run_copy, tmp_path):
    before = _files(run_copy)
    result = trainer_cli(["mode=test", f"trainer.resume={run_copy}"], tmp_path)
    assert result.returncode == 0, result.stderr
    (evaluation,) = (run_copy / "evaluations").iterdir()
    assert metrics_of(evaluation)["test"] == metrics_of(run_copy)["test"]
    assert not (tmp_path / "outputs").exists()
    kept = {k: v for k, v in _files(run_copy).items() if not k.startswith("evaluations")}
    assert kept == before


def test_summarising_a_folder_without_runs_is_an_error_and_writes_nothing(tmp_path):
    result = run_module("trainer.summarize", [tmp_path], tmp_path, timeout=60)
    _refused(result, f"'{tmp_path}' holds no runs of a sweep")
    assert list(tmp_path.iterdir()) == []


def test_the_lock_is_released_when_a_resume_fails(run_copy, tmp_path):
    result = run_cli([f"trainer.resume={run_copy}", "trainer.precision=16-mixed"], tmp_path)
    _refused(result, "trainer.precision=16-mixed needs a CUDA GPU")
    assert not (run_copy / ".lock").exists() and (run_copy / "metrics.json").is_file()
