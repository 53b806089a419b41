"""Test helpers: small data sets, a Trainer factory, and the real CLI in a subprocess."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def moons_data(n_samples: int = 400, seed: int = 0, **kwargs):
    from trainer.data import DataModule
    from trainer.data.synthetic import moons

    return DataModule(moons(n_samples=n_samples, seed=seed), **kwargs)


def make_trainer(
    run_dir,
    data=None,
    *,
    hidden=(16, 16),
    dropout=0.0,
    lr=0.01,
    optimizer=None,
    loss=None,
    callbacks=None,
    seed=0,
    model=None,
    **settings,
):
    """A small Trainer on moons (or `data`) for unit tests; `settings` go to Trainer."""
    import torch

    from trainer import Trainer, seed_everything
    from trainer.losses import auto
    from trainer.models import MLP

    data = data if data is not None else moons_data()
    seed_everything(seed)
    loss = loss if loss is not None else auto(data.spec.task)
    if model is None:
        from trainer.losses import head_for

        head = head_for(
            loss, data.spec.task, data.spec.num_classes, data.spec.num_targets, "loss", "data"
        )
        model = MLP(
            data.spec.input_shape, head.num_outputs, hidden_sizes=list(hidden), dropout=dropout
        )
    optimizer = optimizer or functools.partial(torch.optim.AdamW, lr=lr)
    settings.setdefault("max_epochs", 5)
    settings.setdefault("batch_size", 32)
    trainer = Trainer(
        model, loss, optimizer, callbacks=callbacks, run_dir=run_dir, seed=seed, **settings
    )
    return trainer, data


# ---------------------------------------------------------------------- the real CLI
def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests"), env.get("PYTHONPATH", "")])
    env["COLUMNS"] = "200"
    env.pop("HYDRA_FULL_ERROR", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


# The CLI runs of the suite start from a fork server that has already imported the heavy
# third-party modules (torch, its dynamo, Hydra, scikit-learn, matplotlib, TensorBoard), so each
# run is a new process that executes `python -m trainer` from the start (argv, cwd, environment,
# sys.path, stdout/stderr, exit status, atexit) without paying ~2 s of imports: this cuts the
# suite's wall time by more than half on 2 cores. Nothing of `trainer` itself is preloaded.
# Tests about start-up or imports use a fresh interpreter of their own; TRAINER_TEST_FRESH=1 runs
# every CLI call in a fresh interpreter instead (the slow, exact way).
PRELOAD = [
    "torch",
    "torch._dynamo",  # (every torch optimizer imports it on its first use)
    "torch.utils.tensorboard",
    "hydra",
    "hydra.core.hydra_config",
    "omegaconf",
    "numpy",
    "sklearn.datasets",
    "sklearn.model_selection",
    "matplotlib.figure",
    "matplotlib.backends.backend_agg",
    "rich.console",
    "PIL.Image",
]


@functools.cache
def _fork_server():
    import multiprocessing

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def _module_child(module, argv, cwd, env, out_path, err_path):
    """In a process forked from the server: become `python -m <module> <argv>`, then exit as the
    interpreter would (threads joined, atexit handlers run, streams flushed)."""
    import atexit
    import runpy
    import threading
    import traceback

    for fd, path in ((1, out_path), (2, err_path)):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    base = [p for p in sys.path if "site-packages" in p or "/lib/python" in p]
    extra = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:] = [cwd, *extra, *base]
    sys.argv = ["-m", *argv]
    code = 0
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as done:
        if isinstance(done.code, int) or done.code is None:
            code = done.code or 0
        else:
            print(done.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    # What the interpreter does at exit, in its order: threading's exit hooks (e.g. joblib's
    # executor shutting down) and a join of the non-daemon threads, then the atexit handlers.
    threading._shutdown()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run_module(module: str, args, cwd: Path, *, env: dict | None = None, timeout: int = 300):
    """`python -m <module> <args>` in `cwd` with the suite's environment plus `env`: forked from
    the server, or in a fresh interpreter when TRAINER_TEST_FRESH=1."""
    env, argv = {**cli_env(), **(env or {})}, [str(a) for a in args]
    command = [sys.executable, "-m", module, *argv]
    if os.environ.get("TRAINER_TEST_FRESH") == "1":
        return subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
        )
    import tempfile

    with tempfile.TemporaryDirectory(prefix="cli-") as folder:
        out, err = Path(folder) / "stdout", Path(folder) / "stderr"
        process = _fork_server().Process(
            target=_module_child, args=(module, argv, str(cwd), env, str(out), str(err))
        )
        process.start()
        process.join(timeout)
        if process.exitcode is None:
            process.kill()
            process.join()
            raise subprocess.TimeoutExpired(command, timeout)
        output = [p.read_text(errors="replace") if p.exists() else "" for p in (out, err)]
        return subprocess.CompletedProcess(command, process.exitcode, *output)


def trainer_cli(args, cwd: Path, *, env: dict | None = None, timeout: int = 300):
    """`python -m trainer <args>` in `cwd` (see `run_module`)."""
    return run_module("trainer", args, cwd, env=env, timeout=timeout)


def run_cli(
    args,
    tmp_path: Path,
    *,
    run_dir: Path | None = None,
    timeout: int = 300,
    cwd: Path | None = None,
    check: bool | None = None,
    multirun: bool = False,
):
    """`python -m trainer <args>` with its run (or sweep) directory under tmp_path."""
    args = list(args)
    if multirun:
        target = run_dir or tmp_path / "sweep"
        args = ["-m", *args, f"hydra.sweep.dir={target}"]
    else:
        target = run_dir or tmp_path / "run"
        if not any(a.startswith("hydra.run.dir=") for a in args):
            args.append(f"hydra.run.dir={target}")
    result = trainer_cli(args, cwd or tmp_path, timeout=timeout)
    result.dir = target
    if check is True and result.returncode != 0:
        raise AssertionError(
            f"exit {result.returncode}\nstdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
        )
    return result


def metrics_of(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "metrics.json").read_text())


FAST = ["trainer.max_epochs=3", "logger=none"]  # quick CLI runs where TensorBoard is not the point


class CollectiveCounter:
    """A callback (used from the command line under torchrun) that counts the torch.distributed
    collectives the tool calls from Python and writes the counts to <run dir>/collectives_rank<N>.json.
    DDP's own gradient all-reduce runs inside its C++ reducer and is not counted."""

    NAMES = (
        "all_reduce",
        "broadcast",
        "all_gather",
        "all_gather_object",
        "broadcast_object_list",
        "barrier",
        "reduce",
        "gather",
        "scatter",
    )

    def __new__(cls):
        from trainer.callbacks import Callback

        class _Counter(Callback):
            def on_fit_start(self, run):
                import torch.distributed as dist

                self.counts, self.originals = {}, {}
                for name in CollectiveCounter.NAMES:
                    original = getattr(dist, name)
                    self.originals[name] = original

                    def counted(*args, _original=original, _name=name, **kwargs):
                        self.counts[_name] = self.counts.get(_name, 0) + 1
                        return _original(*args, **kwargs)

                    setattr(dist, name, counted)

            def on_fit_end(self, run):
                import torch.distributed as dist

                for name, original in self.originals.items():
                    setattr(dist, name, original)
                record = {
                    "counts": self.counts,
                    "steps": run.state.global_step,
                    "epochs": run.state.epoch,
                }
                path = Path(run.run_dir) / f"collectives_rank{dist.get_rank()}.json"
                path.write_text(json.dumps(record))

        return _Counter()


def _squash(text: str) -> str:
    """Text as a terminal panel shows it, without the box and the line breaks (rich folds long
    words such as paths across lines): no box-drawing characters, no whitespace at all."""
    import re

    return re.sub(r"[\s│╭╮╰╯─]", "", text)


def unsaid(result, *phrases: str) -> list[str]:
    """The phrases the command's output (stdout and stderr) does not say."""
    output = _squash(result.stdout + result.stderr)
    return [phrase for phrase in phrases if _squash(phrase) not in output]
