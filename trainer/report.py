"""What a person reads at the start and the end of a run: a short panel, a summary table, the
health report. Each is printed with rich and logged as plain text to the run's log file."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from . import console


def _pairs_table(rows: list[tuple[str, str | Text]]) -> Table:
    """A two-column key/value grid. Values are plain text (never parsed as rich markup: error
    messages and overrides contain brackets); pass a Text to style one."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, value if isinstance(value, Text) else Text(str(value)))
    return table


def _plain(title: str, rows: list[tuple[str, str | Text]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(
        [title] + [f"  {k:<{width}}  {v.plain if isinstance(v, Text) else v}" for k, v in rows]
    )


def start_panel(rows: list[tuple[str, str]]) -> None:
    console.show(
        Panel(
            _pairs_table(rows),
            title="trainer",
            title_align="left",
            border_style="cyan",
            expand=False,
        ),
        _plain("run", rows),
    )


def config_tree(config: dict) -> None:
    """The whole composed config as a tree (print_config=true)."""
    import yaml
    from rich.markup import escape

    tree = Tree("config", guide_style="dim")

    def add(node: Tree, value: dict) -> None:
        for key, child in value.items():
            if isinstance(child, dict) and child:
                add(node.add(f"[bold]{escape(str(key))}[/]"), child)
            else:
                node.add(f"{escape(str(key))}: [green]{escape(str(child))}[/]")

    add(tree, config)
    console.show(tree, "config:\n" + yaml.safe_dump(config, sort_keys=False))


def tensorboard_command(path: str | Path) -> str:
    return f"tensorboard --logdir {shlex.quote(str(path))}"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def summary_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """What a run's summary says, as (key, text) rows: the end panel and TensorBoard's text tab."""
    reason = f" ({summary['stop_reason']})" if summary.get("stop_reason") else ""
    rows = [("status", summary["status"] + reason)]
    if summary.get("error"):
        rows.append(("error", summary["error"]))
    if summary.get("best_val_metric") is not None:
        best = f"{summary['monitor']} {_fmt(summary['best_val_metric'])}"
        rows.append(("best", f"{best} at epoch {summary['best_epoch']}"))
    final_val = (summary.get("final") or {}).get("val") or {}
    if final_val:
        rows.append(("final val", ", ".join(f"{k} {_fmt(v)}" for k, v in final_val.items())))
    if summary.get("test"):
        tested_on = f"  (on {summary['tested_on']})" if summary.get("tested_on") else ""
        test = ", ".join(f"{k} {_fmt(v)}" for k, v in summary["test"].items())
        rows.append(("test", test + tested_on))
    skipped = f", {summary['skipped_steps']} skipped" if summary.get("skipped_steps") else ""
    rows.append(
        (
            "epochs",
            f"{summary['epochs_run']} of {summary['max_epochs']} "
            f"({summary['global_step']:,} optimizer steps{skipped})",
        )
    )
    rows.append(("wall time", f"{summary['wall_time_s']:.1f} s"))
    return rows


def end_summary(summary: dict[str, Any], run_dir: Path, writes_files: bool = True) -> None:
    """The summary table and the health report."""
    status = summary["status"]
    style = {"completed": "green", "stopped_early": "green", "interrupted": "yellow"}.get(
        status, "red"
    )
    rows: list[tuple[str, str | Text]] = list(summary_rows(summary))
    rows[0] = ("status", Text(rows[0][1], style=style))
    commands = []  # printed below the panel, unwrapped, so that each can be copied whole
    if writes_files:
        rows.append(("run dir", str(run_dir)))
        if (run_dir / "checkpoints" / "last.pt").exists() or status == "interrupted":
            rows.append(("checkpoints", str(run_dir / "checkpoints")))
            commands.append(
                ("resume", f"python -m trainer trainer.resume={shlex.quote(str(run_dir))}")
            )
        if any(run_dir.glob("events.out.tfevents.*")) or (run_dir / "tensorboard").exists():
            commands.append(("tensorboard", tensorboard_command(run_dir)))
    console.show(
        Panel(
            _pairs_table(rows),
            title="summary",
            title_align="left",
            border_style=style,
            expand=False,
        ),
        _plain("summary", rows),
    )
    for name, command in commands:
        console.show(Text(f"{name + ':':<13}{command}"), f"  {name}: {command}", soft_wrap=True)
    health_report(summary.get("health") or [])


def command_line(overrides: list[str]) -> str:
    """The command that re-runs a job with these overrides."""
    # Sweep machinery is not part of a run: hparams_search only configures the sweeper.
    kept = [o for o in overrides if not o.startswith(("hydra.", "hydra/", "hparams_search="))]
    return "python -m trainer " + " ".join(shlex.quote(o) for o in kept)


def health_report(findings: list[dict[str, Any]]) -> None:
    if not findings:
        return
    marks = {"error": "[red]✗[/]", "warning": "[yellow]![/]", "info": "[green]✓[/]"}
    table = Table.grid(padding=(0, 1))
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    for finding in findings:
        mark = (
            marks.get(finding["severity"], "-")
            if finding["kind"] == "ok" or finding["severity"] != "info"
            else "[cyan]i[/]"
        )
        table.add_row(mark, Text(finding["message"]))
    plain = "health report:\n" + "\n".join(f"  - {f['message']}" for f in findings)
    console.show(
        Panel(
            table, title="health report", title_align="left", border_style="magenta", expand=False
        ),
        plain,
    )


def key_values(title: str, rows: list[tuple[str, str]], style: str = "green") -> None:
    console.show(
        Panel(
            _pairs_table(rows), title=title, title_align="left", border_style=style, expand=False
        ),
        _plain(title, rows),
    )
