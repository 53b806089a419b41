"""The command line: `python -m trainer [group=option] [key=value] ... [-m]`, or `trainer ...`.

Hydra composes the config and makes the run directory; everything heavy (torch) is imported
inside the job, so `--help`, `--cfg job` and shell completion stay fast. Mistakes a user can
fix are shown as one panel and exit with status 2; bugs keep their traceback (status 1).
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from pathlib import Path

from .composition import compose_once, reuse_validated_compositions
from .errors import EXIT_BUG, EXIT_SIGNAL, EXIT_SWEEP_FAILED, EXIT_USER_ERROR
from .paths import config_dir, resume_override

_exit_code = 0  # a single run's failure, reported already by the job
_jobs_started = 0  # in this process (a joblib worker runs several)


# ---------------------------------------------------------------------- the job
def _job(cfg) -> float | None:
    """What Hydra runs for each job. Failures are reported here, where the run directory is
    known; in a sweep a failed job returns NaN so the other jobs still run."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    global _exit_code, _jobs_started
    if not _jobs_started:  # a worker process's start-up, as the CLI's own (see main)
        gc.disable()
    _jobs_started += 1
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    from .run import run
    from .signals import received, sigterm_deferred

    with sigterm_deferred():
        try:
            result = run(
                cfg, run_dir, dict(hydra_cfg.runtime.choices), list(hydra_cfg.overrides.task)
            )
            if received:  # a SIGTERM during the end-of-run reporting: the run is complete
                _exit_code = _exit_code or EXIT_SIGNAL.get(received[-1], 143)
            return result
        except KeyboardInterrupt:
            raise
        except BaseException as error:
            code = _report_failure(error, run_dir, f"job {hydra_cfg.job.num}" if multirun else None)
    _exit_code = _exit_code or code
    return float("nan")  # sweepers see a failed trial; the sweep summary lists the error


def _report_failure(error: BaseException, run_dir: Path, job: str | None) -> int:
    import logging
    import traceback

    from . import console
    from .distributed import env_rank
    from .errors import TrainingInterrupted, UserError, WriteFailure

    if WriteFailure.wraps(error):  # a full disk or a lost permission: not a bug
        error = WriteFailure.of(error)
    prefix = f"{job}: " if job else ""
    if env_rank() != 0:  # rank 0 reports for the job; the others add one line if they know more
        if not isinstance(error, TrainingInterrupted):
            sys.stderr.write(f"rank {env_rank()}: {error}\n")
        return EXIT_SIGNAL["SIGTERM"] if isinstance(error, TrainingInterrupted) else EXIT_USER_ERROR
    if isinstance(error, TrainingInterrupted):
        message = (
            f"{prefix}interrupted by {error.signal_name}. checkpoints/last.pt holds where the run "
            f"stopped; continue it with:\n  python -m trainer {resume_override(run_dir)}"
        )
        console.print_user_error(message, title="trainer: interrupted")
        console.file_only(message, logging.WARNING)
        code = EXIT_SIGNAL.get(error.signal_name, 143)
    elif isinstance(error, UserError):
        console.print_user_error(f"{prefix}{error}")
        console.file_only(f"error: {error}", logging.ERROR)
        code = EXIT_USER_ERROR
    else:
        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        console.file_only(f"{prefix}unexpected error (a bug):\n{text}", logging.ERROR)
        sys.stderr.write(f"{prefix}unexpected error (a bug in trainer or in user code):\n{text}")
        code = EXIT_BUG
    _record_failure(run_dir, error, job is not None)
    return code


def _record_failure(run_dir: Path, error: BaseException, in_sweep: bool) -> None:
    """A job that failed before training began: in a sweep it leaves a metrics.json saying why
    (the sweep's summary lists it); a single run leaves no directory behind."""
    import contextlib
    import shutil

    from .argv import claimed
    from .distributed import env_rank
    from .errors import TrainingInterrupted, describe
    from .files import write_json

    path = run_dir / "metrics.json"
    if path.exists() or env_rank() != 0 or not run_dir.is_dir():
        return  # training began (its record says how it ended), or not this process's to write
    if in_sweep:
        status = "interrupted" if isinstance(error, TrainingInterrupted) else "failed"
        write_json({"status": status, "error": describe(error), "history": []}, path)
    elif not claimed.get("existed") and run_dir.resolve() != claimed.get("resume_dir"):
        shutil.rmtree(run_dir, ignore_errors=True)  # made by this command, for nothing
        if run_dir.parent.name in ("evaluations", "predictions"):
            with contextlib.suppress(OSError):
                run_dir.parent.rmdir()  # only if empty: the run's earlier ones stay


# ---------------------------------------------------------------------- main
def main() -> None:
    gc.disable()  # through start-up: run._settle_heap turns it on before the first epoch
    argv = sys.argv[1:]
    if "--install-completion" in argv:
        from .completion import install

        sys.exit(install(argv[argv.index("--install-completion") + 1 :]))
    if os.getcwd() not in sys.path and "" not in sys.path:  # the `trainer` console script: the
        sys.path.append(os.getcwd())  # user's modules import as with `python -m` (never shadowing)
    if "--help" in argv or "-h" in argv:
        from .help import help_text

        try:
            print(help_text())
        except BrokenPipeError:  # `--help | head`: the reader has what it wanted
            sys.stderr.close()
        return
    exit_now(run_cli(argv))


def exit_now(code: int) -> None:
    """End the process as the interpreter would, minus its teardown: threading's exit hooks and
    a join of the other non-daemon threads (e.g. a joblib sweep's executor), the atexit handlers
    (the log file closed, the checkpoint writer drained), the streams flushed; then `os._exit`.
    Freeing every object of torch, torch._dynamo and sympy one by one took a second on every run
    (python -c "import torch._dynamo": 3.1 s, 2.1 s with os._exit; see scripts/benchmark.py).
    Under a profiler or debugger (python -m cProfile -m trainer ...) it exits as usual, so that
    the tool can report once the CLI returns."""
    import atexit
    import threading

    if sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)
    shutdown_threads = getattr(threading, "_shutdown", None)  # (what Py_Finalize calls first)
    if shutdown_threads is not None:
        shutdown_threads()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # (a closed pipe: nothing more can be said)
            stream.flush()
    os._exit(code)


def run_cli(argv: list[str]) -> int:
    from . import console
    from .argv import prepare_argv
    from .errors import UserError

    try:
        argv = prepare_argv(argv)
    except UserError as error:
        console.print_user_error(str(error))
        return EXIT_USER_ERROR
    from . import sweeps
    from .config import register_resolvers

    register_resolvers()
    sweeps.SWEEP_DIR = None  # set again if this command starts a sweep
    user_full_error = os.environ.get("HYDRA_FULL_ERROR")
    # Hydra lets exceptions through and this function reports them (as one panel for user errors).
    os.environ["HYDRA_FULL_ERROR"] = "1"
    sys.argv = [sys.argv[0], *argv]
    code = 0
    try:
        code = _hydra(argv, user_full_error == "1")
    finally:
        if user_full_error is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = user_full_error
        _stop_idle_workers()
        if sweeps.SWEEP_DIR is not None and Path(sweeps.SWEEP_DIR).is_dir():
            summary = _sweep_summary(sweeps)
            if summary is not None and summary["failed"] and code not in EXIT_SIGNAL.values():
                code = EXIT_SWEEP_FAILED  # whichever launcher ran the jobs
        if "torch.distributed" in sys.modules:
            from .distributed import shutdown

            shutdown(succeeded=code == 0)
        from . import rundir
        from .argv import claimed

        rundir.release()
        rundir.forget_resume_records(claimed.get("resume_records"))
        if claimed.get("existed") is False:  # claimed for a run that never began (a config
            with contextlib.suppress(OSError):  # error): no empty directory left behind
                Path(claimed["dir"]).rmdir()
    return code


def _stop_idle_workers() -> None:
    """A joblib sweep's worker processes sit idle once every job has returned (its files
    written): they are ended here, not waited for at exit, where each one's interpreter
    teardown (torch and torch._dynamo loaded) took about a second."""
    if "joblib" not in sys.modules:
        return
    from joblib.externals.loky import reusable_executor

    executor = getattr(reusable_executor, "_executor", None)  # (None: no sweep ran one)
    if executor is not None:
        executor.shutdown(wait=True, kill_workers=True)


def _sweep_summary(sweeps) -> dict | None:
    from . import console
    from .errors import UserError

    try:
        return sweeps.summarize(sweeps.SWEEP_DIR)
    except UserError as error:  # a sweep that started no job
        console.print_user_error(str(error))
        return None


def _hydra(argv: list[str], full_error: bool) -> int:
    import hydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from . import console
    from .errors import UserError

    global _exit_code
    _exit_code = 0
    compose_once(argv)
    reuse_validated_compositions()
    try:
        hydra.main(config_path=str(config_dir()), config_name="config", version_base="1.3")(_job)()
        return _exit_code
    except UserError as error:
        console.print_user_error(str(error))
        return EXIT_USER_ERROR
    except (HydraException, OmegaConfBaseException) as error:  # composing the config failed
        if full_error:
            raise
        console.print_user_error(_compose_message(error), title="trainer: config error")
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        console.print_user_error("interrupted (Ctrl-C).", title="trainer: interrupted")
        return EXIT_SIGNAL["SIGINT"]


def _compose_message(error: BaseException) -> str:
    """Hydra's message without its internals (search path, object types), with a hint."""
    text = str(error).strip()
    cause = error.__cause__
    if cause is not None and str(cause).strip() and str(cause).strip() not in text:
        text += "\n" + str(cause).strip()
    kept = []
    for line in text.replace("\t", "  ").splitlines():
        if line.strip().startswith("Config search path"):
            break
        if not line.strip().startswith(("object_type=", "full_key:")):
            kept.append(line.rstrip())
    text = "\n".join(kept).strip()
    import re

    from .errors import did_you_mean

    missing = re.search(r"Could not find '([^'/]+)/([^']+)'", text)
    if missing:
        options = re.findall(r"^\s{2,}(\S+)$", text, flags=re.M)
        text += "\n" + did_you_mean(missing.group(2), options).strip()
    if "Could not override" in text:
        key = text.split("'")[1] if "'" in text else ""
        # Hydra's "To append ... use +key" misleads: a typo, or an option of another choice
        text = "\n".join(line for line in text.splitlines() if "To append" not in line)
        owners = _groups_with(key)
        if owners:  # e.g. dataset.path without dataset=csv
            text += f"\n{key} is an option of {' and '.join(owners)}: add {owners[0]} first."
        suggestion = _suggest_key(key).strip()
        text += f"\n{suggestion}" if suggestion else ""
        text += "\nUse `python -m trainer --help` for the groups and options, `--cfg job` for every key."
    if re.search(
        r"no viable alternative|mismatched input|extraneous input|token recognition", text
    ):
        text += (
            "\nValues with spaces, parentheses or other punctuation need quotes, for Hydra "
            "(double) and for the shell (single): 'dataset.exclude=[\"Culmen Length (mm)\"]'."
        )
    return text


def _groups_with(key: str) -> list[str]:
    """The options of a config group that have `key` (group.name), e.g. ['dataset=csv']."""
    from omegaconf import OmegaConf

    group, _, name = key.lstrip("+~").partition(".")
    folder = config_dir() / group
    if not name or group == "hydra" or not folder.is_dir():
        return []
    first = name.split(".")[0]
    return [
        f"{group}={path.stem}"
        for path in sorted(folder.glob("*.yaml"))
        if first in (OmegaConf.load(path) or {})
    ]


def _suggest_key(key: str) -> str:
    from dataclasses import fields

    from .config import SCHEMAS
    from .errors import did_you_mean

    section, _, name = key.partition(".")
    if section in SCHEMAS and name:
        return did_you_mean(name, [f.name for f in fields(SCHEMAS[section])]).replace(
            "'", f"'{section}.", 1
        )
    if not name:  # a setting without its section, e.g. max_epochs=3 for trainer.max_epochs=3
        owners = [s for s, schema in SCHEMAS.items() if section in {f.name for f in fields(schema)}]
        return f"Did you mean '{owners[0]}.{section}'?" if owners else ""
    return ""
