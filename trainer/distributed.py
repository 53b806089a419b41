"""Multi-process training with PyTorch's DistributedDataParallel, started by torchrun.

One `Distributed` object tells the loop who it is (rank, world size) and does the few
collectives the tool needs: reductions of epoch metrics and agreement on stopping. None of
them runs per step, beyond DDP's own gradient all-reduce.
"""

from __future__ import annotations

import datetime
import os
from typing import TYPE_CHECKING

from .errors import UserError

if TYPE_CHECKING:
    import torch

# torch is imported inside the functions: the CLI asks launched_by_torchrun() before Hydra
# starts, where importing torch would slow down --help and --cfg.


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def env_rank() -> int:
    return int(os.environ.get("RANK", "0"))


def init_process_group(backend: str = "auto", timeout_s: float = 300.0) -> None:
    """Join torchrun's process group. auto: gloo for CPU tensors, plus nccl for CUDA tensors
    where CUDA is available."""
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return
    if backend not in ("auto", "gloo", "nccl"):
        raise UserError(
            f"trainer.ddp_backend='{backend}' is not valid; choose auto, gloo or nccl.",
            key="trainer.ddp_backend",
        )
    if backend == "nccl" and not torch.cuda.is_available():
        raise UserError(
            "trainer.ddp_backend=nccl needs CUDA GPUs, and this machine has none. Use "
            "trainer.ddp_backend=gloo (or auto) to train with several CPU processes.",
            key="trainer.ddp_backend",
        )
    if backend == "auto":
        backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))


def peer_failure(error: BaseException) -> str | None:
    """If `error` says another process of the job went away, a sentence that says so."""
    text = str(error)
    signs = (
        "Connection reset by peer",
        "Connection closed by peer",
        "Broken pipe",
        "NCCL",
        "gloo",
        "ProcessGroup",
        "Socket Timeout",
        "timed out",
        "DistBackendError",
    )
    try:
        import torch.distributed as dist

        is_dist_error = isinstance(error, getattr(dist, "DistError", ()))
    except ImportError:
        is_dist_error = False
    if not (is_dist_error or (isinstance(error, RuntimeError) and any(s in text for s in signs))):
        return None
    cause = text.strip().splitlines()[0]
    if cause.startswith("["):  # drop the C++ source location
        cause = cause.split("] ", 1)[-1]
    cause = cause.split(". ")[0].rstrip(".")  # and the library's advice that follows
    return (
        f"another process of this DDP job stopped or cannot be reached ({cause[:200]}), so this one "
        "stops too. checkpoints/last.pt keeps the last finished epoch; after fixing the cause, start "
        "the job again with trainer.resume=<run dir>."
    )


class Distributed:
    """Rank-awareness for the loop; a single process is world size 1 and every call is a no-op."""

    def __init__(self, strategy: str = "auto", backend: str = "auto") -> None:
        if strategy not in ("auto", "single", "ddp"):
            raise UserError(
                f"trainer.strategy='{strategy}' is not valid; choose auto, single or ddp.",
                key="trainer.strategy",
            )
        wants_ddp = strategy == "ddp" or (strategy == "auto" and launched_by_torchrun())
        if wants_ddp and not launched_by_torchrun():
            raise UserError(
                "trainer.strategy=ddp needs several processes started by torchrun, e.g. "
                "'torchrun --nproc_per_node=2 -m trainer trainer.strategy=ddp'.",
                key="trainer.strategy",
            )
        if strategy == "single" and launched_by_torchrun():
            raise UserError(
                "trainer.strategy=single, but torchrun started several processes; use "
                "trainer.strategy=ddp (or auto) under torchrun.",
                key="trainer.strategy",
            )
        self.active = wants_ddp
        if self.active:
            init_process_group(backend)
        import torch.distributed as dist

        self.rank = dist.get_rank() if self.active else 0
        self.world_size = dist.get_world_size() if self.active else 1
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0")) if self.active else 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def check_device(self, device: torch.device, n_train: int) -> None:
        import torch

        if not self.active:
            return
        if device.type == "cuda" and torch.cuda.device_count() < int(
            os.environ.get("LOCAL_WORLD_SIZE", "1")
        ):
            raise UserError(
                f"DDP with {os.environ.get('LOCAL_WORLD_SIZE')} processes on this node needs one "
                f"GPU each; {torch.cuda.device_count()} found.",
                key="trainer.strategy",
            )
        if n_train < self.world_size:
            raise UserError(
                f"the training split has {n_train} samples, fewer than the {self.world_size} "
                "processes; use fewer processes or more data.",
                key="trainer.strategy",
            )

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        if not self.active:
            return model
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.active:
            import torch.distributed as dist

            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank if it is true on any rank (one small collective)."""
        if not self.active:
            return flag
        import torch
        import torch.distributed as dist

        value = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def all_gather_object(self, obj):
        if not self.active:
            return [obj]
        import torch.distributed as dist

        gathered = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as dist

            dist.barrier()


def shutdown(succeeded: bool = False) -> None:
    """Destroy the process group (on success, errors and signals alike). After a success the
    processes first meet at a barrier: destroying gloo's group while a peer still talks to it
    made about 1 job in 4 end with "terminate called without an active exception"."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        try:
            if succeeded:
                dist.barrier()
            dist.destroy_process_group()
        except Exception:
            pass
