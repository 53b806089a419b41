"""Pieces of messages about a table: values shown short, and fixes a user can paste as printed
(quoted for Hydra's override grammar and for the shell)."""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Iterable


def quoted(value: object, limit: int = 40) -> str:
    """A value for a message, in quotes, cut short when long."""
    text = str(value)
    if len(text) <= limit:
        return f"'{text}'"
    return f"'{text[:limit]}...' ({len(text)} characters)"


def quoted_list(values: list, limit: int = 5) -> str:
    shown = ", ".join(quoted(v) for v in values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


def plural(count: int, word: str) -> str:
    """'1 cell', '3 cells'."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def lines_text(lines: list[int], limit: int = 5) -> str:
    """'line 7' or 'lines 7, 9, 12 and 3 more'."""
    shown = ", ".join(str(n) for n in lines[:limit])
    more = f" and {len(lines) - limit} more" if len(lines) > limit else ""
    return f"line{'s' if len(lines) > 1 else ''} {shown}{more}"


_PLAIN = re.compile(r"[A-Za-z_./-][A-Za-z0-9_./-]*( [A-Za-z0-9_./-]+)*")
_KEYWORDS = {"true", "false", "null", "nan", "inf", "none"}


def hydra_value(value: str) -> str:
    """`value` as Hydra's override grammar reads it back unchanged (quoted when needed)."""
    if _PLAIN.fullmatch(value) and value.lower() not in _KEYWORDS and not is_number(value):
        return value
    return '"' + value.replace('"', '\\"') + '"'


def override(key: str, value: str) -> str:
    """A command-line override to paste into a shell: key=value, quoted for Hydra and the shell."""
    return shlex.quote(f"{key}={hydra_value(value)}")


def list_override(key: str, values: Iterable[str]) -> str:
    """key=[a,b] for a shell and Hydra, e.g. 'dataset.exclude=["Culmen Length (mm)"]'; with
    `key=[...]` in place of values too long to show in a message."""
    values = list(values)
    if any(len(v) > 60 for v in values):
        return f"{key}=[...]"
    return shlex.quote(f"{key}=[{','.join(hydra_value(v) for v in values)}]")


def closest(value: str, choices: Iterable[str]) -> str | None:
    """The choice `value` most likely meant: the same but for case and spaces, or a close one."""
    choices = [str(c) for c in choices]
    squeezed = {re.sub(r"[\W_]+", "", c).casefold(): c for c in choices}
    same = squeezed.get(re.sub(r"[\W_]+", "", value).casefold())
    if same is not None:
        return same
    match = difflib.get_close_matches(value, choices, n=1)
    return match[0] if match else None


# ---------------------------------------------------------------------- cells


def is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False
