"""Does the tool cost (almost) nothing over a hand-written loop? Time it, side by side.

    python scripts/benchmark.py                 # the full run: 5 rounds, a few minutes on 2 cores
    python scripts/benchmark.py --quick         # a few epochs, one round: checks that it all works
    python scripts/benchmark.py --out FILE.md   # where the report goes (its JSON copy beside it)

In one run, alternating the contenders round by round (each in a fresh process, every process
with the same number of torch threads, `--threads`, default 1), it trains the same model on the
same data with the same loss, optimizer, batch size and epochs:

    hand        a hand-written tight loop: tensors in memory, torch.randperm, index batches,
                zero_grad(set_to_none=True), AdamW with the fused kernel (fused=True)
    dataloader  the textbook loop with DataLoader(TensorDataset(...)), torch's default AdamW
                (the foreach kernel)
    trainer     `python -m trainer` with its defaults: callbacks (early stopping, checkpoints,
                lr logging, progress), TensorBoard logging, progress output to a non-TTY; AdamW
                with the fused kernel (what the trainer picks on a CPU or CUDA device)
    trainer-bare
                `python -m trainer callbacks=none logger=none`: the loop alone (the train and
                validation metrics, metrics.json, the log file), so that the difference to
                `trainer` is what the default callbacks and TensorBoard cost
    lightning   PyTorch Lightning with its defaults and fused AdamW (only when `lightning` is
                installed: pip install -e ".[bench]")

Per contender it reports the time per epoch (each run's median over its epochs, the first left
out as warm-up; then the median, min and max over the rounds), the ratio to the hand-written loop
(the median of the per-round ratios: rounds alternate, so a slow moment of a shared machine hits
both sides of a ratio alike), the time from process start to the first training step and its
difference to the hand loop's, the peak resident memory and its ratio, and the final validation
accuracy (they must agree: the same work is done). Then start-up: `import torch` alone, a
1-epoch `python -m trainer` run with every default, `--help` and `--cfg job`. The DataLoader
table of scripts/bench_dataloader.py follows when that script exists; a GPU section when CUDA is
available (otherwise it says it skipped).

It prints one markdown report and writes it, with a JSON copy of every number, to
outputs/benchmark/benchmark.md and outputs/benchmark/benchmark.json (or `--out FILE.md` and
FILE.json).
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

TRAINER_FOR_PARITY = [
    "param_groups.decay_bias_and_norm=true",  # AdamW on one parameter group, as in the other loops
]
TRAINER_CONTENDERS = {  # contender: its overrides (after the workload's)
    # early stopping stays on but never cuts the run short
    "trainer": ["callbacks.early_stopping.patience=1000000"],
    # the loop alone: what the difference to `trainer` costs is the default callbacks and logger
    "trainer-bare": ["callbacks=none", "logger=none"],
}
PROBE = "+callbacks.bench_probe._target_=bench_probe.Probe"
EPOCHS = {"moons_mlp": 40, "digits_cnn": 15, "large_mlp": 5}


def _env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE), env.get("PYTHONPATH", "")])
    env.pop("COLUMNS", None)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(threads)
    return env


def run_contender(
    contender: str, workload: str, epochs: int, tmp: Path, threads: int, extra=()
) -> dict:
    result_file = tmp / f"{contender}-{workload}-{time.time_ns()}.json"
    env = _env(threads)
    if contender in TRAINER_CONTENDERS:
        env["BENCH_RESULT"] = str(result_file)
        command = [
            sys.executable,
            "-m",
            "trainer",
            *WORKLOADS[workload][3],
            f"trainer.max_epochs={epochs}",
            *TRAINER_FOR_PARITY,
            *TRAINER_CONTENDERS[contender],
            PROBE,
            *extra,
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
    result["epoch_s"] = statistics.median(result["epoch_times"][1:] or result["epoch_times"])
    return result


def command_seconds(args: list[str], repeats: int, threads: int, cwd: Path) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, *args], env=_env(threads), cwd=cwd, capture_output=True, check=True
        )
        times.append(time.perf_counter() - started)
    return times


def lightning_available() -> bool:
    found = subprocess.run([sys.executable, "-c", "import lightning"], capture_output=True)
    return found.returncode == 0


def _spread(values: list[float], scale: float = 1.0, digits: int = 1, unit: str = "") -> str:
    med, lo, hi = (scale * f(values) for f in (statistics.median, min, max))
    return f"{med:.{digits}f}{unit} ({lo:.{digits}f}-{hi:.{digits}f})"


def workload_table(workload: str, epochs: int, runs: dict[str, list[dict]]) -> list[str]:
    dataset, model, batch, _ = WORKLOADS[workload]
    hand = runs["hand"]
    lines = [
        f"**{workload}**: {dataset}, {model}, batch {batch}, {epochs} epochs, {len(hand)} round(s)",
        "",
        "| contender | time / epoch: median (min-max) | vs. hand | start-up to first step "
        "| vs. hand | peak RSS | vs. hand | val accuracy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for contender, results in runs.items():
        ratio = statistics.median(r["epoch_s"] / h["epoch_s"] for r, h in zip(results, hand))
        startup = statistics.median(r["startup_s"] for r in results)
        startup_delta = statistics.median(
            r["startup_s"] - h["startup_s"] for r, h in zip(results, hand)
        )
        rss = statistics.median(r["peak_rss_mb"] for r in results)
        rss_ratio = rss / statistics.median(h["peak_rss_mb"] for h in hand)
        metric = statistics.median(r["val_metric"] for r in results)
        lines.append(
            f"| {contender} | {_spread([r['epoch_s'] for r in results], 1000, 2, ' ms')} | "
            f"{ratio:.2f}x | {startup:.2f} s | {startup_delta:+.2f} s | {rss:.0f} MB | "
            f"{rss_ratio:.2f}x | {metric:.3f} |"
        )
    return [*lines, ""]


def startup_table(times: dict[str, list[float]]) -> list[str]:
    floor = statistics.median(times["import torch"])
    lines = [
        "**start-up** (wall time of the whole command)",
        "",
        "| command | median (min-max) | vs. `import torch` |",
        "|---|---:|---:|",
    ]
    for name, values in times.items():
        ratio = statistics.median(values) / floor
        lines.append(f"| `{name}` | {_spread(values, 1, 2, ' s')} | {ratio:.2f}x |")
    return [*lines, ""]


def dataloader_section(quick: bool, threads: int) -> str:
    """scripts/bench_dataloader.py's own table (samples/s through the DataLoader path)."""
    script = HERE / "bench_dataloader.py"
    if not script.exists():
        return ""
    command = [sys.executable, str(script), *(["--quick"] if quick else [])]
    done = subprocess.run(command, env=_env(threads), capture_output=True, text=True)
    if done.returncode != 0:
        return (
            f"scripts/bench_dataloader.py failed (exit {done.returncode}):\n\n    "
            + (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        )
    return done.stdout.strip()


def gpu_section(tmp: Path, repeats: int, threads: int) -> tuple[list[str], dict]:
    """digits CNN on CUDA, fp32 against bf16 autocast; skipped without a GPU."""
    import torch

    if not torch.cuda.is_available():
        return ["GPU: none here (torch.cuda.is_available() is False): GPU rows skipped.", ""], {}
    runs: dict[str, list[dict]] = {}
    for _ in range(repeats):
        for name, precision in (("trainer cuda fp32", "32"), ("trainer cuda bf16", "bf16-mixed")):
            extra = ["trainer.device=cuda", f"trainer.precision={precision}"]
            result = run_contender("trainer", "digits_cnn", 15, tmp, threads, extra)
            runs.setdefault(name, []).append(result)
    lines = [
        f"**GPU** ({torch.cuda.get_device_name(0)}): digits CNN, batch 64, 15 epochs",
        "",
        "| contender | time / epoch: median (min-max) | val accuracy |",
        "|---|---:|---:|",
    ]
    for name, results in runs.items():
        metric = statistics.median(r["val_metric"] for r in results)
        lines.append(
            f"| {name} | {_spread([r['epoch_s'] for r in results], 1000, 2, ' ms')} | {metric:.3f} |"
        )
    return [*lines, ""], runs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="few epochs, one round: checks that it works"
    )
    parser.add_argument("--repeats", type=int, default=5, help="rounds, alternating the contenders")
    parser.add_argument(
        "--workloads", default="moons_mlp,digits_cnn", help=f"from {', '.join(WORKLOADS)}"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads in every process")
    parser.add_argument(
        "--without-dataloader",
        action="store_true",
        help="leave out scripts/bench_dataloader.py's table (it also runs on its own)",
    )
    parser.add_argument(
        "--out",
        default=str(ROOT / "outputs" / "benchmark" / "benchmark.md"),
        help="the markdown report; its JSON copy goes beside it (.json)",
    )
    args = parser.parse_args()
    for name in ("repeats", "threads"):  # counts: a 0 or a negative number is a typing error
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, not {getattr(args, name)}")
    workloads = args.workloads.split(",")
    unknown = [w for w in workloads if w not in WORKLOADS]
    if unknown:
        parser.error(f"--workloads: unknown {', '.join(unknown)}; valid: {', '.join(WORKLOADS)}")
    epochs, repeats = dict(EPOCHS), args.repeats
    if args.quick:
        epochs, repeats = {name: 2 for name in epochs}, 1  # (the first epoch is warm-up)
    contenders = ["hand", "dataloader", *TRAINER_CONTENDERS] + (
        ["lightning"] if lightning_available() else []
    )
    threads = args.threads

    results: dict[str, dict[str, list[dict]]] = {}
    startup: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for workload in workloads:
            for round_number in range(repeats):
                for contender in contenders:  # alternate, so drifts of the machine hit all alike
                    print(
                        f"[{workload}] round {round_number + 1}/{repeats}: {contender}",
                        file=sys.stderr,
                    )
                    result = run_contender(contender, workload, epochs[workload], tmp, threads)
                    results.setdefault(workload, {}).setdefault(contender, []).append(result)
        print("[start-up]", file=sys.stderr)
        commands = {
            "import torch": ["-c", "import torch"],
            "python -m trainer trainer.max_epochs=1": ["-m", "trainer", "trainer.max_epochs=1"],
            "python -m trainer --help": ["-m", "trainer", "--help"],
            "python -m trainer --cfg job": ["-m", "trainer", "--cfg", "job"],
        }
        for round_number in range(1 if args.quick else 3):
            for name, command in commands.items():  # alternating, as above
                if name.endswith("max_epochs=1"):
                    command = [*command, f"hydra.run.dir={tmp / f'startup-{round_number}'}"]
                startup.setdefault(name, []).extend(command_seconds(command, 1, threads, tmp))
        gpu_lines, gpu_runs = gpu_section(tmp, repeats, threads)

    import torch

    lines = [
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, torch {torch.__version__}, {threads} torch "
        f"thread(s) per process, CPU. Command: python scripts/benchmark.py "
        f"{' '.join(sys.argv[1:])}".rstrip(),
        "",
    ]
    for workload in workloads:
        lines += workload_table(workload, epochs[workload], results[workload])
    lines += startup_table(startup)
    loader = "" if args.without_dataloader else dataloader_section(args.quick, threads)
    if loader:
        lines += ["**DataLoader path** (scripts/bench_dataloader.py)", "", loader, ""]
    lines += gpu_lines
    report = "\n".join(lines).rstrip() + "\n"
    print(report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    data = {
        "command": ["scripts/benchmark.py", *sys.argv[1:]],
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": threads,
        },
        "epochs": {w: epochs[w] for w in workloads},
        "workloads": results,
        "startup_s": startup,
        "gpu": gpu_runs,
        "dataloader_report": loader or None,
    }
    out.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n")
    print(f"written: {out} and {out.with_suffix('.json')}", file=sys.stderr)


if __name__ == "__main__":
    main()
