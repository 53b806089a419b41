"""What the CLI does to its own process: the cycle collector through start-up, a joblib sweep's
idle workers at the end, Hydra's compositions of a sequential sweep's jobs."""

import gc
import os
import subprocess
import sys
import time

import pytest


@pytest.fixture
def collector():
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if enabled:
        gc.enable()
    else:
        gc.disable()


def test_the_heap_settles_once_after_start_up_and_is_left_alone_after(collector):
    from trainer.run import _settle_heap

    gc.unfreeze()
    gc.disable()  # as cli.main and a worker's first job leave it through start-up
    _settle_heap()
    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    assert frozen > 1000  # the interpreter's and the test run's objects, out of later scans
    gc.unfreeze()
    _settle_heap()  # collector on: a later job in the same process changes nothing
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_a_joblib_sweeps_idle_workers_are_ended_not_waited_for():
    pytest.importorskip("joblib")
    from joblib import Parallel, delayed

    from trainer.cli import _stop_idle_workers

    pids = set(Parallel(n_jobs=2, backend="loky")(delayed(os.getpid)() for _ in range(4)))
    assert os.getpid() not in pids and pids
    _stop_idle_workers()
    deadline = time.monotonic() + 10
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        for pid in list(alive):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                alive.discard(pid)
        time.sleep(0.05)
    assert alive == set()


COUNT_COMPOSITIONS = """
import collections, io, contextlib, sys
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from trainer import cli

composed = collections.Counter()
original = ConfigLoaderImpl.load_configuration


def load_configuration(self, config_name, overrides, run_mode, **kwargs):
    composed[" ".join(o for o in overrides if o.startswith("optimizer.lr="))] += 1
    return original(self, config_name, overrides, run_mode, **kwargs)


ConfigLoaderImpl.load_configuration = load_configuration
with contextlib.redirect_stdout(io.StringIO()):
    code = cli.run_cli(sys.argv[1:])
print(code, sorted(composed.items()))
"""


def test_a_sequential_sweep_composes_each_jobs_config_once(tmp_path):
    """Hydra's sweeper composed every job's config to check it, then its basic launcher composed
    each again to run it (90 ms a job); the check's configs now run the jobs."""
    from helpers import cli_env

    sweep = tmp_path / "sweep"
    args = ["-m", "optimizer.lr=0.01,0.02", "trainer.max_epochs=1", "logger=none"]
    result = subprocess.run(
        [sys.executable, "-c", COUNT_COMPOSITIONS, *args, f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    # the sweep's own config, then one composition per job (it was two)
    expected = (
        "0 [('optimizer.lr=0.01', 1), ('optimizer.lr=0.01,0.02', 1), ('optimizer.lr=0.02', 1)]"
    )
    assert result.stdout.strip().splitlines()[-1] == expected
    import yaml

    for number, rate in enumerate((0.01, 0.02)):
        job = sweep / f"{number}_optimizer.lr={rate}" / ".hydra"
        assert yaml.safe_load((job / "config.yaml").read_text())["optimizer"]["lr"] == rate
        hydra = yaml.safe_load((job / "hydra.yaml").read_text())["hydra"]["job"]
        assert (hydra["num"], hydra["id"]) == (number, str(number))
