"""The sweep's ranking table as a person reads it at the end of a sweep (printed in the launching
process, which has no run log file); `sweeps.summarize` builds the summary it shows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .job_output import short_numbers

OK_STATUSES = ("completed", "stopped_early")  # how a run that counts in the ranking ended
TEST_SHOWN = ("accuracy", "r2", "loss")  # the chosen run's test metrics, in this order


def _fmt(value) -> str:
    return "" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def job_time(row: dict[str, Any]) -> str:
    """The job's wall time; a sweep from before job times were recorded shows its training time."""
    if row.get("job_wall_time_s") is not None:
        return f"{row['job_wall_time_s']:.1f}s"
    if row.get("wall_time_s") is not None:
        return f"{row['wall_time_s']:.1f}s (training)"
    return ""


def _switched(summary: dict[str, Any]) -> bool:
    """Ranked by a metric some runs did not monitor (their losses were not comparable)."""
    metric = summary.get("ranked_by")
    return any(r.get("monitor") not in (None, metric) for r in summary["runs"])


def table_rows(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The table's header and cells, one list per run in rank order."""
    metric = summary.get("ranked_by") or "metric"
    value_column = metric if _switched(summary) else f"best {metric}"
    header = ["#", "job", "overrides", value_column, "epoch", "epochs", "status", "health", "time"]
    cells = []
    for row in summary["runs"]:
        cells.append(
            [
                _fmt(row.get("rank")),
                row["job"].split("_", 1)[0],
                short_numbers(row.get("overrides", "")),
                _fmt(row.get("ranked_value")),
                _fmt(row.get("best_epoch")),
                _fmt(row.get("epochs")),
                row.get("status", ""),
                row.get("health") or "",
                job_time(row),
            ]
        )
    return header, cells


def title(summary: dict[str, Any]) -> str:
    metric, mode = summary.get("ranked_by") or "metric", summary.get("ranked_mode") or "min"
    what = f"{metric} at each run's best epoch" if _switched(summary) else f"best {metric}"
    return f"sweep: {len(summary['runs'])} runs ranked by {what} ({mode})"


def chosen_test(best: dict[str, Any]) -> str | None:
    """The chosen run's test metrics, the only ones the table shows: the test split measures the
    chosen run, it does not choose it."""
    shown = [k for k in TEST_SHOWN if f"test_{k}" in best]
    if not shown:
        return None
    values = ", ".join(f"{k} {_fmt(best[f'test_{k}'])}" for k in shown)
    return f"  test:   {values} (this run only; the test split is not used to rank or choose)"


def print_summary(summary: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    from .console import console
    from .report import tensorboard_command

    out = console()
    if summary.get("ranking_note"):
        out.print(f"note: {summary['ranking_note']}", soft_wrap=True, markup=False, style="yellow")
    header, cells = table_rows(summary)
    table = Table(title=title(summary), title_justify="left")
    for name in header:
        table.add_column(name, overflow="fold")
    for row, line in zip(summary["runs"], cells):
        ok = row.get("status") in OK_STATUSES
        table.add_row(*(escape(cell) for cell in line), style=None if ok else "red")
    out.print(table)
    lines = [f"summary: {Path(summary['sweep_dir']) / 'summary.csv'} and summary.json"]
    best = summary["best"]
    if best:
        lines.append(f"best run: {best['run_dir']}")
        lines.append(f"  re-run: {best['command']}")
        test = chosen_test(best)
        lines += [test] if test else []
    for row in summary["runs"]:
        if row.get("status") not in OK_STATUSES:
            job = row["job"].split("_", 1)[0]
            lines.append(
                f"failed: job {job} ({row.get('overrides')}): {row.get('error') or row.get('status')}"
            )
    lines.append(f"compare: {tensorboard_command(summary['sweep_dir'])}")
    for line in lines:
        out.print(
            line, soft_wrap=True, markup=False, style="red" if line.startswith("failed") else None
        )
