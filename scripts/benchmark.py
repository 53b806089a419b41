"""Does the tool cost (almost) nothing over a hand-written loop? Time it, side by side.

    python scripts/benchmark.py                 # the full run: a few minutes on 2 cores
    python scripts/benchmark.py --quick         # a few epochs each: checks that everything works
    python scripts/benchmark.py --out bench.md  # also write the markdown table to a file

In one run, alternating the contenders round by round (each in a fresh process), it trains the
same model on the same data with the same loss, optimizer, batch size and epochs:

    hand        a hand-written tight loop: tensors in memory, torch.randperm, index batches,
                zero_grad(set_to_none=True), fused AdamW
    dataloader  the textbook loop with DataLoader(TensorDataset(...))
    trainer     `python -m trainer` with its defaults: callbacks (early stopping, checkpoints,
                lr logging, progress), TensorBoard logging, progress output to a non-TTY
    lightning   PyTorch Lightning with its defaults (only when `lightning` is installed)

Per contender it reports the median time per epoch (every contender validates each epoch; the
first epoch is left out as warm-up), its ratio to the hand-written loop, the time from process
start to the first training step, the peak resident memory and the final validation accuracy
(they must agree: the same work is done). It also times `python -m trainer --help` and
`--cfg job`, and `import torch` alone as the floor for start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from bench_contenders import WORKLOADS  # noqa: E402

TRAINER_DEFAULTS_FOR_PARITY = [
    "param_groups.decay_bias_and_norm=true",  # AdamW on one parameter group, as in the other loops
    "callbacks.early_stopping.patience=1000000",  # early stopping stays on but never cuts the run short
    "+callbacks.bench_probe._target_=bench_probe.Probe",
]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE), env.get("PYTHONPATH", "")])
    env.pop("COLUMNS", None)
    return env


def run_contender(contender: str, workload: str, epochs: int, tmp: Path) -> dict:
    result_file = tmp / f"{contender}-{workload}-{time.time_ns()}.json"
    env = _env()
    if contender == "trainer":
        env["BENCH_RESULT"] = str(result_file)
        command = [
            sys.executable,
            "-m",
            "trainer",
            *WORKLOADS[workload][3],
            f"trainer.max_epochs={epochs}",
            *TRAINER_DEFAULTS_FOR_PARITY,
            f"hydra.run.dir={tmp / result_file.stem}",
        ]
    else:
        command = [
            sys.executable,
            str(HERE / "bench_contenders.py"),
            contender,
            workload,
            str(epochs),
            str(result_file),
        ]
    started = time.time()
    done = subprocess.run(command, cwd=tmp, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(
            f"{contender} failed on {workload}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    result = json.loads(result_file.read_text())
    result["startup_s"] = result["first_step"] - started
    return result


def command_seconds(args: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, *args], env=_env(), capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def lightning_available() -> bool:
    return (
        subprocess.run([sys.executable, "-c", "import lightning"], capture_output=True).returncode
        == 0
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="few epochs, one round: checks that it works"
    )
    parser.add_argument("--repeats", type=int, default=3, help="rounds, alternating the contenders")
    parser.add_argument(
        "--workloads", default="moons_mlp,digits_cnn", help=f"from {', '.join(WORKLOADS)}"
    )
    parser.add_argument("--out", help="write the markdown report here too")
    args = parser.parse_args()
    epochs = {"moons_mlp": 40, "digits_cnn": 15, "large_mlp": 5}
    repeats = args.repeats
    if args.quick:
        epochs, repeats = {name: 3 for name in epochs}, 1
    contenders = ["hand", "dataloader", "trainer"] + (
        ["lightning"] if lightning_available() else []
    )

    results: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for workload in args.workloads.split(","):
            for round_number in range(repeats):
                for contender in contenders:  # alternate, so drifts of the machine hit all alike
                    print(
                        f"[{workload}] round {round_number + 1}/{repeats}: {contender}",
                        file=sys.stderr,
                    )
                    result = run_contender(contender, workload, epochs[workload], Path(tmp))
                    results.setdefault((workload, contender), []).append(result)
        floor = command_seconds(["-c", "import torch"], 1 if args.quick else 3)
        help_s = command_seconds(["-m", "trainer", "--help"], 1 if args.quick else 3)
        cfg_s = command_seconds(["-m", "trainer", "--cfg", "job"], 1 if args.quick else 3)

    import torch

    lines = [
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, torch {torch.__version__}, CPU. "
        f"Median of {repeats} round(s); the first epoch of each run is warm-up and left out.",
        "",
    ]
    for workload in args.workloads.split(","):
        dataset, model, batch, _ = WORKLOADS[workload]
        lines += [
            f"**{workload}**: {dataset}, {model}, batch {batch}, {epochs[workload]} epochs",
            "",
            "| contender | time / epoch | vs. hand-written | start-up to first step | peak RSS | val accuracy |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        hand = statistics.median(
            t for r in results[(workload, "hand")] for t in r["epoch_times"][1:]
        )
        for contender in contenders:
            runs = results[(workload, contender)]
            epoch = statistics.median(t for r in runs for t in r["epoch_times"][1:])
            startup = statistics.median(r["startup_s"] for r in runs)
            rss = statistics.median(r["peak_rss_mb"] for r in runs)
            metric = statistics.median(r["val_metric"] for r in runs)
            lines.append(
                f"| {contender} | {epoch * 1000:.1f} ms | {epoch / hand:.2f}x | {startup:.2f} s | "
                f"{rss:.0f} MB | {metric:.3f} |"
            )
        lines.append("")
    lines += [
        f"`import torch` alone: {floor:.2f} s; `python -m trainer --help`: {help_s:.2f} s; "
        f"`python -m trainer --cfg job`: {cfg_s:.2f} s."
    ]
    report = "\n".join(lines)
    print(report)
    if args.out:
        Path(args.out).write_text(report + "\n")


if __name__ == "__main__":
    main()
