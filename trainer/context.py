"""What a callback sees of a run, and the few things it may do: callbacks get a `RunContext`,
never the Trainer itself, so the Trainer can change inside without breaking them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .data.module import DataModule
    from .evaluation import Predictions
    from .files import BackgroundWriter
    from .record import RunRecord
    from .state import TrainingState


@dataclass
class RunConfig:
    """The run's configuration as it was composed: the resolved config (saved with every
    checkpoint), the flat hyper-parameters for TensorBoard's HParams table, and which of them a
    sweep varies."""

    resolved: dict[str, Any] = field(default_factory=dict)
    hparams: dict[str, Any] = field(default_factory=dict)
    varied: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, config: RunConfig | dict | None) -> RunConfig:
        """A RunConfig as it is, or one around a resolved config (a plain dict)."""
        return config if isinstance(config, RunConfig) else cls(resolved=dict(config or {}))


@dataclass
class RunContext:
    """Given to every callback hook. `state` holds the model, optimizer and counters; `record` the
    history, the best epoch and the status; `files` writes in order on the background thread and
    is None where this process writes nothing (other DDP ranks, fast_dev_run)."""

    state: TrainingState
    record: RunRecord
    data: DataModule
    predictions: Predictions
    config: RunConfig
    run_dir: Path
    files: BackgroundWriter | None
    is_main_process: bool
    checkpoint: Callable[[], dict]  # the state to save; collective under DDP: call it on every rank
    request_stop: Callable[[str], None]  # stop after this epoch, for this reason
    log_step: Callable[[dict[str, float]], None]  # per-step values to the loggers (x: the step)
