"""What sweep jobs print, readable when they share one terminal or log.

With `hydra/launcher=joblib` several jobs print at once, so every line a job prints (stdout and
stderr, from Python or from C: panels, log lines, warnings, tracebacks) goes out prefixed with its
job number and overrides, e.g. `[3 optimizer.lr=0.01] `. File descriptors 1 and 2 of the worker
process are pointed at pipes for the job's duration; one thread per stream writes each complete
line, prefixed, to the real stream, whole lines at a time, so jobs interleave by lines, never
inside one. Sequential sweeps and single runs print as before.

Colour codes only go to terminals: rich decides that itself, and Optuna's colorlog formatter is
told which stream it writes to (it colours everything otherwise).
"""

from __future__ import annotations

import logging
import os
import sys
import threading

NOISE = (  # overrides that do not tell jobs apart: not in labels, not in the sweep table
    "trainer.seed",
    "data.seed",
    "trainer.device",
    "trainer.num_threads",
    "log_level",
    "print_config",
    "hydra",
    "experiment",
    "hparams_search",
)
LABEL_MAX = 40  # characters of overrides kept in a prefix; a longer label is cut with "…"
ATOMIC_BYTES = 4096  # one write to a pipe up to this size is not interleaved with another's


def is_parallel(config) -> bool:
    """Jobs of this sweep run at the same time in worker processes (the joblib launcher)."""
    from hydra.types import RunMode

    hydra = config.hydra
    if hydra.mode != RunMode.MULTIRUN:
        return False
    launcher = hydra.get("launcher") or {}
    return "joblib" in str(launcher.get("_target_", "")).lower()


def job_label(config) -> str:
    """`3 optimizer.lr=0.01`: the job number and the overrides its directory is named after
    (the swept ones), long numbers rounded; when longer than LABEL_MAX characters, the keys
    shortened to their last part, then the whole cut."""
    hydra = config.hydra
    excluded = set(hydra.job.config.override_dirname.exclude_keys or [])
    kept = [
        str(o)
        for o in hydra.overrides.task
        if str(o).partition("=")[0] not in excluded
        and not str(o).lstrip("+~").partition("=")[0].startswith(NOISE)
    ]
    label = short_numbers(" ".join(kept))
    if len(label) > LABEL_MAX:  # keys by their last part: optimizer.lr=0.1 -> lr=0.1
        label = short_numbers(" ".join(_last_part(o) for o in kept))
    if len(label) > LABEL_MAX:
        label = label[: LABEL_MAX - 1] + "…"
    return f"{hydra.job.num} {label}".strip()


def _last_part(override: str) -> str:
    key, sep, value = override.partition("=")
    return key.rsplit(".", 1)[-1] + sep + value


def short_numbers(overrides: str) -> str:
    """Overrides for display: long floats (Optuna's) rounded to 4 significant digits."""
    import re

    return re.sub(
        r"(?<==)(-?\d+\.\d{5,}(?:e-?\d+)?|-?\d\.\d+e-?\d+)",
        lambda m: f"{float(m.group(1)):.4g}",
        overrides,
    )


class LabelledOutput:
    """Prefixes every line written to this process's stdout and stderr until `stop()`."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix.encode()
        self._streams: list[tuple[int, int, threading.Thread]] = []  # (fd, saved fd, pump)
        self._columns: tuple[str | None] | None = None  # COLUMNS before start(), if changed

    def start(self) -> None:
        _flush_python_streams()
        saved_out = os.dup(1)
        if os.isatty(saved_out):  # keep panels within the terminal once prefixed
            self._columns = (os.environ.get("COLUMNS"),)
            width = os.get_terminal_size(saved_out).columns - len(self.prefix.decode())
            os.environ["COLUMNS"] = str(max(40, width))
        os.close(saved_out)
        for fd in (1, 2):
            saved = os.dup(fd)
            read_end, write_end = os.pipe()
            os.dup2(write_end, fd)
            os.close(write_end)
            pump = threading.Thread(
                target=self._pump, args=(read_end, saved), name=f"job-output-{fd}", daemon=True
            )
            pump.start()
            self._streams.append((fd, saved, pump))

    def stop(self) -> None:
        """Write what is left (a last line without its newline gets one) and restore the streams."""
        _flush_python_streams()
        for fd, saved, pump in self._streams:
            os.dup2(saved, fd)  # closes the pipe's write end: the pump reads to its end and stops
            pump.join(timeout=5)  # (a child process still holding the pipe: do not wait forever)
            os.close(saved)
        self._streams = []
        if self._columns is not None:
            before, self._columns = self._columns[0], None
            if before is None:
                os.environ.pop("COLUMNS", None)
            else:
                os.environ["COLUMNS"] = before

    def _pump(self, read_end: int, out: int) -> None:
        pending = b""
        try:
            while chunk := os.read(read_end, 65536):
                *lines, pending = (pending + chunk).split(b"\n")
                self._write(out, lines)
            if pending:
                self._write(out, [pending])
        finally:
            os.close(read_end)

    def _write(self, out: int, lines: list[bytes]) -> None:
        """Prefixed lines, in writes of whole lines of at most ATOMIC_BYTES where they fit."""
        block = b""
        for line in lines:
            line = self.prefix + line + b"\n"
            if block and len(block) + len(line) > ATOMIC_BYTES:
                _write_all(out, block)
                block = b""
            block += line
        if block:
            _write_all(out, block)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except OSError:  # the reader went away (a closed pipe): nothing more can be shown
            return


def _flush_python_streams() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass


def colours_only_on_terminals() -> None:
    """Log handlers with a colorlog formatter (Optuna's) colour only when their stream is a
    terminal (colorlog checks the stream it is given, and NO_COLOR / FORCE_COLOR)."""
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            formatter = handler.formatter
            if (
                isinstance(handler, logging.StreamHandler)
                and type(formatter).__module__.startswith("colorlog")
                and getattr(formatter, "stream", None) is None
            ):
                formatter.stream = handler.stream


def prepare_sweeper(config) -> None:
    """In the launching process as a sweep starts: Optuna's log handler (made when Optuna is
    imported) colours only a terminal."""
    target = str((config.hydra.get("sweeper") or {}).get("_target_", "")).lower()
    if "optuna" in target:
        import optuna.logging

        optuna.logging.get_logger("optuna")  # creates its handler now, so it can be set
    colours_only_on_terminals()
