"""The real command line, in subprocesses, read back the way a user would."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import FAST, ROOT, cli_env, metrics_of, run_cli

pytestmark = pytest.mark.e2e


def test_default_experiment_learns_and_writes_only_under_outputs(tmp_path):
    cwd = tmp_path / "project"
    cwd.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "trainer"],
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert [p.name for p in cwd.iterdir()] == ["outputs"]
    (run_dir,) = (cwd / "outputs" / "runs").glob("*/*")
    assert re.fullmatch(
        r"\d{4}-\d{2}-\d{2}/\d{2}-\d{2}-\d{2}-\d{6}", f"{run_dir.parent.name}/{run_dir.name}"
    )
    metrics = metrics_of(run_dir)
    assert metrics["status"] in ("completed", "stopped_early")
    assert metrics["best"]["accuracy/val"] >= 0.95
    assert metrics["test"]["accuracy"] >= 0.9 and metrics["epochs_run"] >= 1
    assert (run_dir / "trainer.log").is_file() and not (run_dir / "__main__.log").exists()
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert (run_dir / "checkpoints" / "best.pt").is_file() and any(
        run_dir.glob("events.out.tfevents.*")
    )
    log = (run_dir / "trainer.log").read_text()
    # max_epochs auto: 3000 optimizer steps at 22 steps an epoch (700 rows, batch 32) = 137 epochs
    assert metrics["max_epochs"] == 137
    assert log.count("epoch   1/137") == 1  # every line once
    assert "tensorboard --logdir" in result.stdout


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_digits_reaches_95_percent_test_accuracy(tmp_path, model):
    run_cli(
        ["dataset=digits", f"model={model}", "trainer.max_epochs=20", "logger=none"],
        tmp_path,
        check=True,
    )
    assert metrics_of(tmp_path / "run")["test"]["accuracy"] >= 0.95


def test_diabetes_regression_reaches_r2_above_035(tmp_path):
    run_cli(["dataset=diabetes", "model=mlp", "logger=none"], tmp_path, check=True)
    metrics = metrics_of(tmp_path / "run")
    assert metrics["test"]["r2"] > 0.35
    assert set(metrics["test"]) == {"loss", "mae", "rmse", "r2"}


def test_linear_regression_recovers_slope_3_and_intercept_minus_2(tmp_path):
    run_cli(
        ["dataset=linear", "model=linear", "optimizer=sgd", "optimizer.lr=0.1", "logger=none"],
        tmp_path,
        check=True,
    )
    from trainer.checkpoints import load_checkpoint

    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")
    w, b = state["model"]["linear.weight"].item(), state["model"]["linear.bias"].item()
    x_mean, x_std = (
        state["data"]["feature_scaler"]["mean"][0],
        state["data"]["feature_scaler"]["std"][0],
    )
    y_mean, y_std = (
        state["data"]["target_scaler"]["mean"][0],
        state["data"]["target_scaler"]["std"][0],
    )
    slope = w * y_std / x_std  # the model's function in the data's own units
    intercept = y_mean + y_std * (b - w * x_mean / x_std)
    assert slope == pytest.approx(3.0, abs=0.1) and intercept == pytest.approx(-2.0, abs=0.1)


def test_the_same_command_twice_gives_the_same_numbers(tmp_path):
    args = ["trainer.max_epochs=4", "logger=none", "model.dropout=0.2"]
    first = run_cli(args, tmp_path, run_dir=tmp_path / "a", check=True)
    second = run_cli(args, tmp_path, run_dir=tmp_path / "b", check=True)
    assert first.returncode == second.returncode == 0
    a, b = metrics_of(tmp_path / "a"), metrics_of(tmp_path / "b")

    def strip(metrics):  # timings differ from run to run; everything else must not
        return [
            {k: v for k, v in h.items() if not k.startswith(("time/", "throughput/"))}
            for h in metrics["history"]
        ]

    assert strip(a) == strip(b) and a["test"] == b["test"]


def test_optimizers_and_schedulers_from_the_command_line(tmp_path):
    run_cli(
        [
            "optimizer=sgd",
            "optimizer.lr=0.1",
            "optimizer.momentum=0.9",
            "optimizer.nesterov=true",
            "scheduler=onecycle",
            *FAST,
        ],
        tmp_path,
        run_dir=tmp_path / "a",
        check=True,
    )
    lrs = [
        h["lr"] for h in metrics_of(tmp_path / "a")["history"]
    ]  # one parameter group: no weight decay
    assert lrs[0] < lrs[1]  # one-cycle warms up (steps per batch)
    run_cli(
        ["scheduler=step", "scheduler.gamma=0.5", "trainer.max_epochs=6", "logger=none"],
        tmp_path,
        run_dir=tmp_path / "b",
        check=True,
    )
    lrs = [h["lr/default"] for h in metrics_of(tmp_path / "b")["history"]]
    assert lrs == pytest.approx(
        [0.003] * 2 + [0.0015] * 2 + [0.00075] * 2
    )  # step_size null: a third of the run
    run_cli(
        ["param_groups.module_lr={layers.1: 0.001}", *FAST],
        tmp_path,
        run_dir=tmp_path / "c",
        check=True,
    )
    last = metrics_of(tmp_path / "c")["history"][-1]
    assert (last["lr"], last["lr/layers.1"]) == (0.003, 0.001)


BAD_INPUTS = [
    (["optimizer=adamx"], "Available options in 'optimizer'"),
    (["optimizer.lr=abc"], "optimizer.lr='abc' is not a number"),
    (["optimizer.lr=-0.1"], "optimizer.lr=-0.1 is out of range"),
    (["data.split=[0.6,0.3,0.3]"], "data.split"),
    (["trainer.batch_size=0"], "trainer.batch_size=0"),
    (
        ["dataset=csv", "dataset.path=missing.csv", "dataset.target=label"],
        "no such file: 'missing.csv'",
    ),
    (["dataset=csv", "dataset.path=data.csv", "dataset.target=lable"], "Did you mean 'label'?"),
    (["loss=bce_logits", "dataset=iris"], "loss=bce_logits does not fit dataset=iris"),
    (["model=cnn"], "model=cnn needs image data"),
    (["trainer.max_epoch=3"], "Did you mean 'trainer.max_epochs'?"),
    (["trainer.precision=16-mixed"], "needs a CUDA GPU"),
]


@pytest.mark.parametrize("args,message", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_clear_message_and_a_non_zero_exit(tmp_path, args, message):
    (tmp_path / "data.csv").write_text(
        "a,b,label\n" + "\n".join(f"{i},{i % 3},{i % 2}" for i in range(40))
    )
    result = run_cli(args, tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in " ".join(result.stderr.split()), result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def _python(code: str, cwd):
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_help_lists_every_group_and_imports_no_torch(tmp_path):
    code = (
        "import sys, runpy\nsys.argv = ['trainer', '--help']\n"
        "runpy.run_module('trainer', run_name='__main__')\nprint('torch' in sys.modules)"
    )
    result = _python(code, tmp_path)
    for group in (
        "dataset:",
        "model:",
        "loss:",
        "optimizer:",
        "scheduler:",
        "callbacks:",
        "trainer:",
    ):
        assert group in result.stdout
    assert "warmup_cosine" in result.stdout and "examples:" in result.stdout
    assert result.stdout.strip().endswith("False")


def test_cfg_job_prints_the_config_without_importing_torch(tmp_path):
    code = (
        "import atexit, sys, runpy\n"  # (the CLI ends with os._exit: atexit handlers still run)
        "atexit.register(lambda: print('torch imported:', 'torch' in sys.modules))\n"
        "sys.argv = ['trainer', 'optimizer=sgd', '--cfg', 'job']\n"
        "runpy.run_module('trainer', run_name='__main__')\n"
    )
    result = _python(code, tmp_path)
    assert "_target_: torch.optim.SGD" in result.stdout
    assert "torch imported: False" in result.stdout
    assert not (tmp_path / "outputs").exists()


@pytest.mark.skipif(
    shutil.which("trainer") is None, reason="console script not installed (pip install -e .)"
)
def test_console_script_runs_the_same_cli(tmp_path):
    result = subprocess.run(
        [
            "trainer",
            "optimizer=sgd",
            "optimizer.lr=0.1",
            "optimizer.momentum=0.9",
            *FAST,
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert metrics_of(tmp_path / "run")["status"] in ("completed", "stopped_early")


def test_installed_package_finds_its_configs_from_another_directory(tmp_path):
    """A plain (non-editable) install: the wheel carries conf/ as trainer/conf, and every package.
    Built from a copy of the source without build/ (a stale build/lib would hide a package
    missing from pyproject.toml)."""
    source = tmp_path / "source"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", "build", "outputs", ".venv*", "*.egg-info", "__pycache__"
        ),
    )
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(source),
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if built.returncode != 0 and "No module named" in built.stderr:
        pytest.skip("setuptools/wheel not available for a wheel build: " + built.stderr[-200:])
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("trainer-*.whl")
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--target",
            str(site),
            str(wheel),
            "-q",
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert (site / "trainer" / "conf" / "optimizer" / "sgd.yaml").is_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = cli_env()
    env["PYTHONPATH"] = str(site)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainer",
            "trainer.max_epochs=1",
            "logger=none",
            f"hydra.run.dir={elsewhere / 'run'}",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert metrics_of(elsewhere / "run")["epochs_run"] == 1
    import trainer

    assert Path(trainer.__file__).parents[1] == ROOT  # this test process still uses the checkout


def test_callbacks_can_be_removed_added_and_turned_off(tmp_path):
    run_cli(
        [
            "~callbacks.model_checkpoint",
            "+callbacks.quick_stop._target_=trainer.callbacks.EarlyStopping",
            "+callbacks.quick_stop.patience=1",
            "+callbacks.quick_stop.min_delta=0.5",
            "logger=none",
        ],
        tmp_path,
        run_dir=tmp_path / "a",
        check=True,
    )
    metrics = metrics_of(tmp_path / "a")
    assert not (tmp_path / "a" / "checkpoints").exists()
    assert metrics["status"] == "stopped_early" and metrics["epochs_run"] <= 3
    result = run_cli(
        ["callbacks=none", "trainer.max_epochs=2", "logger=none"],
        tmp_path,
        run_dir=tmp_path / "b",
        check=True,
    )
    assert "epoch 1/2" not in result.stdout  # no progress callback
    assert metrics_of(tmp_path / "b")["epochs_run"] == 2


def test_print_config_shows_the_tree(tmp_path):
    result = run_cli(["print_config=true", *FAST], tmp_path, check=True)
    assert "optimizer" in result.stdout and "torch.optim.AdamW" in result.stdout


def test_predictions_and_evaluation_of_a_trained_csv_model(tmp_path):
    """mode=test reproduces the run's test metrics; mode=predict on the test rows matches its accuracy."""
    from trainer.data import DataModule
    from trainer.data.csv_file import load_csv

    rng = np.random.RandomState(0)
    x = rng.normal(size=(600, 2))
    colour = rng.choice(["red", "green"], size=600)
    label = np.where(x[:, 0] + 0.5 * x[:, 1] + (colour == "red") > 0.3, "good", "bad")
    lines = ["x0,x1,colour,label"] + [
        f"{a:.4f},{b:.4f},{c},{d}" for (a, b), c, d in zip(x, colour, label)
    ]
    (tmp_path / "data.csv").write_text("\n".join(lines) + "\n")
    run_cli(
        [
            "dataset=csv",
            "dataset.path=data.csv",
            "dataset.target=label",
            "trainer.max_epochs=15",
            "logger=none",
        ],
        tmp_path,
        check=True,
    )
    trained = metrics_of(tmp_path / "run")

    run_cli(
        ["mode=test", f"trainer.resume={tmp_path / 'run'}"],
        tmp_path,
        run_dir=tmp_path / "eval",
        check=True,
    )
    assert metrics_of(tmp_path / "eval")["test"] == pytest.approx(trained["test"], rel=1e-6)

    data = DataModule(load_csv(str(tmp_path / "data.csv"), target="label"), seed=0)
    test_rows = [lines[0]] + [lines[i + 1] for i in data.indices["test"]]
    (tmp_path / "test.csv").write_text("\n".join(test_rows) + "\n")
    result = run_cli(
        [
            "mode=predict",
            f"trainer.resume={tmp_path / 'run'}",
            "predict.input=test.csv",
            "predict.output=preds.csv",
        ],
        tmp_path,
        run_dir=tmp_path / "predict",
        check=True,
    )
    predicted = (tmp_path / "preds.csv").read_text().splitlines()
    assert predicted[0] == "x0,x1,colour,label,prediction,probability_bad,probability_good"
    correct = [row.split(",")[3] == row.split(",")[4] for row in predicted[1:]]
    assert np.mean(correct) == pytest.approx(trained["test"]["accuracy"])
    assert "accuracy" in result.stdout
    assert json.loads((tmp_path / "predict" / "metrics.json").read_text())["score"][
        "accuracy"
    ] == pytest.approx(trained["test"]["accuracy"])


def test_a_run_ends_with_its_files_whole_and_a_profiler_still_reports(tmp_path):
    """The CLI ends with os._exit after the atexit handlers (cli.exit_now): the log file,
    metrics.json and the checkpoints are complete; under cProfile it exits as usual, so the
    profile is written."""
    from helpers import run_module

    profile, run_dir = tmp_path / "run.prof", tmp_path / "run"
    args = ["-o", profile, "-m", "trainer", *FAST, f"hydra.run.dir={run_dir}"]
    result = run_module("cProfile", args, tmp_path)
    assert result.returncode == 0, result.stderr
    import pstats

    assert pstats.Stats(str(profile)).total_calls > 1000
    assert metrics_of(run_dir)["status"] == "completed"
    plain = run_cli([*FAST, "trainer.max_epochs=1"], tmp_path, run_dir=tmp_path / "plain")
    assert plain.returncode == 0
    log = (tmp_path / "plain" / "trainer.log").read_text()
    assert log.rstrip().splitlines()[-1].startswith("  - info: only 1 epoch(s) ran")
    assert metrics_of(tmp_path / "plain")["status"] == "completed"
    import torch

    last = torch.load(tmp_path / "plain" / "checkpoints" / "last.pt", weights_only=True)
    assert last["epoch"] == 1
