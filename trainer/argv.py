"""The command line before Hydra sees it: decide what Hydra cannot. Where a resumed run writes,
one run directory for all torchrun processes, and sweep job directories named after the swept
values only. No torch here unless torchrun started the process."""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .paths import config_dir, hydra_unquoted, hydra_value

# Where a resumed run's replayed overrides came from, and what the user typed: the job checks
# every `_target_` they bring in before anything is imported (see trust.py).
replayed: dict[str, object] = {}
# The run directory this command claimed: "dir", whether it "existed" before, "resume_dir".
claimed: dict[str, object] = {}


@functools.cache
def primary_config() -> DictConfig:
    """conf/config.yaml as written (defaults list, hydra settings), nothing resolved."""
    return OmegaConf.load(config_dir() / "config.yaml")


def _value(argv: list[str], key: str) -> str | None:
    for arg in reversed(argv):
        if arg.startswith(key + "="):
            return hydra_unquoted(arg.split("=", 1)[1])
    return None


def _multirun(argv: list[str]) -> bool:
    return "-m" in argv or "--multirun" in argv


def prepare_argv(argv: list[str]) -> list[str]:
    """Decide what Hydra cannot: where a resumed run writes, one run directory for all torchrun
    processes, and sweep job directories named after the swept values only."""
    # Hydra's parser takes overrides only on one side of -m; accept them anywhere.
    replayed.clear()
    claimed.clear()
    flags = [a for a in argv if a in ("-m", "--multirun")]
    argv = flags + [a for a in argv if a not in ("-m", "--multirun")]
    resume = _value(argv, "trainer.resume")
    mode = _value(argv, "mode") or "train"
    resuming = resume not in (None, "null", "auto") and mode == "train"
    if resuming and not _multirun(argv):
        argv = _resume_into_run_dir(argv)
    if mode in ("test", "predict") and resume not in (None, "null") and not _multirun(argv):
        argv = _use_into_run_dir(argv, "evaluations" if mode == "test" else "predictions")
    if _multirun(argv):
        argv = _name_jobs_by_swept_values(argv)
    from .distributed import env_rank, launched_by_torchrun

    if launched_by_torchrun():
        argv = _share_run_dir(argv)
    if not _multirun(argv) and env_rank() == 0:
        _claim_run_dir(argv, resuming, auto=resume == "auto" and mode == "train")
    return argv


def _claim_run_dir(argv: list[str], resuming: bool, auto: bool) -> None:
    """The run directory contract (rundir.py), checked before Hydra writes anything: a new
    run never lands in another run's directory, the directory can be written, and one process
    at a time uses it (its lock is taken here, released when the command ends)."""
    from . import rundir

    explicit = _value(argv, "hydra.run.dir")
    target = Path(explicit) if explicit is not None else Path("outputs/runs")
    rundir.check_writable(target)
    if explicit is None:
        return  # a new timestamped directory: nobody else's
    claimed["existed"] = target.exists()
    if auto:  # trainer.resume=auto: this directory's own run, if it has one
        claimed["resume_dir"] = target.resolve()
    elif not resuming or claimed.get("resume_dir") != target.resolve():
        rundir.refuse_existing_run(target)
    rundir.acquire(target)
    claimed["dir"] = target.resolve()


def _resume_into_run_dir(argv: list[str]) -> list[str]:
    """`trainer.resume=<run dir>` continues that run in its own directory, with its own config
    (the original overrides first, then the new ones, which win). The original .hydra/ is kept;
    the resumed invocation's composition goes to .hydra/resumed-<time>/ once it trains."""
    from datetime import datetime

    import yaml

    from .paths import resolve_checkpoint, run_dir_of

    run_dir = run_dir_of(resolve_checkpoint(_value(argv, "trainer.resume")))
    if run_dir is None:  # a bare checkpoint file: resume it under the current config
        return argv
    claimed["resume_dir"] = run_dir.resolve()
    overrides_file = run_dir / ".hydra" / "overrides.yaml"
    original = yaml.safe_load(overrides_file.read_text()) or [] if overrides_file.is_file() else []
    kept = [str(o) for o in original if not str(o).startswith(("hydra.", "trainer.resume="))]
    replayed.update(source=str(overrides_file), typed=list(argv))
    argv = [*kept, *argv]
    explicit = _value(argv, "hydra.run.dir")
    if explicit is not None and Path(explicit).resolve() != run_dir.resolve():
        return argv  # the user chose another directory for the continuation
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
    if explicit is None:
        argv.append(f"hydra.run.dir={hydra_value(run_dir)}")
    # Nothing is written into the run until the resume trains (rundir.keep_resume_records): a
    # refused resume, or one with nothing left to train, changes no file of the run.
    log = Path(tempfile.gettempdir()) / f"trainer-resume-{os.getpid()}-{stamp}.log"
    claimed["resume_records"] = {"subdir": f".hydra/resumed-{stamp}", "log": str(log)}
    return [*argv, "hydra.output_subdir=null", f"hydra.job_logging.handlers.file.filename={log}"]


def _use_into_run_dir(argv: list[str], folder: str) -> list[str]:
    """mode=test and mode=predict write into the run they use, under evaluations/<time>/ and
    predictions/<time>/: nothing new under outputs/runs/."""
    from datetime import datetime

    from .paths import resolve_checkpoint, run_dir_of

    if _value(argv, "hydra.run.dir") is not None:
        return argv
    run_dir = run_dir_of(resolve_checkpoint(_value(argv, "trainer.resume"), prefer="best"))
    if run_dir is None:
        return argv
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
    return [*argv, f"hydra.run.dir={hydra_value(run_dir / folder / stamp)}"]


def _name_jobs_by_swept_values(argv: list[str]) -> list[str]:
    """Leave overrides that are the same for every job out of the job directories' names, so
    they read as run names in TensorBoard: `0_optimizer.lr=0.0001`, not the whole command."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    key = "hydra.job.config.override_dirname.exclude_keys"
    if _value(argv, key) is not None:
        return argv  # the user decided
    overrides = [a for a in argv if not a.startswith("-") and "=" in a]
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception:
        return argv  # Hydra reports the syntax error itself
    fixed = [
        o.get_key_element().lstrip("+~")
        for o in parsed
        if not o.is_sweep_override() and not o.get_key_element().lstrip("+~").startswith("hydra")
    ]
    default = primary_config().hydra.job.config.override_dirname.exclude_keys
    keys = list(dict.fromkeys([*default, *fixed]))
    return [*argv, f"{key}=[{','.join(keys)}]"]


def _share_run_dir(argv: list[str]) -> list[str]:
    """Under torchrun every process would resolve ${now:} for itself and make its own run
    directory (hydra#2070): rank 0 resolves it once and the others use the same one."""
    if _multirun(argv):
        from .errors import UserError

        raise UserError(
            "sweeps (-m) cannot run inside torchrun. Run the sweep with a launcher (e.g. "
            "hydra/launcher=submitit_slurm) and let each job start its own processes.",
            key="-m",
        )
    import torch.distributed as dist

    from .distributed import env_rank, init_process_group

    init_process_group(_value(argv, "trainer.ddp_backend") or "auto")
    run_dir = None
    if env_rank() == 0:
        pattern = (
            _value(argv, "hydra.run.dir")
            or OmegaConf.to_container(primary_config().hydra.run)["dir"]
        )
        _register_now()
        run_dir = str(OmegaConf.create({"dir": pattern}).dir)
    box = [run_dir]
    dist.broadcast_object_list(box, src=0)
    argv = [a for a in argv if not a.startswith("hydra.run.dir=")] + [f"hydra.run.dir={box[0]}"]
    if env_rank() != 0:  # one log file and one .hydra/ for the run: rank 0's
        resume_log = "hydra.job_logging.handlers.file.filename="  # (rank 0's, for a resume)
        argv = [a for a in argv if not a.startswith((resume_log, "hydra.output_subdir="))]
        argv += ["hydra.output_subdir=null", "hydra/job_logging=worker"]
    return argv


def _register_now() -> None:
    from datetime import datetime

    if not OmegaConf.has_resolver("now"):
        OmegaConf.register_new_resolver(
            "now", lambda pattern: datetime.now().strftime(pattern), use_cache=True
        )
