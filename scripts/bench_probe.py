"""A measuring callback for scripts/benchmark.py: when the first training step starts and when
each epoch ends (after all of the trainer's own epoch-end work of the previous epoch), plus the
peak memory. It adds no per-batch hook, so it does not change what it measures.

Used from the command line: +callbacks.bench_probe._target_=bench_probe.Probe with scripts/ on
PYTHONPATH, and BENCH_RESULT=<file.json>.
"""

from __future__ import annotations

import json
import os
import resource
import time

from trainer.callbacks import Callback


class Probe(Callback):
    def __init__(self) -> None:
        self.first_step = None
        self.epoch_ends: list[float] = []

    def on_train_epoch_start(self, run) -> None:
        if self.first_step is None:
            self.first_step = time.time()  # wall clock: compared with the launcher's start time
            self.epoch_ends.append(time.perf_counter())

    def on_epoch_end(self, run, logs) -> None:
        self.epoch_ends.append(time.perf_counter())

    def on_run_end(self, run, summary) -> None:
        monitor = "accuracy/val" if run.data.spec.task != "regression" else "r2/val"
        result = {
            "first_step": self.first_step,
            "epoch_times": [b - a for a, b in zip(self.epoch_ends, self.epoch_ends[1:])],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "val_metric": summary["history"][-1][monitor],
        }
        with open(os.environ["BENCH_RESULT"], "w") as handle:
            json.dump(result, handle)
