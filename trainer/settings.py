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
AUTO_MIN_EPOCHS = 50  # max_epochs=None trains at least this many epochs (and min_steps steps)
POSITIVE_TRAINER_KEYS = (
    "min_steps",
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

    max_epochs: int | None = None  # None: auto_epochs() (enough for min_steps optimizer steps)
    min_steps: int = 3000
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

    def auto_epochs(self, steps_per_epoch: int) -> int:
        """max_epochs=None: at least AUTO_MIN_EPOCHS epochs and at least min_steps optimizer
        steps, so that a small data set (iris: 4 steps an epoch) trains to convergence as a
        larger one does; early stopping still ends the run when validation stops improving."""
        return max(AUTO_MIN_EPOCHS, -(-self.min_steps // max(1, steps_per_epoch)))

    def check(self) -> None:
        """Every value in range, or a UserError naming the key."""
        value = self.max_epochs
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise UserError(
                f"trainer.max_epochs={value} must be a positive whole number, or null for enough "
                f"epochs to take trainer.min_steps={self.min_steps} optimizer steps.",
                key="trainer.max_epochs",
            )
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
class ModelSettings:
    """What is done to any model before training (keys of the `model:` section beside the
    model's own arguments; never passed to its constructor)."""

    init: str = "default"  # weight initialisation: INIT_SCHEMES
    weights: str | None = None  # run dir, checkpoint or state_dict file to start from
    weights_strict: bool = True  # every tensor of the file and of the model must match
    freeze: list[str] = field(default_factory=list)  # parameter name prefixes kept unchanged

    @classmethod
    def of(cls, node: Any) -> ModelSettings:
        """The settings in a `model:` config node (its other keys are the model's arguments),
        each checked; a missing key keeps its default (configs saved before these keys)."""
        from omegaconf import OmegaConf

        if OmegaConf.is_config(node):
            node = OmegaConf.to_container(node, resolve=True)
        given = {key: node[key] for key in MODEL_KEYS if node is not None and key in node}
        freeze = given.get("freeze")
        if isinstance(freeze, str):
            given["freeze"] = [freeze]
        elif freeze is None:
            given.pop("freeze", None)
        settings = cls(**given)
        settings.check()
        return settings

    def check(self) -> None:
        """Every value of a valid type and choice, or a UserError naming the key."""
        if self.init not in INIT_SCHEMES:
            raise UserError(
                f"model.init='{self.init}' is not a known initialisation; valid: "
                f"{', '.join(INIT_SCHEMES)}.{did_you_mean(str(self.init), INIT_SCHEMES)}",
                key="model.init",
            )
        if self.weights is not None and (not isinstance(self.weights, str) or not self.weights):
            raise UserError(
                f"model.weights={self.weights!r} must be a path: a run directory, a checkpoint "
                "or a state_dict file (or null).",
                key="model.weights",
            )
        if not isinstance(self.weights_strict, bool):
            raise UserError(
                f"model.weights_strict={self.weights_strict!r} must be true or false.",
                key="model.weights_strict",
            )
        freeze = list(self.freeze) if isinstance(self.freeze, (list, tuple)) else None
        if freeze is None or not all(isinstance(p, str) and p for p in freeze):
            raise UserError(
                f"model.freeze={self.freeze!r} must be a list of parameter name prefixes, "
                "e.g. model.freeze=[features] or 'model.freeze=[layers.0,layers.2]'.",
                key="model.freeze",
            )
        self.freeze = freeze


INIT_SCHEMES = (
    "default",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "orthogonal",
)
MODEL_KEYS = tuple(f.name for f in fields(ModelSettings))
# The data's sizes a model's constructor gets, for each of these parameters it declares.
SIZE_ARGUMENTS = ("input_shape", "in_features", "in_channels", "num_classes", "num_outputs")


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
