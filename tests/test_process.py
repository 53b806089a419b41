"""What the CLI does to its own process: the cycle collector through start-up, a joblib sweep's
idle workers at the end."""

import gc
import os
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
