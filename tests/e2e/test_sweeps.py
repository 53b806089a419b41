"""Sweeps end to end: one directory per job, a ranked summary even when a job fails, parallel
launchers, Optuna, experiment presets, the learning-rate range test."""

import csv
import json
import os
import re
import shlex
import time

import pytest
from helpers import metrics_of, run_cli, run_module, trainer_cli
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

pytestmark = pytest.mark.e2e

try:
    import hydra_plugins.hydra_joblib_launcher

    HAS_JOBLIB = True
except ImportError:
    HAS_JOBLIB = False
try:
    import hydra_plugins.hydra_optuna_sweeper  # noqa: F401

    HAS_OPTUNA = True
except ImportError:
    HAS_OPTUNA = False

SWEEP = ["optimizer.lr=1e-3,1e-2,abc", "trainer.max_epochs=4"]
PREFIXES = ("[0 optimizer.lr=0.001] ", "[1 optimizer.lr=0.01] ", "[2 optimizer.lr=abc] ")


def _rows(sweep_dir):
    return json.loads((sweep_dir / "summary.json").read_text())["runs"]


def _table_cells(stdout: str) -> dict[str, list[str]]:
    """The ranking table's cells by job number (the table's second column)."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("sweep: "))
    rows = [line.split("│")[1:-1] for line in lines[start:] if line.startswith("│")]
    return {cells[1].strip(): [c.strip() for c in cells] for cells in rows if cells[1].strip()}


@pytest.fixture(scope="module")
def basic_sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("basic")
    started = time.monotonic()
    result = run_cli(SWEEP, tmp, multirun=True)
    result.elapsed = time.monotonic() - started
    return result, tmp / "sweep"


@pytest.fixture(scope="module")
def joblib_sweep(tmp_path_factory):
    if not HAS_JOBLIB:
        pytest.skip("hydra-joblib-launcher not installed (pip install -e '.[sweeps]')")
    tmp = tmp_path_factory.mktemp("joblib")
    return run_cli(["hydra/launcher=joblib", *SWEEP], tmp, multirun=True)


def test_one_directory_per_job_named_after_the_swept_value(basic_sweep):
    _, sweep_dir = basic_sweep
    jobs = sorted(p.name for p in sweep_dir.iterdir() if p.is_dir())
    assert jobs == ["0_optimizer.lr=0.001", "1_optimizer.lr=0.01", "2_optimizer.lr=abc"]


def test_a_failed_job_fails_alone_and_the_sweep_still_ends_in_a_ranked_summary(basic_sweep):
    result, sweep_dir = basic_sweep
    assert result.returncode == 3  # a sweep with failed jobs, whichever launcher ran them
    assert "job 2: optimizer.lr='abc' is not a number" in result.stderr
    rows = _rows(sweep_dir)
    good = [r for r in rows if r["status"] != "failed"]
    assert [r["rank"] for r in good] == [1, 2]
    assert good[0]["best"] <= good[1]["best"]  # monitor loss/val: lower is better
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["error"] == "optimizer.lr='abc' is not a number."
    for row in good:
        metrics = metrics_of(row["run_dir"])
        assert (
            row["best"] == metrics["best_val_metric"]
            and row["test_accuracy"] == metrics["test"]["accuracy"]
        )
    with (sweep_dir / "summary.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert [r["job"] for r in table] == [r["job"] for r in rows]
    best = json.loads((sweep_dir / "summary.json").read_text())["best"]
    assert best["command"] == f"python -m trainer {good[0]['overrides']} trainer.max_epochs=4"
    for text in (
        "ranked by best loss/val",
        "re-run: python -m trainer",
        "failed: job 2",
        "tensorboard --logdir",
    ):
        assert text in result.stdout


def test_summary_can_be_rebuilt_from_the_run_directories(basic_sweep):
    _, sweep_dir = basic_sweep
    before = _rows(sweep_dir)
    (sweep_dir / "summary.json").unlink()
    (sweep_dir / "summary.csv").unlink()
    result = run_module("trainer.summarize", [sweep_dir], sweep_dir, timeout=120)
    assert result.returncode == 3  # a job failed
    assert _rows(sweep_dir) == before and (sweep_dir / "summary.csv").is_file()


def test_tensorboard_sees_one_run_per_job_with_its_hparams(basic_sweep):
    _, sweep_dir = basic_sweep
    for job in ("0_optimizer.lr=0.001", "1_optimizer.lr=0.01"):
        event_dirs = {p.parent for p in (sweep_dir / job).rglob("events.out.tfevents*")}
        assert event_dirs == {sweep_dir / job}  # TensorBoard's run name: the job's name
        events = EventAccumulator(str(sweep_dir / job), size_guidance={"tensors": 0})
        events.Reload()
        start = plugin_data_pb2.HParamsPluginData.FromString(
            events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
        ).session_start_info
        assert start.hparams["optimizer.lr"].number_value == float(job.split("=")[1])
        assert sorted(start.hparams) == ["optimizer.lr"]  # trainer.max_epochs=4 is constant


def test_the_time_column_is_each_jobs_wall_time(basic_sweep):
    result, sweep_dir = basic_sweep
    rows = {r["job"].split("_")[0]: r for r in _rows(sweep_dir)}
    cells = _table_cells(result.stdout)
    times = {}
    for job, row in rows.items():
        metrics = metrics_of(row["run_dir"])
        times[job] = metrics["job_wall_time_s"]
        assert row["job_wall_time_s"] == times[job]
        assert cells[job][-1] == f"{times[job]:.1f}s"
    for job in ("0", "1"):  # set-up, test and reports count, not only the epochs
        assert times[job] > metrics_of(rows[job]["run_dir"])["wall_time_s"]
    assert sum(times.values()) < result.elapsed


def test_a_sequential_sweep_prints_unlabelled_and_without_colour_codes(basic_sweep):
    result, _ = basic_sweep
    assert b"\x1b" not in (result.stdout + result.stderr).encode()
    lines = (result.stdout + result.stderr).splitlines()
    assert [line for line in lines if re.match(r"\[\d+ ", line)] == []
    assert sum(line.startswith("╭─ trainer ─") for line in lines) == 2


def test_joblib_runs_jobs_in_parallel_with_the_same_results(basic_sweep, joblib_sweep):
    result = joblib_sweep
    assert result.returncode == 3  # the same failing job: the same exit code as sequentially
    parallel, sequential = _rows(result.dir), _rows(basic_sweep[1])
    assert [(r["job"], r["best"], r.get("test_accuracy")) for r in parallel] == [
        (r["job"], r["best"], r.get("test_accuracy")) for r in sequential
    ]
    expected_threads = max(1, (os.cpu_count() or 1) // (os.cpu_count() or 1))
    finished = [row for row in parallel if row["status"] != "failed"]
    assert len(finished) == len(parallel) - 1  # all but the failing job
    threads = [metrics_of(row["run_dir"])["environment"]["torch_threads"] for row in finished]
    assert threads == [expected_threads] * len(finished)


def test_joblib_labels_every_line_a_job_prints_once_with_its_number_and_overrides(joblib_sweep):
    result = joblib_sweep
    assert b"\x1b" not in (result.stdout + result.stderr).encode()
    stdout = result.stdout.splitlines()
    end = next(i for i, line in enumerate(stdout) if line.startswith("sweep: 3 runs ranked"))
    jobs_printed = [line for line in stdout[:end] if "][HYDRA] " not in line]
    assert [line for line in jobs_printed if not line.startswith(PREFIXES)] == []
    for prefix in PREFIXES[:2]:
        for start in ("╭─ trainer ─", "epoch 1/4 | ", "epoch 4/4 | ", "╭─ summary ─", "resume: "):
            assert sum(line.startswith(prefix + start) for line in jobs_printed) == 1, start
    assert [line for line in jobs_printed if line.startswith(PREFIXES[2])] == []
    assert result.stderr.splitlines() == [
        "[2 optimizer.lr=abc] ╭─ trainer: error ───────────────────────────╮",
        "[2 optimizer.lr=abc] │ job 2: optimizer.lr='abc' is not a number. │",
        "[2 optimizer.lr=abc] ╰────────────────────────────────────────────╯",
    ]
    assert [line for line in stdout[end:] if line.startswith("[")] == []  # the launcher's own
    assert _table_cells(result.stdout)["2"][6] == "failed"


@pytest.mark.skipif(
    not HAS_OPTUNA, reason="hydra-optuna-sweeper not installed (pip install -e '.[sweeps]')"
)
def test_optuna_search_completes_and_is_summarised(tmp_path):
    import yaml

    result = run_cli(
        ["hparams_search=lr_wd", "hydra.sweeper.n_trials=3", "trainer.max_epochs=3", "logger=none"],
        tmp_path,
        multirun=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert b"\x1b" not in (result.stdout + result.stderr).encode()  # piped: no colour codes
    assert "] A new study created in memory with name: lr_wd\n" in result.stderr
    rows = _rows(tmp_path / "sweep")
    assert len(rows) == 3 and all(r["status"] in ("completed", "stopped_early") for r in rows)
    optuna = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    assert optuna["best_value"] == pytest.approx(min(r["best"] for r in rows))
    assert all(
        "optimizer.lr=" in r["overrides"] and "optimizer.weight_decay=" in r["overrides"]
        for r in rows
    )
    assert "hparams_search" not in rows[0]["command"]


def test_experiment_preset_compares_optimizers(tmp_path):
    result = run_cli(
        ["experiment=compare_optimizers", "trainer.max_epochs=2", "logger=none"],
        tmp_path,
        multirun=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    jobs = sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir())
    assert jobs == [
        "0_optimizer=sgd",
        "1_optimizer=sgd_momentum",
        "2_optimizer=adam",
        "3_optimizer=adamw",
    ]
    for job in jobs:
        metrics = metrics_of(tmp_path / "sweep" / job)
        assert metrics["epochs_run"] == 2 and metrics["status"] == "completed"  # no early stopping


def test_lr_find_suggests_a_rate_the_default_model_trains_well_with(tmp_path):
    result = run_cli(["mode=lr_find"], tmp_path, run_dir=tmp_path / "find", check=True)
    found = metrics_of(tmp_path / "find")
    rate = found["suggested_lr"]
    assert 1e-4 <= rate <= 1e-1, rate
    assert (tmp_path / "find" / "lr_find.png").is_file()
    assert f"optimizer.lr={rate:.3g}" in result.stdout
    assert not (tmp_path / "find" / "checkpoints").exists()  # a throwaway model: nothing saved
    run_cli(
        [f"optimizer.lr={rate:.3g}", "logger=none"],
        tmp_path,
        run_dir=tmp_path / "train",
        check=True,
    )
    assert metrics_of(tmp_path / "train")["best"]["accuracy/val"] >= 0.95


def test_a_jobs_printed_resume_command_runs_as_pasted(tmp_path):
    """A job's directory holds '=' (0_optimizer.lr=0.01): the printed command quotes it for
    Hydra and for the shell (it was a grammar error)."""
    sweep = run_cli(
        ["optimizer.lr=0.01,0.02", "trainer.max_epochs=2", "logger=none"], tmp_path, multirun=True
    )
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    job = sweep.dir / "0_optimizer.lr=0.01"
    printed = [
        line.split(":", 1)[1].strip()
        for line in sweep.stdout.splitlines()
        if line.startswith("resume:") and str(job) in line
    ]
    assert printed == [f"python -m trainer 'trainer.resume=\"{job}\"'"]
    words = shlex.split(printed[0])
    resumed = trainer_cli([*words[3:], "trainer.max_epochs=3"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert metrics_of(job)["epochs_run"] == 3
