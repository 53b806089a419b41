"""Every command in the README runs as written, in the order shown, in one fresh directory (as a
newcomer would type them), with only overrides that make it fast (fewer epochs, fewer trials).

Code blocks marked ```bash are commands; a ```python block whose first line is `# NAME.py` is a
file the reader saves (the commands after it use it); any other ```python block is a script the
reader runs. Commands that cannot run on a CI machine (a cluster, a second host) are listed in
CANNOT_RUN_HERE with the reason, so a new command is never skipped silently."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import ROOT, cli_env, run_module

pytestmark = pytest.mark.e2e

CANNOT_RUN_HERE = {  # the start of the command: why it is not run
    "pip install": "installs: the CI job itself runs the quick start's install commands",
    "python -m pytest": "the test suite itself",
    "torchrun --nnodes=2": "needs a second machine",
    "python -m trainer -m hydra/launcher=slurm": "needs a SLURM cluster",
}
EXPECTED_TO_FAIL: dict[str, int] = {}  # a command shown to demonstrate an error: its exit status
FAST = {"trainer.max_epochs": "2", "hydra.sweeper.n_trials": "2"}


@dataclass
class Step:
    line: int  # in README.md
    kind: str  # "command" | "file" | "script"
    text: str  # the command line, or the file's / script's source
    name: str = ""  # a file's name


def readme_steps() -> list[Step]:
    steps, language, body, start = [], None, [], 0
    for number, line in enumerate((ROOT / "README.md").read_text().splitlines(), 1):
        if line.startswith("```") and language is None:
            language, body, start = line[3:].strip() or "text", [], number
        elif line.startswith("```"):
            steps += _steps_of(language, body, start)
            language = None
        elif language is not None:
            body.append(line)
    return steps


def _steps_of(language: str, body: list[str], start: int) -> list[Step]:
    if language == "bash":
        return [
            Step(start + i + 1, "command", line.strip())
            for i, line in enumerate(body)
            if line.strip() and not line.lstrip().startswith("#")
        ]
    if language == "python":
        first = body[0].strip()
        if re.fullmatch(r"# [\w/]+\.py", first):
            return [Step(start + 1, "file", "\n".join(body) + "\n", first[2:])]
        return [Step(start + 1, "script", "\n".join(body) + "\n")]
    return []


def _why_not(command: str) -> str | None:
    return next((why for start, why in CANNOT_RUN_HERE.items() if command.startswith(start)), None)


def _run_above(step: Step) -> str | None:
    """A sweep shown twice (in Learning with trainer and in Sweeps) runs once, where it first
    appears. Single runs always run: a later `outputs/runs/<date>/<time>` means the run just
    before it, and so does a command with a <placeholder> itself."""
    words = shlex.split(step.text, comments=True)
    if "<" in step.text or words[:3] != ["python", "-m", "trainer"] or "-m" not in words[3:]:
        return None
    first = next(
        (s for s in STEPS if s.kind == "command" and shlex.split(s.text, comments=True) == words),
        step,
    )
    return None if first is step else f"the same command as README line {first.line}, run there"


def _fast(args: list[str]) -> list[str]:
    """The command's own arguments, with fewer epochs and trials where it trains."""
    if "--help" in args or "--install-completion" in args:
        return args
    keys = {a.split("=", 1)[0].lstrip("+~") for a in args}
    args = [
        f"{a.split('=', 1)[0]}={FAST[a.split('=', 1)[0]]}" if a.split("=", 1)[0] in FAST else a
        for a in args
    ]
    if "trainer.max_epochs" not in keys:
        args.append(f"trainer.max_epochs={FAST['trainer.max_epochs']}")
    if any(a.startswith("hparams_search=") for a in args) and "hydra.sweeper.n_trials" not in keys:
        args.append(f"hydra.sweeper.n_trials={FAST['hydra.sweeper.n_trials']}")
    return args


def _latest(workspace: Path, kind: str) -> str:
    """The newest run (or sweep) the commands before made: what <date>/<time> stands for."""
    made = [p for p in (workspace / "outputs" / kind).glob("*/*") if p.is_dir()]
    assert made, (
        f"a command needs an earlier one in outputs/{kind}, and the README shows none before it"
    )
    return str(max(made, key=os.path.getmtime).relative_to(workspace))


def _argv(command: str, workspace: Path) -> list[str]:
    for kind in ("runs", "sweeps"):
        if f"outputs/{kind}/<date>/<time>" in command:
            command = command.replace(f"outputs/{kind}/<date>/<time>", _latest(workspace, kind))
    if "<job>" in command:  # a sweep's first job, and <another job> its second
        sweep = workspace / _latest(workspace, "sweeps")
        jobs = sorted(
            (p for p in sweep.iterdir() if p.is_dir() and p.name.split("_")[0].isdigit()),
            key=lambda p: int(p.name.split("_")[0]),
        )
        command = command.replace("<job>", jobs[0].name).replace("<another job>", jobs[1].name)
    words = shlex.split(command, comments=True)
    bin_dir = Path(sys.executable).parent
    if words[:3] == ["python", "-m", "trainer"]:
        return [sys.executable, "-m", "trainer", *_fast(words[3:])]
    if words[0] == "trainer":
        return [str(bin_dir / "trainer"), *_fast(words[1:])]
    if words[0] == "torchrun":  # torchrun [its options] -m trainer [ours]
        module = words.index("-m") + 2
        return [
            sys.executable,
            "-m",
            "torch.distributed.run",
            *words[1:module],
            *_fast(words[module:]),
        ]
    if words[0] == "tensorboard":  # a server runs until stopped: read the same logdir instead
        return [str(bin_dir / "tensorboard"), *words[1:], "--inspect"]
    if words[0] == "python":
        return [sys.executable, *words[1:]]
    return words


STEPS = readme_steps()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A directory standing for a fresh clone: the README's example files are where it says."""
    root = tmp_path_factory.mktemp("clone")
    (root / "tests").symlink_to(ROOT / "tests")
    return root


def test_the_readme_shows_commands_at_all():
    kinds = [s.kind for s in STEPS]
    assert kinds.count("command") >= 25 and "file" in kinds and "script" in kinds


@pytest.mark.parametrize("step", STEPS, ids=[f"line{s.line}" for s in STEPS])
def test_readme_step_runs_as_written(step: Step, workspace: Path):
    if step.kind == "file":
        (workspace / step.name).write_text(step.text)
        return
    if step.kind == "script":
        argv = [sys.executable, "-c", step.text.replace("max_epochs=50", "max_epochs=2")]
    else:
        why = _why_not(step.text) or _run_above(step)
        if why:
            pytest.skip(f"README line {step.line}: {why}")
        argv = _argv(step.text, workspace)
    env = cli_env()
    env["PYTHONPATH"] = os.pathsep.join([str(workspace), env["PYTHONPATH"]])
    env["HOME"] = str(workspace)  # (--install-completion writes to ~/.bashrc)
    if argv[:2] == [sys.executable, "-m"]:  # python -m trainer...: from the suite's fork server
        result = run_module(argv[2], argv[3:], workspace, env=env, timeout=300)
    else:
        result = subprocess.run(
            argv, cwd=workspace, env=env, capture_output=True, text=True, timeout=300
        )
    shown = re.sub(r"outputs/runs/\S+", "<run>", " ".join(shlex.split(step.text, comments=True)))
    expected = EXPECTED_TO_FAIL.get(shown, 0) if step.kind == "command" else 0
    assert result.returncode == expected, (
        f"README line {step.line}: {step.text}\nran: {shlex.join(argv)}\n"
        f"stdout:\n{result.stdout[-2500:]}\nstderr:\n{result.stderr[-2500:]}"
    )
