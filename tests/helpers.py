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
    result = subprocess.run(
        [sys.executable, "-m", "trainer", *args],
        cwd=cwd or tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
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
