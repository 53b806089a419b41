"""Measure a parallel sweep against the same sweep run sequentially.

    python scripts/sweep_speedup.py             # 6 jobs: moons MLP, 100 epochs each, 3 rounds
    python scripts/sweep_speedup.py --quick     # 6 jobs of 3 epochs, 1 round (checks that it works)

Runs `python -m trainer -m optimizer.lr=<6 values> ...` with Hydra's basic launcher (one job
after the other, in one process) and with `hydra/launcher=joblib` (jobs in parallel worker
processes, each limited to cores / jobs torch threads), checks that both sweeps produce the
same ranking, and prints the wall times and the speed-up as a markdown table. It also runs a
1-job sweep to measure the per-job overhead of the sequential sweep: the wall time beyond each
job's own run (its metrics.json `wall_time_s`) for the jobs after the first,
((T6 - sum of 6 runs) - (T1 - its run)) / 5. From the same two sweeps, the bound on any
parallel launcher: a job takes J = (T6 - T1) / 5 of a sequential sweep and the sweep's start-up
and end S = T1 - J (imports, composing, the first job's one-time costs, the summary), which a
parallel sweep pays too, so jobs spread perfectly over W workers (one per core) would take
about S + ceil(6 / W) x J: the speed-up can reach about T6 / (S + ceil(6 / W) x J), no more.
The three sweeps alternate, round after round (`--repeats`); the table gives the median, min
and max of each, and the speed-up and overhead as the median of the rounds' own figures, so
that a slow moment of a shared machine hits both sides of a ratio alike. Needs the sweeps
extra: pip install -e ".[sweeps]".
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RATES = "1e-4,3e-4,1e-3,3e-3,1e-2,3e-2"
JOBS = len(RATES.split(","))


def run_sweep(launcher: str | None, epochs: int, sweep_dir: Path, rates: str = RATES) -> float:
    command = [
        sys.executable,
        "-m",
        "trainer",
        "-m",
        f"optimizer.lr={rates}",
        f"trainer.max_epochs={epochs}",
        "callbacks.early_stopping.patience=100000",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    if launcher:
        command.append(f"hydra/launcher={launcher}")
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(
            f"sweep failed ({launcher or 'basic'}):\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        )
    return elapsed


def own_time(sweep_dir: Path) -> float:
    """The jobs' own run time (Trainer set-up to the final summary), summed."""
    files = sorted(sweep_dir.glob("*/metrics.json"))
    return sum(json.loads(f.read_text())["wall_time_s"] for f in files)


def ranking(sweep_dir: Path) -> list[tuple[str, float]]:
    summary = json.loads((sweep_dir / "summary.json").read_text())
    return [(row["job"], round(row["best"], 6)) for row in summary["runs"]]


def one_round(epochs: int, folder: Path, workers: int) -> dict:
    """The three sweeps once, one after the other: their wall times and the derived figures."""
    single = run_sweep(None, epochs, folder / "one", rates=RATES.split(",")[0])
    sequential = run_sweep(None, epochs, folder / "basic")
    parallel = run_sweep("joblib", epochs, folder / "joblib")
    overhead = ((sequential - own_time(folder / "basic")) - (single - own_time(folder / "one"))) / (
        JOBS - 1
    )
    job = (sequential - single) / (JOBS - 1)
    start_up = single - job
    return {
        "sequential": sequential,
        "parallel": parallel,
        "speedup": sequential / parallel,
        "overhead": overhead,
        "job": job,
        "start_up": start_up,
        "bound": sequential / (start_up + math.ceil(JOBS / workers) * job),
        "same": ranking(folder / "basic") == ranking(folder / "joblib"),
    }


def spread(values: list[float], unit: str, digits: int = 1) -> str:
    """`median (min-max)` of the rounds, or the value of a single round."""
    middle = f"{statistics.median(values):.{digits}f}{unit}"
    if len(values) == 1:
        return middle
    return f"{middle} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="3 epochs per job, 1 round")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the three sweeps")
    args = parser.parse_args()
    for name in ("epochs", "repeats"):  # counts: a 0 or a negative number is a typing error
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, not {getattr(args, name)}")
    epochs = 3 if args.quick else args.epochs
    repeats = 1 if args.quick else args.repeats
    cores = os.cpu_count()
    workers = min(JOBS, cores or 1)  # joblib's n_jobs=-1: one worker per core
    threads = max(1, (cores or 1) // workers)
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        for number in range(repeats):
            rounds.append(one_round(epochs, Path(tmp) / str(number), workers))
    column = [r["sequential"] for r in rounds], [r["parallel"] for r in rounds]
    print(
        f"| {JOBS}-job sweep, moons MLP, {epochs} epochs each, {cores} cores, "
        f"{repeats} round(s) | median (min-max) |"
    )
    print("|---|---:|")
    print(f"| sequential (basic launcher) | {spread(column[0], ' s')} |")
    print(
        f"| parallel (hydra/launcher=joblib, {workers} workers x {threads} thread) "
        f"| {spread(column[1], ' s')} |"
    )
    print(f"| speed-up | {spread([r['speedup'] for r in rounds], 'x', 2)} |")
    print(
        "| sequential: overhead per job after the first "
        f"| {spread([r['overhead'] for r in rounds], ' s', 2)} |"
    )
    print(
        "| sequential: a job (J), start-up and end (S) "
        f"| {spread([r['job'] for r in rounds], ' s', 2)}, "
        f"{spread([r['start_up'] for r in rounds], ' s', 2)} |"
    )
    print(
        f"| speed-up bound on {workers} workers, S + {math.ceil(JOBS / workers)} x J "
        f"| {spread([r['bound'] for r in rounds], 'x', 2)} |"
    )
    same = all(r["same"] for r in rounds)
    print(f"\nsame ranking and metrics in both sweeps: {same}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
