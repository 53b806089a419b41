"""Terminal output with rich, and the run's log file.

Everything a person reads in the terminal goes through one rich Console. The log file gets
the same information as plain text exactly once: panels and tables are logged with
`file_only()` (the console handler skips those records), epoch lines likewise.
"""

from __future__ import annotations

import logging
import os
import sys
import time

from rich.console import Console
from rich.panel import Panel

log = logging.getLogger("trainer")

_console: Console | None = None
_error_console: Console | None = None


def _width(stream) -> int | None:
    # Not a terminal (CI, a log file, a sweep worker): wide enough that epoch lines never wrap.
    return None if stream.isatty() else int(os.environ.get("COLUMNS", "120"))


def console() -> Console:
    global _console
    if _console is None or _console.file is not sys.stdout:
        _console = Console(
            file=sys.stdout, highlight=False, width=_width(sys.stdout), soft_wrap=False
        )
    return _console


def error_console() -> Console:
    global _error_console
    if _error_console is None or _error_console.file is not sys.stderr:
        _error_console = Console(file=sys.stderr, highlight=False, width=_width(sys.stderr))
    return _error_console


def interactive() -> bool:
    """A person is watching a terminal: progress bars make sense."""
    c = console()
    return c.is_terminal and not c.is_dumb_terminal


def file_only(text: str, level: int = logging.INFO) -> None:
    """Log `text` to the run's log file but not to the terminal (it was shown there already)."""
    log.log(level, text, extra={"console": False})


def show(renderable, plain: str | None = None, soft_wrap: bool = False) -> None:
    """Print to the terminal, and log the plain-text version to the log file. `soft_wrap`:
    never break the line (a command to copy whole)."""
    console().print(renderable, soft_wrap=soft_wrap)
    if plain is not None:
        file_only(plain)


def print_user_error(message: str, title: str = "trainer: error") -> None:
    from rich.text import Text

    text = Text(message)  # plain: messages quote values like [0.5, 0.5] that are not markup
    error_console().print(
        Panel(text, title=title, title_align="left", border_style="red", expand=False)
    )


class ConsoleHandler(logging.Handler):
    """Log records to the terminal through the shared rich Console (so they print above a live
    progress bar instead of tearing it), skipping records marked console=False."""

    def emit(self, record: logging.LogRecord) -> None:
        if not getattr(record, "console", True):
            return
        try:
            text = self.format(record)
            style = {
                logging.WARNING: "yellow",
                logging.ERROR: "red",
                logging.CRITICAL: "bold red",
            }.get(record.levelno)
            console().print(text, style=style, markup=False, highlight=False, soft_wrap=True)
        except Exception:
            self.handleError(record)


class RunLogFile(logging.FileHandler):
    """<run dir>/trainer.log: every record written as it comes, the file flushed at most every
    FLUSH_EVERY_S (at once for warnings and errors; always when it closes, also on SIGTERM or
    an error). A flush per record cost 0.09 ms of every epoch, its epoch line's (1% of a moons
    epoch); a kill -9 can lose the last second of lines, as of TensorBoard events."""

    FLUSH_EVERY_S = 1.0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._next_flush = 0.0
        self._urgent = False

    def emit(self, record: logging.LogRecord) -> None:
        self._urgent = record.levelno >= logging.WARNING
        super().emit(record)

    def flush(self) -> None:  # (StreamHandler.emit calls it after every record)
        now = time.monotonic()
        if self._urgent or now >= self._next_flush:
            self._next_flush = now + self.FLUSH_EVERY_S
            super().flush()
