"""Where and how torch runs: the device (`auto` is CUDA, then Apple MPS, then the CPU), threads,
determinism and seeds."""

from __future__ import annotations

import torch

from .errors import UserError


def available_devices() -> list[str]:
    found = ["cpu"]
    if torch.cuda.is_available():
        found.insert(0, "cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        found.insert(0 if "cuda" not in found else 1, "mps")
    return found


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """The torch device for `trainer.device` (auto | cpu | cuda | cuda:N | mps)."""
    name = str(name).lower()
    available = available_devices()
    if name == "auto":
        name = available[0]
    kind = name.split(":")[0]
    if kind not in ("cpu", "cuda", "mps"):
        raise UserError(
            f"trainer.device='{name}' is not a device; valid: auto, cpu, cuda, cuda:N, mps.",
            key="trainer.device",
        )
    if kind not in available:
        raise UserError(
            f"trainer.device={name}: no {kind.upper()} device on this machine. "
            f"Available: {', '.join(available)} (or auto).",
            key="trainer.device",
        )
    if kind == "cuda":
        index = int(name.split(":")[1]) if ":" in name else local_rank
        if index >= torch.cuda.device_count():
            raise UserError(
                f"trainer.device={name}: this machine has {torch.cuda.device_count()} CUDA device(s).",
                key="trainer.device",
            )
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return torch.device(kind)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (all devices): the same seed gives the same run."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def configure_torch(num_threads: int | None, deterministic: bool) -> None:
    """Process-wide torch settings a run asks for: CPU threads, deterministic algorithms."""
    import os

    if num_threads:
        torch.set_num_threads(int(num_threads))
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)


def anomaly_detection(enabled: bool):
    """autograd's anomaly detection (names the op that produced a NaN; slow), or nothing."""
    import contextlib

    return torch.autograd.detect_anomaly() if enabled else contextlib.nullcontext()
