"""The run directory contract: a directory holds one run.

- Starting a run in a directory that already holds one is refused, unless it is a resume.
- One process at a time: `<run dir>/.lock` holds the owner's pid and host; a second process is
  refused, and a lock whose process is gone (same host) is taken over.
- A directory that cannot be written is reported before anything starts.
No torch here: the command line checks all of this before Hydra writes anything.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from .errors import UserError
from .paths import resume_override

LOCK = ".lock"
_held: list[Path] = []  # locks this process holds (released at exit)


def run_in(folder: Path) -> str | None:
    """What run `folder` holds, in a few words, or None when it holds none."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    metrics = folder / "metrics.json"
    if metrics.is_file():
        try:
            record = json.loads(metrics.read_text())
        except (OSError, ValueError):
            return "a run (its metrics.json is unreadable)"
        if record.get("mode") in ("test", "predict"):
            return None  # an evaluation's own directory, not a training run
        epochs = record.get("epochs_run")
        return f"a {record.get('status', 'recorded')} run" + (
            f" ({epochs} epochs)" if epochs is not None else ""
        )
    if (folder / "checkpoints").is_dir():
        return "a run's checkpoints"
    return None


def refuse_existing_run(folder: Path, key: str = "hydra.run.dir") -> None:
    """A new run may not start where another run lives (its files would be overwritten)."""
    held = run_in(folder)
    if held is not None:
        raise UserError(
            f"{key}='{folder}' already holds {held}, and a directory holds one run. Continue "
            f"it with `python -m trainer {resume_override(folder)}`, or choose another directory "
            "(leave hydra.run.dir out for a new one under outputs/runs/).",
            key=key,
        )


def check_writable(folder: Path, key: str = "hydra.run.dir") -> None:
    """The directory, or the nearest folder above it that exists, must take a new file (tried:
    permission bits say little to root or on a read-only file system)."""
    import tempfile

    folder = Path(folder).expanduser().absolute()
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("/"))
    try:
        if not existing.is_dir():
            raise NotADirectoryError(f"'{existing}' is a file")
        fd, probe = tempfile.mkstemp(prefix=".trainer-probe-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        reason = error.strerror or str(error)
        raise UserError(
            f"{key}='{folder}' cannot be written ({reason}: '{existing}'). Choose a directory "
            "you can write, e.g. leave hydra.run.dir out for outputs/runs/ here.",
            key=key,
        ) from None


def acquire(folder: Path) -> None:
    """Take the run directory's lock, or refuse: another live process owns it."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(
            f"hydra.run.dir='{folder}' cannot be created ({error.strerror or error}).",
            key="hydra.run.dir",
        ) from None
    lock = folder / LOCK
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = _owner(lock)
            if owner is not None and _alive(owner):
                since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner.get("since", 0)))
                raise UserError(
                    f"'{folder}' is in use by another process (pid {owner['pid']} on "
                    f"{owner['host']}, since {since}): one process at a time per run directory. "
                    f"Wait for it to finish, or stop it; if it is gone, delete {lock}.",
                    key="hydra.run.dir",
                ) from None
            lock.unlink(missing_ok=True)  # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as handle:
            json.dump(mine, handle)
        _held.append(lock)
        return


def release() -> None:
    """Remove the locks this process holds."""
    while _held:
        lock = _held.pop()
        owner = _owner(lock)
        if owner is not None and owner.get("pid") == os.getpid():
            lock.unlink(missing_ok=True)


def _owner(lock: Path) -> dict | None:
    try:
        return json.loads(lock.read_text())
    except (OSError, ValueError):
        return None


def _alive(owner: dict) -> bool:
    """Whether the lock's process still runs (on another host: assume it does)."""
    if owner.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(owner["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, KeyError, TypeError):
        return True
    return True


def keep_resume_records(run_dir: Path, records: dict, config: str, overrides: list[str]) -> None:
    """A resume that trains keeps its records in the run: its composition in
    .hydra/resumed-<time>/, and its log (so far in a temporary file) in trainer.log."""
    import logging

    import yaml

    folder = Path(run_dir) / records["subdir"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(config)
    (folder / "overrides.yaml").write_text(yaml.safe_dump(list(overrides)))
    temporary, log = Path(records["log"]), Path(run_dir) / "trainer.log"
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename) == temporary:
            handler.close()
            root.removeHandler(handler)
            with log.open("a") as out:
                out.write(temporary.read_text())
            moved = type(handler)(log)  # (console.RunLogFile)
            moved.setFormatter(handler.formatter)
            moved.setLevel(handler.level)
            root.addHandler(moved)
    forget_resume_records(records)


def forget_resume_records(records: dict | None) -> None:
    """The temporary log of a resume that did not train (or whose log moved into the run)."""
    if records:
        Path(records["log"]).unlink(missing_ok=True)
