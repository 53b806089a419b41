"""Reading what runs left behind, for the runs browser and the run comparison.

Only files a run wrote are read (metrics.json, .hydra/*.yaml, the lock, whether checkpoints
exist); nothing is built or imported from them and nothing is written. Every key may be missing:
a run still starting has no metrics.json, an old run lacks newer keys, a job that failed its
config check has only `status` and `error`.
"""

from __future__ import annotations

import json
import math
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import UserError

FINISHED = ("completed", "stopped_early")
# Statuses a run can have in the browser: the ones metrics.json records, and those it cannot:
# running (its lock's process is alive), killed (it says running or starting, but its process is
# gone: kill -9, a crash, a lost machine), missing (no metrics.json and no process), unreadable
# (a metrics.json that is not JSON).
STATUSES = (
    "completed",
    "stopped_early",
    "interrupted",
    "failed",
    "running",
    "killed",
    "missing",
    "unreadable",
)
STATUS_GROUPS = {"finished": FINISHED}
_OFFICIAL_MODES = ("test", "predict")  # evaluations/ and predictions/ inside a run: not runs


def is_run(folder: Path) -> bool:
    return (folder / ".hydra").is_dir()


def is_sweep(folder: Path) -> bool:
    """Hydra writes multirun.yaml at the root of every sweep (any launcher, any sweeper)."""
    return (folder / "multirun.yaml").is_file() or (folder / "summary.json").is_file()


def find(root: Path) -> tuple[list[Path], dict[Path, list[Path]]]:
    """The single runs and the sweeps (with their job directories) under `root`, recursively.
    A run directory is not searched further (its evaluations/ and predictions/ are not runs)."""
    singles: list[Path] = []
    sweeps: dict[Path, list[Path]] = {}
    if is_run(root):
        return [root], {}
    for folder, subdirs, _ in os.walk(root):
        here = Path(folder)
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        if is_sweep(here):
            sweeps[here] = [here / d for d in subdirs if is_run(here / d)]
            subdirs[:] = [d for d in subdirs if not is_run(here / d)]
            continue
        singles.extend(here / d for d in subdirs if is_run(here / d))
        subdirs[:] = [d for d in subdirs if not is_run(here / d)]
    return singles, sweeps


def _lock_state(run_dir: Path) -> str | None:
    """'alive' when the run's lock belongs to a live process, 'stale' when to a dead one."""
    from .rundir import LOCK, _alive, _owner

    lock = run_dir / LOCK
    if not lock.is_file():
        return None
    owner = _owner(lock)
    if owner is None:  # being written this instant, or damaged: someone holds it
        return "alive"
    return "alive" if _alive(owner) else "stale"


def _read_json(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as error:
        return None, f"{path.name} is unreadable ({error})"
    return (data, None) if isinstance(data, dict) else (None, f"{path.name} is not a JSON object")


def overrides_of(run_dir: Path) -> list[str]:
    """The overrides the run last ran with: its own (.hydra/overrides.yaml), or after a resume
    the resume's (the run's own replayed, then the new ones, which win); without hydra.* and
    trainer.resume."""
    import yaml

    from .sweeps import _overrides

    resumes = sorted((run_dir / ".hydra").glob("resumed-*/overrides.yaml"))
    try:
        if resumes:
            overrides = [str(o) for o in (yaml.safe_load(resumes[-1].read_text()) or [])]
        else:
            overrides = _overrides(run_dir)
    except (OSError, yaml.YAMLError, TypeError):
        return []
    latest: dict[str, str] = {}
    for override in overrides:
        key = override.lstrip("+~").partition("=")[0]
        if key.startswith(("hydra.", "hydra/")) or key == "trainer.resume":
            continue
        latest.pop(key, None)  # a later value of the same key wins (it was typed last)
        latest[key] = override
    return list(latest.values())


def health_verdict(metrics: dict[str, Any]) -> str | None:
    """metrics.json's own verdict, or (older runs) 'healthy' unless a finding is a warning or an
    error, then the worst finding's kind. None when the run has no health report."""
    if metrics.get("health_verdict"):
        return str(metrics["health_verdict"])
    findings = metrics.get("health")
    if not isinstance(findings, list):
        return None
    for severity in ("error", "warning"):
        for finding in findings:
            if isinstance(finding, dict) and finding.get("severity") == severity:
                return str(finding.get("kind", severity))
    return "healthy"


def _started(run_dir: Path, metrics: dict[str, Any]) -> datetime | None:
    """When the run started: when Hydra composed its config, or metrics.json's started_at if
    earlier (a copied run's files are newer; a resumed run's started_at is the resume's)."""
    times = []
    text = metrics.get("started_at")
    if isinstance(text, str):
        try:
            when = datetime.fromisoformat(text)
            times.append(when if when.tzinfo else when.replace(tzinfo=timezone.utc))
        except ValueError:
            pass
    try:
        mtime = (run_dir / ".hydra" / "config.yaml").stat().st_mtime
        times.append(datetime.fromtimestamp(int(mtime), timezone.utc))
    except OSError:
        pass
    return min(times).astimezone(timezone.utc) if times else None


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if math.isfinite(value) else None


def read_run(run_dir: Path) -> dict[str, Any] | None:
    """What a run's files say, as one flat dict (JSON-ready); None for an evaluation's or a
    prediction's own directory, which is not a training run."""
    run_dir = Path(run_dir)
    metrics, problem = _read_json(run_dir / "metrics.json")
    if metrics is not None and metrics.get("mode") in _OFFICIAL_MODES:
        return None
    record = metrics or {}
    lock = _lock_state(run_dir)
    status = str(record.get("status") or "")
    note = problem
    if lock == "alive":
        status = "running"
    elif problem is not None:
        status = "unreadable"
    elif metrics is None and lock is None:
        status, note = "missing", "no metrics.json: the run did not start or was killed at once"
    elif metrics is None or status in ("running", "created", ""):
        status = "killed"
        note = "its process is gone without recording an end (kill -9, a crash)"
    checkpoints = run_dir / "checkpoints"
    started = _started(run_dir, record)
    test = record.get("test") if isinstance(record.get("test"), dict) else {}
    absent = record.get("absent_splits")
    best = record.get("best") if isinstance(record.get("best"), dict) else {}
    error = str(record.get("error") or "").strip()
    run = {
        "run_dir": str(run_dir.absolute()),
        "started_at": started.isoformat(timespec="seconds") if started else None,
        "status": status,
        "mode": "lr_find" if record.get("mode") == "lr_find" else "train",
        "overrides": overrides_of(run_dir),
        "monitor": record.get("monitor"),
        "monitor_mode": record.get("mode") if record.get("mode") in ("min", "max") else None,
        "best": _number(record.get("best_val_metric")),
        "best_epoch": record.get("best_epoch"),
        "best_metrics": {k: v for k, v in best.items() if _number(v) is not None},
        "test": {k: v for k, v in (test or {}).items() if _number(v) is not None},
        "absent_splits": sorted(absent) if isinstance(absent, dict) else [],  # data.split: 0
        "epochs": record.get("epochs_run"),
        "max_epochs": record.get("max_epochs"),
        "wall_time_s": _number(record.get("wall_time_s")),
        "health": health_verdict(record),
        "stop_reason": record.get("stop_reason"),
        "error": error.splitlines()[0] if error else None,
        "note": note,
        "checkpoints": sorted(p.name for p in checkpoints.glob("*.pt"))
        if checkpoints.is_dir()
        else [],
        "resumed_from": record.get("resumed_from"),
    }
    if record.get("mode") == "lr_find":
        run["monitor"], run["best"] = "suggested lr", _number(record.get("suggested_lr"))
    return run


def check_dir(path: str | Path, what: str, key: str) -> Path:
    """An existing directory, or a UserError that says where it was looked for."""
    folder = Path(path).expanduser()
    if folder.is_dir():
        return folder
    if folder.exists():
        reason = "is a file, not a directory"
    else:
        reason = f"does not exist (looked in {Path.cwd()})"
    raise UserError(f"{key}: '{path}' {reason}. {what}", key=key)


def main_test_metric(test: dict[str, Any]) -> str | None:
    """The test metric a one-column view shows: accuracy, else r2, else the loss."""
    return next((k for k in ("accuracy", "r2", "loss") if k in test), next(iter(test), None))


def fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def local_time(iso: str | None) -> str:
    """An ISO time as the local wall clock, to the second."""
    if not iso:
        return ""
    return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def output_console():
    """A Console for stdout: the terminal's width and colours in a terminal; elsewhere (a pipe,
    a file) no colour codes and no width limit, so that nothing is folded or cut."""
    from rich.console import Console

    if sys.stdout.isatty():
        return Console(highlight=False)
    return Console(
        file=sys.stdout, highlight=False, width=100_000, color_system=None, soft_wrap=True
    )


def print_tables(console, *renderables) -> None:
    """Print tables and lines. Off a terminal a table keeps its natural width (the console's
    is unbounded) and its lines lose rich's trailing padding."""
    for renderable in renderables:
        if isinstance(renderable, str) and not console.is_terminal:
            console.file.write(renderable + "\n")  # (a closed pipe: run_main's BrokenPipeError)
        elif isinstance(renderable, str):
            console.print(renderable, markup=False, soft_wrap=True)
        elif console.is_terminal:
            console.print(renderable)
        else:
            with console.capture() as capture:
                console.print(renderable)
            console.file.write("".join(line.rstrip() + "\n" for line in capture.get().splitlines()))


def parser_error(prog: str):
    """An argparse.ArgumentParser subclass whose mistakes are UserErrors (one panel, exit 2)."""
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message: str):
            raise UserError(f"{prog}: {message}. See `python -m {prog} --help`.", key=prog)

    return Parser


def run_main(main, argv: list[str] | None, prog: str = "trainer") -> int:
    """Run a command's main(argv): a UserError becomes one panel on stderr and exit status 2."""
    from .console import print_user_error
    from .errors import EXIT_USER_ERROR

    try:
        return main(sys.argv[1:] if argv is None else argv)
    except UserError as error:
        print_user_error(str(error), title=f"{prog}: error")
        return EXIT_USER_ERROR
    except BrokenPipeError:  # `... | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
