"""Numerical precision: fp32, bf16 autocast (CPU and CUDA), fp16 autocast with a GradScaler (CUDA)."""

from __future__ import annotations

import contextlib

import torch

from .errors import UserError

ALIASES = {
    "32": "32",
    "32-true": "32",
    "fp32": "32",
    "bf16-mixed": "bf16-mixed",
    "bf16": "bf16-mixed",
    "16-mixed": "16-mixed",
    "16": "16-mixed",
    "fp16": "16-mixed",
}


class Precision:
    """Wraps forward passes in autocast and backward/step in loss scaling where fp16 needs it."""

    def __init__(self, precision: str | int, device: torch.device) -> None:
        name = ALIASES.get(str(precision).lower())
        if name is None:
            raise UserError(
                f"trainer.precision={precision} is not valid; choose 32, bf16-mixed or 16-mixed.",
                key="trainer.precision",
            )
        if name == "16-mixed" and device.type != "cuda":
            raise UserError(
                f"trainer.precision=16-mixed needs a CUDA GPU (fp16 with loss scaling); this run is on "
                f"{device.type}. Use trainer.precision=bf16-mixed, which works on CPUs too, or 32.",
                key="trainer.precision",
            )
        if name == "bf16-mixed" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise UserError(
                "trainer.precision=bf16-mixed: this GPU has no bfloat16 support; use 16-mixed.",
                key="trainer.precision",
            )
        self.name = name
        self.device_type = device.type
        self.dtype = {"32": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}[name]
        self.scaler = torch.amp.GradScaler("cuda") if name == "16-mixed" else None

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Bring gradients to their true scale (before clipping or reading their norm)."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is not None:
            self.scaler.step(optimizer)  # skips the step if the scaled gradients overflowed
            self.scaler.update()
        else:
            optimizer.step()

    def state_dict(self) -> dict:
        return {} if self.scaler is None else self.scaler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
