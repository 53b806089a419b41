"""The one exception type for mistakes a user can fix (config, data, command line)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """A mistake in the user's config, data or command line.

    The CLI shows the message as one panel and exits non-zero, without a traceback:
    the message must name the bad key or file, what was wrong, and the valid choices.
    """

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key

    def __reduce__(self):  # picklable across joblib / submitit workers
        return (_rebuild_user_error, (type(self), str(self), self.key))


def _rebuild_user_error(cls, message, key):
    return cls(message, key=key)


class NonFiniteError(UserError):
    """The loss or the gradients became NaN or infinite and `trainer.on_nonfinite=stop`."""


class DistributedFailure(UserError):
    """Another process of a DDP job died or became unreachable: the job stops cleanly."""


class TrainingInterrupted(Exception):
    """SIGINT or SIGTERM arrived; the run saved its state and stops."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(f"interrupted by {signal_name}")
        self.signal_name = signal_name

    def __reduce__(self):
        return (TrainingInterrupted, (self.signal_name,))


def describe(error: BaseException) -> str:
    """An error as a run records it (metrics.json, summaries): a user error's own message, any
    other error with its type, since that is a bug's first clue."""
    return str(error) if isinstance(error, UserError) else f"{type(error).__name__}: {error}"


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """' Did you mean X?' when a close match exists, else ''."""
    match = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
    return f" Did you mean '{match[0]}'?" if match else ""


def choices_text(choices: Iterable[str]) -> str:
    return ", ".join(sorted(str(c) for c in choices))
