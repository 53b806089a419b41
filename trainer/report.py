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
from .paths import resume_override


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


def demonstration(text: str) -> Text:
    """A pitfall-lab line: styled so that nobody takes the run for a normal one."""
    return Text(text, style="bold yellow")


def pitfall_text(pitfall: dict[str, Any]) -> str:
    """The end panel's line for a pitfall-lab run (metrics.json's `pitfall`)."""
    return (
        f"{pitfall['name']} — a demonstration: this run repeated a classic mistake on purpose "
        f"({pitfall['what']}); the health report says what it did"
    )


def summary_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """What a run's summary says, as (key, text) rows: the end panel and TensorBoard's text tab."""
    reason = f" ({summary['stop_reason']})" if summary.get("stop_reason") else ""
    rows = [("status", summary["status"] + reason)]
    if summary.get("pitfall"):
        rows.insert(0, ("pitfall lab", pitfall_text(summary["pitfall"])))
    if summary.get("error"):
        rows.append(("error", summary["error"]))
    if summary.get("best_val_metric") is not None:
        best = f"{summary['monitor']} {_fmt(summary['best_val_metric'])}"
        rows.append(("best", f"{best} at epoch {summary['best_epoch']}"))
    final_val = (summary.get("final") or {}).get("val") or {}
    if final_val:
        shown = {k: v for k, v in final_val.items() if "/" not in k}  # not each label's own
        rows.append(("final val", ", ".join(f"{k} {_fmt(v)}" for k, v in shown.items())))
    absent = summary.get("absent_splits") or {}  # data.split left one out on purpose
    if absent.get("val"):
        rows.append(("final val", absent["val"]))
    if absent.get("test"):
        rows.append(("test", absent["test"]))
    if summary.get("test"):
        tested_on = f"  (on {summary['tested_on']})" if summary.get("tested_on") else ""
        test = ", ".join(f"{k} {_fmt(v)}" for k, v in summary["test"].items() if "/" not in k)
        rows.append(("test", test + tested_on))
    if summary.get("linear_weights"):
        from .linear_weights import equation

        rows.append(("learned", f"{equation(summary['linear_weights'])}  (original units)"))
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
    at = 1 if summary.get("pitfall") else 0
    rows[at] = ("status", Text(rows[at][1], style=style))
    if at:
        rows[0] = (rows[0][0], demonstration(str(rows[0][1])))
    commands = []  # printed below the panel, unwrapped, so that each can be copied whole
    if writes_files:
        rows.append(("run dir", str(run_dir)))
        if (run_dir / "checkpoints" / "last.pt").exists() or status == "interrupted":
            rows.append(("checkpoints", str(run_dir / "checkpoints")))
            commands.append(("resume", f"python -m trainer {resume_override(run_dir)}"))
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
    health_report(summary.get("health") or [], summary.get("health_verdict"))


def command_line(overrides: list[str]) -> str:
    """The command that re-runs a job with these overrides."""
    # Sweep machinery is not part of a run: hparams_search only configures the sweeper.
    kept = [o for o in overrides if not o.startswith(("hydra.", "hydra/", "hparams_search="))]
    return "python -m trainer " + " ".join(shlex.quote(o) for o in kept)


def health_report(findings: list[dict[str, Any]], main: str | None = None) -> None:
    """The findings, most severe first, each with its fix as one command to copy; the verdict
    (`main`: metrics.json's health_verdict) in the title: "healthy", or the main finding's kind."""
    if not findings:
        return
    if main is None:  # (an older metrics.json) the first warning or error: they come first
        serious = [f["kind"] for f in findings if f["severity"] in ("error", "warning")]
        main = serious[0] if serious else "healthy"
    marks = {"error": "[red]✗[/]", "warning": "[yellow]![/]", "info": "[cyan]i[/]"}
    table = Table.grid(padding=(0, 1))
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    lines, commands = [], []
    for finding in findings:
        mark = "[green]✓[/]" if finding["kind"] == "ok" else marks.get(finding["severity"], "-")
        table.add_row(mark, Text(finding["message"]))
        lines.append(f"  - {finding['severity']}: {finding['message']}")
        if finding.get("advice"):  # below the panel, unwrapped, to copy whole
            commands.append(f"try:         {finding['advice']}")
            lines.append(f"    try: {finding['advice']}")
    judged = [f for f in findings if f["kind"] != "too_short"]
    title = f"health report: {main}" if judged else "health report: too short to judge"
    style = {"healthy": "green"}.get(main, "red" if main == "divergence" else "yellow")
    console.show(
        Panel(table, title=title, title_align="left", border_style=style, expand=False),
        f"{title}\n" + "\n".join(lines),
    )
    for command in commands:
        console.show(Text(command), None, soft_wrap=True)


def key_values(title: str, rows: list[tuple[str, str]], style: str = "green") -> None:
    console.show(
        Panel(
            _pairs_table(rows), title=title, title_align="left", border_style=style, expand=False
        ),
        _plain(title, rows),
    )
