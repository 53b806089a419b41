"""`trainer --install-completion [bash|zsh|fish]`: tab completion of groups, options and keys, in
one command. It adds one line to the shell's start-up file (once; running it again changes
nothing) that asks Hydra for its completion script at shell start. Completion needs the `trainer`
console script: the shell completes commands, and `python -m trainer` is Python's."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import EXIT_USER_ERROR

SHELLS = {
    # shell: (start-up file under $HOME, the lines it needs)
    "bash": (".bashrc", ['eval "$(trainer -sc install=bash)"']),
    "zsh": (
        ".zshrc",
        ["autoload -Uz bashcompinit && bashcompinit", 'eval "$(trainer -sc install=bash)"'],
    ),
    "fish": (".config/fish/config.fish", ["trainer -sc install=fish | source"]),
}
MARK = "  # trainer: tab completion"


def install(args: list[str]) -> int:
    from . import console

    shell = args[0] if args else Path(os.environ.get("SHELL", "bash")).name
    if shell not in SHELLS or len(args) > 1:
        console.print_user_error(
            f"trainer --install-completion: unknown shell {' '.join(args) or shell!r}. "
            f"Choose one of: {', '.join(SHELLS)}, e.g. `trainer --install-completion bash`."
        )
        return EXIT_USER_ERROR
    name, needed = SHELLS[shell]
    rc_file = Path.home() / name
    present = rc_file.read_text() if rc_file.is_file() else ""
    missing = [line for line in needed if line not in present]
    if not missing:
        print(f"Tab completion for {shell} is already installed in {rc_file}; nothing changed.")
        return 0
    rc_file.parent.mkdir(parents=True, exist_ok=True)
    with rc_file.open("a") as rc:
        rc.write("" if present.endswith("\n") or not present else "\n")
        rc.write("".join(f"{line}{MARK}\n" for line in missing))
    print(
        f"Added to {rc_file}:\n"
        + "".join(f"  {line}\n" for line in missing)
        + f"Open a new terminal (or run: source {rc_file}) and try: trainer optimizer=<TAB>"
    )
    return 0
