"""Files that are written whole or not at all (temporary file, flush, fsync, rename), in order,
on one background thread so that the training loop never waits for the disk."""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import tempfile
import threading
from pathlib import Path
from typing import Any

from .errors import UserError, WriteFailure


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str | Path, write) -> None:
    """Write through `write(file)` to a temporary file beside `path`, flush, fsync, then rename
    over `path`: readers see the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_UMASK)  # permissions like any file the user creates (mkstemp: private)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def write_json(data: Any, path: str | Path) -> None:
    text = json.dumps(data, indent=2, default=_json_default, allow_nan=True) + "\n"
    atomic_write(path, lambda handle: handle.write(text.encode()))


def _json_default(value):
    if hasattr(value, "tolist"):  # numpy scalars and arrays, tensors
        return value.tolist()
    return str(value)


class BackgroundWriter:
    """Writes files in submission order on one daemon thread, so the training loop never waits
    for the disk. `wait()` blocks until everything submitted is on disk and re-raises a failure."""

    def __init__(self) -> None:
        self._queue: queue.Queue = queue.Queue()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def submit(self, write, *args) -> None:
        self._raise_pending()
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._work, name="checkpoint-writer", daemon=True
            )
            self._thread.start()
            atexit.register(self._drain)  # never let the interpreter exit in the middle of a write
        self._queue.put((write, args))

    def _drain(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.join()

    def _work(self) -> None:
        while True:
            write, args = self._queue.get()
            try:
                if self._error is None:
                    write(*args)
            except BaseException as error:  # reported to the training thread on its next call
                path = next((a for a in reversed(args) if isinstance(a, Path)), None)
                self._error = WriteFailure.of(error, path) if WriteFailure.wraps(error) else error
            finally:
                self._queue.task_done()

    def wait(self, quietly: bool = False) -> None:
        """Until everything submitted is on disk; a failure is raised, or with `quietly` (on the
        way out of another error, which it must not hide) logged."""
        self._queue.join()
        try:
            self._raise_pending()
        except Exception as error:
            if not quietly:
                raise
            log = logging.getLogger("trainer")
            if isinstance(error, UserError):
                log.error("%s", error)  # e.g. the disk is full: no traceback for that
            else:
                log.exception("a checkpoint or file could not be written")

    def _raise_pending(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error
