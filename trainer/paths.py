"""Where things are: checkpoints of a run directory (no heavy imports, usable before Hydra)."""

from __future__ import annotations

import re
import shlex
from datetime import datetime
from pathlib import Path

from .errors import UserError


def config_dir() -> Path:
    """conf/ inside the installed package, or at the top of a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise RuntimeError(
        f"trainer's configs are missing (looked in {here / 'conf'} and {here.parent / 'conf'})"
    )


def hydra_value(value: str | Path) -> str:
    """`value` as an override's value that Hydra's grammar reads back unchanged: as it is when
    plain, in double quotes when it holds '=', '+', ',', spaces, brackets ... (a sweep job's
    directory such as 1_optimizer.lr=0.01 does)."""
    text = str(value)
    if re.fullmatch(r"[\w./~:@%-]+", text):
        return text
    return '"' + text.replace('"', '\\"') + '"'


def hydra_unquoted(value: str) -> str:
    """The inverse of `hydra_value` for a value read from the command line before Hydra."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1].replace("\\" + value[0], value[0])
    return value


def resume_override(run_dir: str | Path) -> str:
    """`trainer.resume=<run_dir>`, ready to paste into a shell and to be read by Hydra."""
    return shlex.quote(f"trainer.resume={hydra_value(run_dir)}")


def resolve_checkpoint(path: str | Path, prefer: str = "last") -> Path:
    """A checkpoint file from a checkpoint path or a run directory (its checkpoints/<prefer>.pt,
    falling back to the other of last/best)."""
    path = Path(path).expanduser()
    if path.is_dir():
        is_run = (path / "checkpoints").is_dir() or (path / ".hydra").is_dir()
        folder = path / "checkpoints" if is_run else path
        order = [prefer, "best" if prefer == "last" else "last"]
        for name in order:
            if (folder / f"{name}.pt").is_file():
                return folder / f"{name}.pt"
        why = (
            "it stopped before its first checkpoint (last.pt comes "
            "callbacks.model_checkpoint.every_n_seconds into training, 5 s by default, and at "
            "the end), or ran with callbacks=none or trainer.fast_dev_run=true; start it again "
            "without trainer.resume"
            if is_run
            else "is it a run directory?"
        )
        raise UserError(
            f"trainer.resume: '{path}' holds no checkpoint (no {folder / order[0]}.pt and no "
            f"{order[1]}.pt): {why}.",
            key="trainer.resume",
        )
    if not path.is_file():
        raise UserError(
            f"trainer.resume: no such run directory or checkpoint file: '{path}'.",
            key="trainer.resume",
        )
    return path


def run_dir_of(checkpoint: Path) -> Path | None:
    """The run directory a checkpoint file belongs to (<run dir>/checkpoints/x.pt), if it looks like one."""
    folder = checkpoint.resolve().parent
    if folder.name == "checkpoints" and (folder.parent / ".hydra").is_dir():
        return folder.parent
    return None


def new_run_dir() -> Path:
    """Where a run made from Python writes when given no run_dir (the CLI's own pattern)."""
    return Path("outputs") / "runs" / datetime.now().strftime("%Y-%m-%d/%H-%M-%S-%f")
