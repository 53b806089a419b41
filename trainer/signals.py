"""SIGTERM for a whole job: recorded, never fatal half-way through writing the run's files.

The Trainer handles SIGINT/SIGTERM itself while it trains (finish the step, save, stop). Around
it, during set-up and the end-of-run reporting, the CLI installs this handler: a SIGTERM that
arrives then (a cluster preemption, torchrun stopping the other ranks of a failed job) is
remembered, the run's files are completed, and the job exits with status 143. A SIGTERM before
training starts stops the run at its first step.
"""

from __future__ import annotations

import contextlib
import signal
import threading

received: list[str] = []


def _record(signum, frame) -> None:
    received.append(signal.Signals(signum).name)


@contextlib.contextmanager
def sigterm_deferred():
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received.clear()
    previous = signal.signal(signal.SIGTERM, _record)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
