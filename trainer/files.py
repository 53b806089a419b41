"""Files that are written whole or not at all: temporary file, flush, fsync, rename."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


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
