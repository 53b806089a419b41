"""Several processes with DistributedDataParallel under torchrun (gloo on CPU; nccl with GPUs)."""

import json
import signal
import subprocess
import sys
import time

import pytest
import torch
from helpers import cli_env, metrics_of, run_cli

pytestmark = pytest.mark.e2e

TWO_GPUS = pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs")
COMMON = ["trainer.max_epochs=3", "logger=none"]


def torchrun(args, tmp_path, run_dir=None, nproc=2, timeout=300, **popen):
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "trainer",
        *args,
    ]
    if run_dir is not None:
        command.append(f"hydra.run.dir={run_dir}")
    if popen:
        return subprocess.Popen(command, cwd=tmp_path, env=cli_env(), text=True, **popen)
    return subprocess.run(
        command, cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=timeout
    )


def _weights(run_dir):
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["model"]


def test_two_processes_match_one_with_the_same_global_batch(tmp_path):
    counter = "+callbacks.collectives._target_=helpers.CollectiveCounter"
    ddp = torchrun([*COMMON, counter], tmp_path)  # no hydra.run.dir: rank 0 picks it for both
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    (run_dir,) = (tmp_path / "outputs" / "runs").glob("*/*")  # one run directory for both ranks
    run_cli(COMMON, tmp_path, run_dir=tmp_path / "single", check=True)
    single, both = _weights(tmp_path / "single"), _weights(run_dir)
    for name in single:
        torch.testing.assert_close(both[name], single[name], rtol=1e-4, atol=1e-6)
    ddp_metrics, single_metrics = metrics_of(run_dir), metrics_of(tmp_path / "single")
    assert ddp_metrics["environment"]["processes"] == 2
    for a, b in zip(ddp_metrics["history"], single_metrics["history"]):
        assert (
            a["accuracy/val"] == b["accuracy/val"]
        )  # metrics over the whole split, not rank 0's shard
        assert a["loss/val"] == pytest.approx(b["loss/val"], rel=1e-4)
    assert ddp_metrics["test"]["accuracy"] == single_metrics["test"]["accuracy"]
    assert (
        ddp.stdout.count("epoch 1/3") == 1
        and (run_dir / "trainer.log").read_text().count("epoch 1/3") == 1
    )
    # The tool's own collectives: a few per epoch and one per 25 steps, never one per step.
    for rank in (0, 1):
        record = json.loads((run_dir / f"collectives_rank{rank}.json").read_text())
        calls = sum(record["counts"].values())
        steps = single_metrics["global_step"]  # the same optimizer steps as one process
        assert record["steps"] == steps and record["epochs"] == single_metrics["epochs_run"]
        assert calls <= 8 * record["epochs"] + steps // 25, record


def test_global_validation_accuracy_equals_one_process_on_the_whole_split(tmp_path):
    from trainer.data import DataModule
    from trainer.data.synthetic import moons
    from trainer.models import MLP

    run_dir = tmp_path / "ddp"
    result = torchrun(
        ["trainer.max_epochs=2", "logger=none", "dataset.n_samples=1001"], tmp_path, run_dir
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data = DataModule(moons(n_samples=1001, seed=0), seed=0)  # 150 val samples: shards of 75 and 75
    model = MLP((2,), 1)
    model.load_state_dict(
        _weights(run_dir)
    )  # checkpoints hold the unwrapped model: loads without DDP
    x, y = data.arrays["val"]
    with torch.no_grad():
        accuracy = ((model(torch.from_numpy(x))[:, 0] > 0).numpy() == y).mean()
    assert metrics_of(run_dir)["history"][-1]["accuracy/val"] == pytest.approx(accuracy)


def test_resume_under_ddp_and_evaluate_its_checkpoint_in_one_process(tmp_path):
    run_dir = tmp_path / "ddp"
    first = torchrun(
        ["trainer.max_epochs=2", "logger=none", "model.dropout=0.1"], tmp_path, run_dir
    )
    assert first.returncode == 0, first.stderr[-3000:]
    resumed = torchrun([f"trainer.resume={run_dir}", "trainer.max_epochs=4"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    reference = torchrun(
        ["trainer.max_epochs=4", "logger=none", "model.dropout=0.1"], tmp_path, tmp_path / "ref"
    )
    assert reference.returncode == 0
    metrics = metrics_of(run_dir)
    assert metrics["epochs_run"] == 4 and metrics["resumed_from"]
    for name, value in _weights(tmp_path / "ref").items():
        assert torch.equal(_weights(run_dir)[name], value), (
            name
        )  # exact, dropout on every rank included
    evaluated = run_cli(
        ["mode=test", f"trainer.resume={run_dir}"], tmp_path, run_dir=tmp_path / "eval", check=True
    )
    assert metrics_of(tmp_path / "eval")["test"] == pytest.approx(metrics["test"])
    assert evaluated.returncode == 0


def test_killing_one_process_ends_the_job_with_a_clear_message(tmp_path):
    run_dir = tmp_path / "ddp"
    process = torchrun(
        [
            "trainer.max_epochs=100000",
            "callbacks.early_stopping.patience=100000",
            "dataset.n_samples=5000",
            "logger=none",
        ],
        tmp_path,
        run_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    while not (run_dir / "checkpoints" / "last.pt").exists() and time.time() < deadline:
        time.sleep(0.5)
    children = subprocess.run(
        ["pgrep", "-P", str(process.pid)], capture_output=True, text=True
    ).stdout.split()

    def rank_of(pid):
        with open(f"/proc/{pid}/environ") as handle:
            return next(
                (v.split("=")[1] for v in handle.read().split("\0") if v.startswith("RANK=")), None
            )

    rank_one = next(pid for pid in children if rank_of(pid) == "1")
    started = time.time()
    subprocess.run(["kill", f"-{signal.SIGKILL.value}", rank_one], check=True)
    _, stderr = process.communicate(timeout=120)
    assert time.time() - started < 90  # no hang
    assert process.returncode != 0
    assert (
        "trainer/loop.py" not in stderr
    )  # no traceback from our processes (torchrun prints its own report)
    assert "another process of this DDP job stopped" in stderr
    metrics = metrics_of(run_dir)
    assert (
        metrics["status"] == "failed"
        and "another process of this DDP job stopped" in metrics["error"]
    )
    assert torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["epoch"] >= 1


def test_strategy_errors_are_clear(tmp_path):
    alone = run_cli(["trainer.strategy=ddp", *COMMON], tmp_path)
    assert alone.returncode == 2 and "needs several processes started by torchrun" in alone.stderr
    if not torch.cuda.is_available():
        nccl = torchrun(["trainer.ddp_backend=nccl", *COMMON], tmp_path, tmp_path / "nccl")
        assert nccl.returncode != 0 and "trainer.ddp_backend=nccl needs CUDA GPUs" in nccl.stderr
    tiny = torchrun(["dataset=iris", "data.split=[0.02,0.49,0.49]", *COMMON], tmp_path, nproc=4)
    assert tiny.returncode != 0 and "fewer than the 4 processes" in tiny.stderr


def test_submitit_slurm_launcher_config_composes():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from trainer.config import register_resolvers
    from trainer.paths import config_dir

    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=slurm"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (
        launcher.timeout_min > 0 and launcher.tasks_per_node == 1 and launcher.max_num_timeout == 0
    )


@TWO_GPUS
def test_nccl_two_gpus_match_one(tmp_path):
    result = torchrun(["trainer.device=cuda", *COMMON], tmp_path, tmp_path / "ddp")
    assert result.returncode == 0, result.stderr[-3000:]
    run_cli(["trainer.device=cuda", *COMMON], tmp_path, run_dir=tmp_path / "single", check=True)
    for name, value in _weights(tmp_path / "single").items():
        torch.testing.assert_close(_weights(tmp_path / "ddp")[name], value, rtol=1e-3, atol=1e-5)
