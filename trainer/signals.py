"""SIGTERM (and SIGHUP, a closed terminal) for a whole job: recorded, never fatal half-way
through writing the run's files.

The Trainer handles SIGINT/SIGTERM itself while it trains (finish the step, save, stop). Around
it, during set-up and the end-of-run reporting, the CLI installs this handler: a SIGTERM that
arrives then (a cluster preemption, torchrun stopping the other ranks of a failed job) is
remembered, the run's files are completed, and the job exits with status 143. A SIGTERM before
training starts stops the run at its first step.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading

received: list[str] = []  # SIGTERM/SIGHUPs deferred by sigterm_deferred()


def _record(signum, frame) -> None:
    received.append(signal.Signals(signum).name)


@contextlib.contextmanager
def sigterm_deferred():
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received.clear()
    deferred = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {number: signal.signal(number, _record) for number in deferred}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


class StopSignals:
    """While training: SIGINT, SIGTERM and SIGHUP ask the run to finish the current optimizer
    step, save and stop (`received` names the signal); a second SIGINT aborts at once."""

    SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = name
        if os.environ.get("RANK", "0") == "0":  # one warning for a DDP job: rank 0's
            logging.getLogger("trainer").warning(
                "%s received: stopping after the current step and saving checkpoints/last.pt "
                "(Ctrl-C again to abort at once)",
                name,
            )

    def __enter__(self) -> StopSignals:
        if received:  # a SIGTERM arrived before training began
            self.received = received[-1]
        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                number = getattr(signal, name, None)
                if number is not None:
                    self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}
