"""Every setting the tool owns, with its default, in one place.

These dataclasses are the Python API's defaults (`Trainer(**settings)` builds a
`TrainerSettings`) and the schemas the command line's config is checked against; the YAML under
conf/ repeats the same values with a comment each, and a test compares the two key by key.
No torch here: the command line imports this before Hydra composes anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from .errors import UserError, did_you_mean

DEFAULT_SPLIT = (0.7, 0.15, 0.15)
POSITIVE_TRAINER_KEYS = (
    "max_epochs",
    "batch_size",
    "eval_batch_size",
    "accumulate_grad_batches",
    "check_finite_every_n_steps",
)


@dataclass
class GradClip:
    norm: float | None = None  # clip the total gradient norm to this
    value: float | None = None  # clip every gradient element to [-value, value]


@dataclass
class TrainerSettings:
    """The training loop's settings (conf/trainer/default.yaml)."""

    max_epochs: int = 50
    batch_size: int = 32
    eval_batch_size: int = 1024
    device: str = "auto"
    precision: str = "32"
    seed: int = 42
    monitor: str = "loss/val"
    mode: str = "auto"
    grad_clip: GradClip = field(default_factory=GradClip)
    accumulate_grad_batches: int = 1
    on_nonfinite: str = "stop"
    check_finite_every_n_steps: int = 25
    detect_anomaly: bool = False
    deterministic: bool = False
    fast_dev_run: bool = False
    overfit_batches: int = 0
    limit_train_batches: Any = None
    limit_val_batches: Any = None
    strategy: str = "auto"
    ddp_backend: str = "auto"
    resume: str | None = None
    num_threads: int | None = None
    trust_checkpoint_code: bool = False

    @classmethod
    def from_keywords(cls, **given: Any) -> TrainerSettings:
        """Settings from keyword arguments (the Python API), each name checked."""
        names = [f.name for f in fields(cls)]
        for name in given:
            if name not in names:
                raise UserError(
                    f"trainer.{name} is not a setting of the Trainer; valid: {', '.join(names)}."
                    f"{did_you_mean(name, names)}",
                    key=f"trainer.{name}",
                )
        clip = given.pop("grad_clip", None)
        settings = cls(**given)
        if clip is not None:
            settings.grad_clip = clip if isinstance(clip, GradClip) else GradClip(**dict(clip))
        if settings.fast_dev_run:
            settings.max_epochs = 1
        settings.check()
        return settings

    def check(self) -> None:
        """Every value in range, or a UserError naming the key."""
        for key in POSITIVE_TRAINER_KEYS:
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(
                    f"trainer.{key}={value} must be a positive whole number.", key=f"trainer.{key}"
                )
        _choice("trainer.mode", self.mode, ("auto", "min", "max"))
        _choice("trainer.on_nonfinite", self.on_nonfinite, ("stop", "skip"))
        for key, value in (("norm", self.grad_clip.norm), ("value", self.grad_clip.value)):
            if value is not None and not value > 0:
                raise UserError(
                    f"trainer.grad_clip.{key} must be positive (or null for no clipping), "
                    f"got {value}.",
                    key=f"trainer.grad_clip.{key}",
                )
        if self.overfit_batches < 0:
            raise UserError(
                f"trainer.overfit_batches must be >= 0, got {self.overfit_batches}.",
                key="trainer.overfit_batches",
            )
        if self.num_threads is not None and self.num_threads < 1:
            raise UserError(
                f"trainer.num_threads={self.num_threads} must be >= 1 (or null).",
                key="trainer.num_threads",
            )
        for key in ("limit_train_batches", "limit_val_batches"):
            batch_limit(getattr(self, key), 1, f"trainer.{key}")  # validates


@dataclass
class DataSettings:
    """How every data set is split and preprocessed (the `data:` section)."""

    split: list[float] = field(default_factory=lambda: list(DEFAULT_SPLIT))
    seed: int = 0
    standardize: bool = True
    standardize_targets: bool = True


@dataclass
class ParamGroupSettings:
    """How the model's parameters are grouped for the optimizer (the `param_groups:` section)."""

    decay_bias_and_norm: bool = False
    module_lr: dict[str, float] | None = None


@dataclass
class PredictSettings:
    input: str | None = None
    output: str | None = None
    overwrite: bool = False
    unknown_category: str = "error"


@dataclass
class LRFindSettings:
    min_lr: float = 1e-7
    max_lr: float = 10.0
    num_steps: int = 100
    divergence_factor: float = 4.0


SECTIONS = {
    "trainer": TrainerSettings,
    "data": DataSettings,
    "param_groups": ParamGroupSettings,
    "predict": PredictSettings,
    "lr_find": LRFindSettings,
}


def batch_limit(value: Any, total: int, key: str) -> int | None:
    """`limit_*_batches`: a whole number of batches, a fraction in (0, 1], or null for all."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(
            f"{key} must be a number of batches or a fraction in (0, 1], got {value!r}.", key=key
        )
    if isinstance(value, float) and value <= 1.0:
        if value <= 0:
            raise UserError(f"{key} must be positive, got {value}.", key=key)
        return max(1, int(total * value))
    if value < 1 or value != int(value):
        raise UserError(
            f"{key} must be a whole number >= 1 or a fraction in (0, 1], got {value}.", key=key
        )
    return int(value)


def _choice(key: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        options = f"{', '.join(valid[:-1])} or {valid[-1]}"
        raise UserError(f"{key}='{value}' is not valid; choose {options}.", key=key)
