"""`python -m trainer --help`: every config group with a line of description and its options, read
from the YAML files themselves (their first comment), so the help cannot drift from the configs.
Nothing heavy is imported: --help takes a fraction of a second."""

from __future__ import annotations

import textwrap
from pathlib import Path

from .paths import config_dir

WIDTH = 100

GROUPS = {  # one line per group: what choosing from it does
    "dataset": "what to learn from (one choice)",
    "model": "the network (one choice); input and output sizes come from the data",
    "loss": "what training minimises (one choice; auto follows the task)",
    "optimizer": "how the weights move (one choice)",
    "scheduler": "how the learning rate changes during the run (one choice)",
    "logger": "where the curves go (one choice)",
    "trainer": "the loop's settings: epochs, batch size, precision, clipping, seed, ...",
    "pitfall": "the pitfall lab: a classic mistake made on purpose (+pitfall=NAME; off unless chosen)",
    "experiment": "a ready-made comparison (a sweep preset: use with -m); off unless chosen",
    "hparams_search": "an automatic hyperparameter search (use with -m); off unless chosen",
}

CALLBACK_SET = """\
  callbacks: a SET, all four on by default (callbacks=default):
     {options}
     remove one:   ~callbacks.early_stopping        change one: callbacks.early_stopping.patience=20
     none at all:  callbacks=none                   your own:   +callbacks.NAME._target_=mypkg.MyCallback
     (callbacks=<one name> keeps ONLY that one; the start panel says so)"""

EXAMPLES = """\
examples:
  python -m trainer                                        # moons + MLP + AdamW, a few seconds
  python -m trainer optimizer=sgd optimizer.lr=0.1 optimizer.momentum=0.9
  python -m trainer dataset=digits model=cnn trainer.max_epochs=20
  python -m trainer dataset=csv dataset.path=my.csv dataset.target=label
  python -m trainer -m optimizer.lr=1e-4,1e-3,1e-2         # a sweep: one run directory per value
  python -m trainer -m experiment=compare_optimizers        # SGD, SGD+momentum, Adam, AdamW
  python -m trainer mode=lr_find                            # learning-rate range test
  python -m trainer -m +pitfall=none,forget_zero_grad       # the pitfall lab: a mistake side by side
  python -m trainer.schedule scheduler=cosine               # draw a schedule, no training
  python -m trainer model=custom model._target_=mymodels.Net # your own nn.Module
  python -m trainer.runs                                    # every run and sweep, newest first
  python -m trainer trainer.resume=outputs/runs/<date>/<time>           # continue a run
  python -m trainer mode=test trainer.resume=outputs/runs/<date>/<time> # evaluate its checkpoint
  tensorboard --logdir outputs                              # compare every run

modes: mode=train (default) | test | predict | lr_find
more: --cfg job (print the composed config), --hydra-help (Hydra's options),
      trainer --install-completion (tab completion for bash, zsh or fish), README.md"""


def description(path: Path) -> str:
    """A YAML's leading comment, joined across lines, without the example command or the
    install hint that some end with (those are for readers of the file)."""
    words = []
    for line in path.read_text().splitlines():
        if line.startswith("# @package"):
            continue  # Hydra's directive, not a description
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        for marker in ("python -m trainer", "(needs:", "Remove one:"):
            text = text.split(marker)[0].strip()
        if text:
            words.append(text)
    return " ".join(words)


def _option_lines(options: list[Path], default: str | None) -> list[str]:
    width = max(len(p.stem) for p in options)
    indent = " " * (5 + width + 2)
    lines = []
    for option in options:
        mark = "*" if option.stem == default else " "
        first = f"   {mark} {option.stem:<{width}}  "
        lines += textwrap.wrap(
            description(option), WIDTH, initial_indent=first, subsequent_indent=indent
        ) or [first.rstrip()]
    return lines


def help_text() -> str:
    root = config_dir()
    lines = [
        "trainer: compose a data set, model, loss, optimizer and scheduler; train, validate, test.",
        "",
        "usage: python -m trainer [group=option ...] [key=value ...] [-m]",
        "",
        "config groups (* = default):",
    ]
    chosen = defaults()
    for group in sorted(p for p in root.iterdir() if p.is_dir() and p.name != "hydra"):
        options = sorted(
            group.glob("*.yaml"), key=lambda p: (p.stem != chosen.get(group.name), p.stem)
        )
        if not options:
            continue
        if group.name == "callbacks":
            members = [p for p in options if p.stem not in ("default", "none")]
            listed = "\n".join(_option_lines(members, None)).strip()
            lines.append(CALLBACK_SET.format(options=listed))
            continue
        lines.append(f"  {group.name}: {GROUPS.get(group.name, '')}".rstrip(": "))
        lines += _option_lines(options, chosen.get(group.name))
    return "\n".join([*lines, "", EXAMPLES])


def defaults() -> dict[str, str]:
    """The option each group's default selects, from the primary config's defaults list."""
    from omegaconf import OmegaConf

    from .argv import primary_config

    chosen = {}
    for entry in OmegaConf.to_container(primary_config()).get("defaults", []):
        if isinstance(entry, dict):
            for key, value in entry.items():
                if value is not None and not str(key).startswith("override"):
                    chosen[str(key)] = str(value)
    return chosen
