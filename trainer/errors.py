"""The one exception type for mistakes a user can fix (config, data, command line)."""

from __future__ import annotations

import difflib
import errno
import re
from collections.abc import Iterable

# The command line's exit codes, the same for every launcher (the README has the table):
EXIT_BUG = 1  # an unexpected error: a traceback, a bug in trainer or in user code
EXIT_USER_ERROR = 2  # a mistake to fix (config, data, file, checkpoint, run dir) or a failed run
EXIT_SWEEP_FAILED = 3  # a sweep ran to its end, and some of its jobs failed
EXIT_SIGNAL = {"SIGHUP": 129, "SIGINT": 130, "SIGTERM": 143}  # interrupted: resume to continue


class UserError(Exception):
    """A mistake in the user's config, data or command line.

    The CLI shows the message as one panel and exits non-zero, without a traceback:
    the message must name the bad key or file, what was wrong, and the valid choices.
    """

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(_clip_long_words(message))
        self.key = key

    def __reduce__(self):  # picklable across joblib / submitit workers
        return (_rebuild_user_error, (type(self), str(self), self.key))


def _rebuild_user_error(cls, message, key):
    return cls(message, key=key)


class NonFiniteError(UserError):
    """The loss or the gradients became NaN or infinite and `trainer.on_nonfinite=stop`."""


class DistributedFailure(UserError):
    """Another process of a DDP job died or became unreachable: the job stops cleanly."""


class WriteFailure(UserError):
    """A file of the run could not be written: the disk is full, a quota or a size limit was
    reached, or a permission was lost. Not a bug: the message says which file and why."""

    ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS)

    @classmethod
    def wraps(cls, error: BaseException, path=None) -> bool:
        return isinstance(error, OSError) and error.errno in cls.ERRNOS

    @classmethod
    def of(cls, error: OSError, path=None) -> WriteFailure:
        where = error.filename or path or "a file of the run"
        return cls(
            f"could not write '{where}': {error.strerror or error}. Files written before it are "
            "intact (every write is atomic) and checkpoints/last.pt keeps the last saved epoch: "
            "free space or fix the permissions, then continue with trainer.resume=<run dir>.",
            key="hydra.run.dir",
        )


class TrainingInterrupted(Exception):
    """SIGINT or SIGTERM arrived; the run saved its state and stops."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(f"interrupted by {signal_name}")
        self.signal_name = signal_name

    def __reduce__(self):
        return (TrainingInterrupted, (self.signal_name,))


def _clip_long_words(text: str, limit: int = 120) -> str:
    """A value pasted 20,000 characters long is not echoed whole: long words are clipped."""
    return re.sub(
        rf"\S{{{limit + 1},}}",
        lambda m: f"{m.group(0)[:60]}...({len(m.group(0))} characters)...{m.group(0)[-20:]}",
        text,
    )


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
