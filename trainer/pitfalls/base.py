"""What a pitfall is: one component of the run chosen differently at set-up, and a callback that
measures what that did. The base class is the right way (`none`): every set-up hook returns
the component it is given, so a run without a pitfall runs exactly the code it always ran.

    set-up (prepare.place)      splits(tensors)           the data each split holds
                                batches(batches)          the training batches' order
                                rates(optimizer, sched)   the learning rates
                                step_class                the training step (zero_grad)
                                evaluation_mode(model)    the context validation and test run in
                                attach(evaluator)         to measure against the right way
    during the run              callback hooks            numbers for metrics.json's `pitfall`
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..callbacks.base import Callback, named_callbacks
from ..evaluation import eval_mode
from ..step import TrainStep

LOG_PREFIX = "pitfall/"  # the per-epoch values a pitfall adds to the history and TensorBoard


class Pitfall(Callback):
    """The right way (`+pitfall=none`, the same as no pitfall): a subclass makes one classic
    training-loop mistake on purpose and says what it did (`report`, metrics.json's
    `pitfall`)."""

    name = "none"
    what = "nothing: the training loop as it should be"
    step_class = TrainStep

    def __init__(self) -> None:
        self.report: dict[str, Any] = {"name": self.name, "what": self.what}
        self.evaluator = None  # evaluation.SplitEvaluator, set by `attach`
        self._logs: dict[str, float] = {}  # this epoch's pitfall/* values

    @property
    def active(self) -> bool:
        return self.name != "none"

    def banner(self) -> str:
        """The start panel's line."""
        note = self.report.get("note")  # e.g. what would make the mistake visible
        return f"{self.name} — this run repeats a classic mistake on purpose: {self.what}" + (
            f". Note: {note}" if note else ""
        )

    # -- set-up (prepare.place): the right components, unchanged
    def splits(self, tensors: dict) -> dict:
        return tensors

    def batches(self, batches):
        return batches

    def rates(self, optimizer, scheduler):
        """(after the optimizer is built, before the schedule) the scheduler factory to use."""
        return scheduler

    evaluation_mode = staticmethod(eval_mode)  # (model) -> the context evaluation runs in

    def attach(self, evaluator) -> None:
        self.evaluator = evaluator

    # -- callback hooks common to every pitfall
    def on_fit_start(self, run) -> None:
        run.record.pitfall = self.report  # metrics.json's `pitfall`, updated as the run goes

    def on_epoch_end(self, run, logs) -> None:
        logs.update(self._logs)  # (logs is the history's entry: the loggers follow)
        self._logs = {}

    def state_dict(self) -> dict:
        return {"report": dict(self.report)}

    def load_state_dict(self, state: dict) -> None:
        self.report.update(state.get("report") or {})


class NoPitfall(Pitfall):
    """`+pitfall=none`: the training loop as it should be (the same as no `pitfall` at all)."""


def with_pitfall(
    callbacks: Mapping[str, Callback] | Iterable[Callback] | None, pitfall: Pitfall | None
) -> dict[str, Callback]:
    """The run's callbacks with the pitfall first (its numbers reach the loggers), if any."""
    named = named_callbacks(callbacks)
    if pitfall is None or not pitfall.active:
        return named
    if "pitfall" in named:
        from ..errors import UserError

        raise UserError(
            "callbacks.pitfall: this name belongs to the pitfall lab's own callback (+pitfall); "
            "give your callback another name.",
            key="callbacks.pitfall",
        )
    return {"pitfall": pitfall, **named}


def active_pitfall(pitfall: Pitfall | None) -> Pitfall | None:
    """The pitfall a run makes: None for none (and for `NoPitfall`)."""
    if pitfall is not None and not isinstance(pitfall, Pitfall):
        from ..errors import UserError

        raise UserError(
            f"pitfall: {type(pitfall).__name__} is not a trainer.pitfalls.Pitfall; choose one "
            "of the pitfall lab's options (python -m trainer --help lists them).",
            key="pitfall",
        )
    return pitfall if pitfall is not None and pitfall.active else None
