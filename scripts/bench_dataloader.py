"""What does the DataLoader path cost? Training throughput on images, side by side.

    python scripts/bench_dataloader.py               # 4,000 images 3x32x32, 4 epochs, 3 rounds
    python scripts/bench_dataloader.py --quick       # 256 images, 2 epochs, 1 round: it works
    python scripts/bench_dataloader.py --repeats 5 --json out.json

It writes one .npz of random images (two classes) and trains `model=cnn` on it with the real CLI
(`python -m trainer dataset=arrays ...`), once per path:

    in memory        dataset.loader=memory: the split is one tensor, batches indexed on the device
    dataloader, 0    dataset.loader=dataloader dataset.num_workers=0
    dataloader, 2    dataset.loader=dataloader dataset.num_workers=2
    hand DataLoader, 0 / 2 workers
                     a hand-written loop: DataLoader(TensorDataset(x, y), shuffle=True,
                     num_workers=0 or 2), the same CNN, loss, optimizer and batch size, in this
                     process

The paths alternate round by round (`--repeats`), so a slow moment of a shared machine hits
them alike. A round's figure for a path is the median of its training epochs' samples/s after
the first (warm-up) epoch (the CLI's `throughput/samples_per_s` in metrics.json; the hand loop
timed the same way). Each row shows the median over the rounds (min-max), its ratio to the
in-memory path, and the time per sample against the hand-written DataLoader loop's with as many
workers (the in-memory path against 0 workers; the median of the rounds' own ratios; 1.10x: 10%
slower than the hand loop). It prints a markdown table and writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PATHS = {  # name: (overrides, the workers of the hand loop it is compared with)
    "in memory": (["dataset.loader=memory"], 0),
    "dataloader, 0 workers": (["dataset.loader=dataloader", "dataset.num_workers=0"], 0),
    "dataloader, 2 workers": (["dataset.loader=dataloader", "dataset.num_workers=2"], 2),
}
HAND = {workers: f"hand DataLoader, {workers} workers" for workers in (0, 2)}
BASELINE = {name: HAND[workers] for name, (_, workers) in PATHS.items()} | {
    name: name for name in HAND.values()
}  # each row's time per sample is compared with this hand loop's


def write_images(path: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    y = np.arange(n) % 2
    x = rng.integers(0, 200, size=(n, 3, 32, 32)).astype(np.uint8) + (y * 40)[:, None, None, None]
    np.savez(path, x=x.astype(np.uint8), y=y)


def run_cli(data: Path, extra: list[str], epochs: int, batch: int, tmp: Path) -> list[float]:
    run_dir = tmp / f"run-{time.time_ns()}"
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    command = [
        sys.executable, "-m", "trainer", "dataset=arrays", f"dataset.path={data}", "model=cnn",
        f"trainer.max_epochs={epochs}", f"trainer.batch_size={batch}", "logger=none",
        "callbacks.early_stopping.patience=1000000", f"hydra.run.dir={run_dir}", *extra,
    ]  # fmt: skip
    subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    history = json.loads((run_dir / "metrics.json").read_text())["history"]
    return [h["throughput/samples_per_s"] for h in history]


def hand_loop(data: Path, epochs: int, batch: int, workers: int) -> list[float]:
    """The textbook loop over the same train split size, same CNN, loss and optimizer."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from trainer.models import CNN

    torch.manual_seed(0)
    with np.load(data) as arrays:
        x = torch.as_tensor(arrays["x"], dtype=torch.float32)
        y = torch.as_tensor(arrays["y"], dtype=torch.float32)
    n_train = int(round(0.7 * len(x)))
    x, y = (x[:n_train] - x.mean()) / x.std(), y[:n_train]
    model = CNN((3, 32, 32), 1, channels=[16, 32], hidden_size=64)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    loader = DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=True, num_workers=workers)
    rates = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        for xb, yb in loader:
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(xb).squeeze(1), yb).backward()
            optimizer.step()
        rates.append(n_train / (time.perf_counter() - start))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256 images, 2 epochs, 1 round")
    parser.add_argument("--repeats", type=int, default=3, help="rounds, alternating the paths")
    parser.add_argument("--json", type=Path, default=None, help="write the numbers here")
    args = parser.parse_args()
    for name in ("repeats",):  # counts: a 0 or a negative number is a typing error
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, not {getattr(args, name)}")
    n, epochs, batch = (256, 2, 64) if args.quick else (4000, 4, 64)
    repeats = 1 if args.quick else args.repeats
    rates: dict[str, list[float]] = {}  # every round's epochs, one after the other
    rounds: dict[str, list[float]] = {}  # each round's median
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "images.npz"
        write_images(data, n)
        for _ in range(repeats):
            measured = {
                name: run_cli(data, extra, epochs, batch, Path(tmp))
                for name, (extra, _) in PATHS.items()
            }
            for workers, name in HAND.items():
                measured[name] = hand_loop(data, epochs, batch, workers)
            for name, values in measured.items():
                rates.setdefault(name, []).extend(values)
                rounds.setdefault(name, []).append(statistics.median(values[1:] or values))
    median = {k: statistics.median(v) for k, v in rounds.items()}
    lines = [
        f"DataLoader path on {n:,} images 3x32x32 (train {int(round(0.7 * n)):,}), model=cnn, "
        f"batch {batch}, epochs 2-{epochs} of each run, {repeats} alternating round(s):",
        "",
        "| path | samples/s: median (min-max) | vs. in memory "
        "| time per sample vs. hand DataLoader (same workers) |",
        "|---|---:|---:|---:|",
    ]
    for name, values in rounds.items():
        hand = rounds[BASELINE[name]]
        slower = statistics.median(h / v for h, v in zip(hand, values))
        lines.append(
            f"| {name} | {median[name]:,.0f} ({min(values):,.0f}-{max(values):,.0f}) | "
            f"{median[name] / median['in memory']:.2f}x | {slower:.2f}x |"
        )
    print("\n".join(lines))
    if args.json is not None:
        payload = {"images": n, "epochs": epochs, "batch_size": batch, "repeats": repeats}
        payload |= {"samples_per_s": rates, "rounds": rounds, "median": median}
        args.json.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
