"""Measure a parallel sweep against the same sweep run sequentially.

    python scripts/sweep_speedup.py             # 6 jobs: moons MLP, 100 epochs each
    python scripts/sweep_speedup.py --quick     # 6 jobs of 3 epochs (checks that it works)

Runs `python -m trainer -m optimizer.lr=<6 values> ...` once with Hydra's basic launcher
(one job after the other, in one process) and once with `hydra/launcher=joblib` (jobs in
parallel worker processes, each limited to cores / jobs torch threads), checks that both
sweeps produce the same ranking, and prints the wall times and the speed-up as a markdown
table. It also runs a 1-job sweep to measure the per-job overhead of the sequential sweep: the
wall time beyond each job's own run (its metrics.json `wall_time_s`) for the jobs after the
first, ((T6 - sum of 6 runs) - (T1 - its run)) / 5. Needs the sweeps extra:
pip install -e ".[sweeps]".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RATES = "1e-4,3e-4,1e-3,3e-3,1e-2,3e-2"


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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="3 epochs per job")
    parser.add_argument("--epochs", type=int, default=100)
    args = parser.parse_args()
    epochs = 3 if args.quick else args.epochs
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        single = run_sweep(None, epochs, tmp / "one", rates=RATES.split(",")[0])
        sequential = run_sweep(None, epochs, tmp / "basic")
        parallel = run_sweep("joblib", epochs, tmp / "joblib")
        same = ranking(tmp / "basic") == ranking(tmp / "joblib")
        jobs = len(RATES.split(","))
        overhead = ((sequential - own_time(tmp / "basic")) - (single - own_time(tmp / "one"))) / (
            jobs - 1
        )
    cores = os.cpu_count()
    workers = min(jobs, cores or 1)  # joblib's n_jobs=-1: one worker per core
    threads = max(1, (cores or 1) // workers)
    print(f"| {jobs}-job sweep, moons MLP, {epochs} epochs each, {cores} cores | wall time |")
    print("|---|---:|")
    print(f"| sequential (basic launcher) | {sequential:.1f} s |")
    print(
        f"| parallel (hydra/launcher=joblib, {workers} workers x {threads} thread) | {parallel:.1f} s |"
    )
    print(f"| speed-up | {sequential / parallel:.2f}x |")
    print(f"| sequential: overhead per job after the first | {overhead:.2f} s |")
    print(f"\nsame ranking and metrics in both sweeps: {same}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
