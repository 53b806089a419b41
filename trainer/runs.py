"""`python -m trainer.runs [DIR]`: the runs and sweeps under DIR (default outputs/), newest first.

One row per run: when it started, its directory, its overrides, status, epochs, the best epoch's
monitored metric, the test metric and the health verdict. A sweep is one row with its jobs below
it. Only files the runs wrote are read; nothing is written. `--json` prints the same for scripts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from . import run_files
from .errors import UserError, choices_text, did_you_mean
from .paths import resume_override

USAGE_EXAMPLES = """examples:
  python -m trainer.runs                              every run under outputs/
  python -m trainer.runs outputs/sweeps --limit 3     the 3 newest sweeps
  python -m trainer.runs --status failed,interrupted  what needs a look
  python -m trainer.runs --json | jq '.runs[0].run_dir'

statuses: completed, stopped_early (both: finished), interrupted, failed, running, killed (its
process is gone without recording an end), missing (no metrics.json: it never started),
unreadable (its metrics.json is damaged)."""


def _statuses(text: str | None) -> set[str] | None:
    if text is None:
        return None
    wanted: set[str] = set()
    valid = [*run_files.STATUSES, *run_files.STATUS_GROUPS]
    for name in (part.strip() for part in text.split(",")):
        if name in run_files.STATUS_GROUPS:
            wanted.update(run_files.STATUS_GROUPS[name])
        elif name in run_files.STATUSES:
            wanted.add(name)
        else:
            raise UserError(
                f"--status: unknown status '{name}'.{did_you_mean(name, valid)} Valid statuses: "
                f"{choices_text(valid)} (several with commas: --status failed,interrupted).",
                key="--status",
            )
    return wanted


def _sweep_entry(sweep_dir: Path, job_dirs: list[Path]) -> dict[str, Any]:
    """A sweep and its jobs (in job order); each job shows what varies across the sweep."""
    from .sweeps import _job_number, _swept, _varying

    jobs = []
    for job_dir in sorted(job_dirs, key=_job_number):
        run = run_files.read_run(job_dir)
        if run is not None:
            jobs.append(run)
    varying = _varying([job["overrides"] for job in jobs]) if jobs else set()
    differ = {  # keys whose value is not the same in every job, "noise" such as seeds included
        key
        for key in {o.partition("=")[0] for job in jobs for o in job["overrides"]}
        if len({_value_of(job["overrides"], key) for job in jobs}) > 1
    }
    swept = _swept
    if differ and not varying & differ:  # only noise varies (a sweep over trainer.seed)
        varying, swept = differ, list
    elif differ:
        varying &= differ
    common: list[str] = []
    for job in jobs:
        job["sweep_dir"], job["job"] = str(sweep_dir.absolute()), Path(job["run_dir"]).name
        job["varies"] = [o for o in swept(job["overrides"]) if o.partition("=")[0] in varying]
        common += [o for o in job["overrides"] if o not in job["varies"] and o not in common]
    times = [job["started_at"] for job in jobs if job["started_at"]]
    return {
        "path": sweep_dir,
        "started_at": min(times) if times else None,
        "overrides": [o for o in common if all(o in job["overrides"] for job in jobs)],
        "jobs": jobs,
    }


def _value_of(overrides: list[str], key: str) -> str | None:
    return next((o.partition("=")[2] for o in overrides if o.partition("=")[0] == key), None)


def collect(root: Path) -> list[dict[str, Any]]:
    """Single runs and sweeps under `root`, newest first (a sweep by its first job's start)."""
    singles, sweeps = run_files.find(root)
    entries: list[dict[str, Any]] = []
    for run_dir in singles:
        run = run_files.read_run(run_dir)
        if run is not None:
            run.update(sweep_dir=None, job=None, varies=None)
            entries.append({"path": run_dir, "started_at": run["started_at"], "run": run})
    for sweep_dir, job_dirs in sweeps.items():
        entry = _sweep_entry(sweep_dir, job_dirs)
        if entry["jobs"]:
            entries.append(entry)
    entries.sort(key=lambda e: (e["started_at"] or "", str(e["path"])), reverse=True)
    return entries


def select(
    entries: list[dict[str, Any]], statuses: set[str] | None, limit: int | None
) -> list[dict[str, Any]]:
    """The entries whose runs have one of `statuses` (a sweep keeps its matching jobs), the
    `limit` newest (a sweep counts as one)."""
    kept = []
    for entry in entries:
        if "run" in entry:
            if statuses is None or entry["run"]["status"] in statuses:
                kept.append(entry)
            continue
        jobs = [j for j in entry["jobs"] if statuses is None or j["status"] in statuses]
        if jobs:
            kept.append({**entry, "jobs": jobs, "all_jobs": len(entry["jobs"])})
    return kept if limit is None else kept[:limit]


def runs_of(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [run for e in entries for run in ([e["run"]] if "run" in e else e["jobs"])]


def _cells(run: dict[str, Any]) -> list[str]:
    epochs = run["epochs"]
    if epochs is not None and run["max_epochs"] is not None:
        epochs = f"{epochs}/{run['max_epochs']}"
    best = ""
    if run["best"] is not None:
        best = f"{run['monitor']} {run_files.fmt(run['best'])}"
        best += f" (epoch {run['best_epoch']})" if run["best_epoch"] is not None else ""
    metric = run_files.main_test_metric(run["test"])
    test = f"{metric} {run_files.fmt(run['test'][metric])}" if metric else ""
    if not metric and "test" in run.get("absent_splits", ()):
        test = "no test split"
    return [run["status"], run_files.fmt(epochs), best, test, run["health"] or ""]


_STYLES = {
    "completed": "green",
    "stopped_early": "green",
    "running": "cyan",
    "interrupted": "yellow",
    "killed": "yellow",
}


def table(entries: list[dict[str, Any]], title: str, width: int | None = None):
    """The runs as a rich Table. Given a terminal `width` the table does not fit, the overrides
    move under each run's path (one column less) and long cells wrap; the run's path (to copy),
    its time and status stay whole."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    rows: list[tuple[list, str | None]] = []

    def row(when: str, path: str, overrides: list[str], cells: list[str], style=None) -> None:
        status_style = _STYLES.get(cells[0], "red") if cells[0] in run_files.STATUSES else None
        texts = [Text(when), Text(path), Text(" ".join(overrides))]
        texts += [Text(cells[0], style=status_style or "")] + [Text(c) for c in cells[1:]]
        rows.append((texts, style))

    for entry in entries:
        if "run" in entry:
            run = entry["run"]
            when = run_files.local_time(run["started_at"])
            row(when, str(entry["path"]), run["overrides"], _cells(run))
            continue
        jobs, total = entry["jobs"], entry.get("all_jobs", len(entry["jobs"]))
        shown = f"{len(jobs)} of {total} jobs" if len(jobs) < total else f"{total} jobs"
        when = run_files.local_time(entry["started_at"])
        row(when, f"{entry['path']}/", entry["overrides"], ["sweep", shown, "", "", ""], "bold")
        for i, job in enumerate(jobs):
            branch = "└ " if i == len(jobs) - 1 else "├ "
            when = run_files.local_time(job["started_at"])
            row(when, branch + job["job"], job["varies"], _cells(job))

    def build(widths: dict[str, int] | None) -> Table:
        grid = Table(title=Text(title), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        for name in COLUMNS:
            if widths is None or name in widths:
                grid.add_column(name, overflow="fold", width=(widths or {}).get(name))
        for texts, style in rows:
            cells = list(texts)
            if widths is not None:
                overrides = cells.pop(2)
                if overrides.plain:
                    cells[1] = Text.assemble(cells[1], "\n", Text(overrides.plain, style="dim"))
            grid.add_row(*cells, style=style)
        return grid

    grid = build(None)
    if width is not None:
        from rich.console import Console

        if Console(width=100_000).measure(grid).maximum > width:
            grid = build(_compact_widths([texts for texts, _ in rows], width))
    return grid


COLUMNS = ("when", "run", "overrides", "status", "epochs", "best", "test", "health")


def _compact_widths(rows: list[list], width: int) -> dict[str, int]:
    """Column widths for a terminal too narrow for the table: the overrides go under the run's
    path, the date above the time; status, epochs and health keep their width, the run column
    at least its longest path (to copy whole), and best / test / overrides wrap in the rest."""
    names = [n for n in COLUMNS if n != "overrides"]
    longest = {
        name: max(len(name), *(len(line) for cells in rows for line in cells[i].plain.split()))
        for i, name in enumerate(COLUMNS)
    }
    natural = {
        name: max(len(name), *(len(cells[i].plain) for cells in rows))
        for i, name in enumerate(COLUMNS)
    }
    paths = max(len(cells[1].plain) for cells in rows)
    fixed = {"when": 10, "status": natural["status"], "epochs": natural["epochs"]}
    fixed["health"] = natural["health"]
    room = width - 2 - 3 * (len(names) - 1) - sum(fixed.values())  # edges, column gaps
    path_room = max(20, room - longest["best"] - longest["test"])  # else the path folds
    wants = {  # (least, most) for the columns that wrap
        "run": (min(paths, path_room), max(paths, natural["overrides"])),
        "best": (longest["best"], natural["best"]),
        "test": (longest["test"], natural["test"]),
    }
    least = sum(low for low, _ in wants.values())
    spare = sum(high - low for low, high in wants.values())
    share = 0 if spare == 0 else max(0.0, min(1.0, (room - least) / spare))
    flexible = {name: low + int((high - low) * share) for name, (low, high) in wants.items()}
    return {name: fixed.get(name) or flexible[name] for name in names}


def _counts(runs: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for run in runs:
        counts[run["status"]] = counts.get(run["status"], 0) + 1
    return ", ".join(f"{n} {status}" for status, n in counts.items())


def _notes(entries: list[dict[str, Any]]) -> list[str]:
    """One line for each run that needs a look: why it failed, how to continue it."""
    shown = [
        (str(entry["path"]), entry["run"])
        if "run" in entry
        else (str(entry["path"] / job["job"]), job)
        for entry in entries
        for job in entry.get("jobs", [None])
    ]
    lines = []
    for path, run in shown:
        status = run["status"]
        if status == "failed":
            lines.append(f"failed: {path}: {run['error'] or run['note'] or 'no error recorded'}")
        elif status in ("interrupted", "killed") and "last.pt" in run["checkpoints"]:
            command = f"python -m trainer {resume_override(path)}"
            lines.append(f"{status}: {path}: continue it with `{command}`")
        elif status in ("killed", "missing", "unreadable"):
            lines.append(f"{status}: {path}: {run['note']}")
    return lines


def main(argv: list[str]) -> int:
    import argparse

    parser = run_files.parser_error("trainer.runs")(
        prog="python -m trainer.runs",
        description="List the runs and sweeps under DIR, newest first. Reads only the files "
        "the runs wrote; writes nothing.",
        epilog=USAGE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dir", nargs="?", default="outputs", metavar="DIR", help="default: outputs")
    parser.add_argument(
        "--status", metavar="S[,S...]", help="only runs with these statuses (finished = both)"
    )
    parser.add_argument("--limit", type=int, metavar="N", help="the N newest (a sweep is one)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    statuses = _statuses(args.status)
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit: {args.limit} is not a positive number of runs.", key="--limit")
    root = run_files.check_dir(
        args.dir,
        "Runs are written under outputs/ of the directory `python -m trainer` ran in; give that "
        "directory, e.g. python -m trainer.runs path/to/project/outputs.",
        key="DIR",
    )
    everything = collect(root)
    entries = select(everything, statuses, args.limit)
    runs = runs_of(entries)
    if args.json:
        json.dump({"root": str(root.absolute()), "runs": runs}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    console = run_files.output_console()
    where = str(root)
    if not everything:
        console.print(f"no runs under {where}", markup=False, soft_wrap=True)
        return 0
    if not runs:
        total = len(runs_of(everything))
        console.print(
            f"no runs with status {args.status} under {where} ({total} runs there: "
            f"{_counts(runs_of(everything))})",
            markup=False,
            soft_wrap=True,
        )
        return 0
    sweeps = sum(1 for e in entries if "jobs" in e)
    title = f"{len(runs)} run{'s' * (len(runs) != 1)} under {where}"
    title += f" ({sweeps} sweep{'s' * (sweeps > 1)})" if sweeps else ""
    title += f", status {args.status}" if args.status else ""
    title += f", newest {args.limit}" if args.limit else ""
    lines = [*_notes(entries), "compare two runs: python -m trainer.compare <run dir> <run dir>"]
    width = console.width if console.is_terminal else None
    run_files.print_tables(console, table(entries, title, width), *lines)
    return 0


if __name__ == "__main__":
    sys.exit(run_files.run_main(main, None, "trainer.runs"))
