"""The end of every sweep: one table ranking the runs, also as summary.csv and summary.json.

It is built from the run directories alone (each job's metrics.json and .hydra/overrides.yaml),
so it works for any launcher (local, joblib, submitit) and sweeper (grid, Optuna), includes
failed jobs, and can be rebuilt at any time: `python -m trainer.summarize <sweep dir>`.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback as HydraCallback

from .files import write_json

SWEEP_DIR: Path | None = None  # set in the launching process when a sweep starts
NOISE = (
    "trainer.seed",
    "data.seed",
    "trainer.device",
    "trainer.num_threads",
    "log_level",
    "print_config",
    "hydra",
    "experiment",
    "hparams_search",
)


class SweepRecorder(HydraCallback):
    """Remembers the sweep directory so the CLI can summarise the sweep when it ends, even when
    jobs failed (Hydra does not call on_multirun_end then)."""

    def on_multirun_start(self, config, **kwargs) -> None:
        global SWEEP_DIR
        SWEEP_DIR = Path(str(config.hydra.sweep.dir))


def _overrides(job_dir: Path) -> list[str]:
    import yaml

    path = job_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    return [str(o) for o in (yaml.safe_load(path.read_text()) or [])]


def _swept(overrides: list[str]) -> list[str]:
    return [o for o in overrides if not o.lstrip("+~").split("=")[0].startswith(NOISE)]


def _job_number(job_dir: Path) -> int:
    head = job_dir.name.split("_", 1)[0]
    return int(head) if head.isdigit() else 10**9


def _varying(all_overrides: list[list[str]]) -> set[str]:
    """Override keys whose value differs between jobs, or that some jobs set and others do not:
    what the sweep compares."""
    values: dict[str, set[str]] = {}
    jobs_setting: dict[str, int] = {}
    for overrides in all_overrides:
        for o in _swept(overrides):
            key, _, value = o.partition("=")
            values.setdefault(key, set()).add(value)
            jobs_setting[key] = jobs_setting.get(key, 0) + 1
    keys = {k for k, v in values.items() if len(v) > 1 or jobs_setting[k] < len(all_overrides)}
    return keys or set(values)


def collect(sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per job directory (a folder with a .hydra/ inside), in job order."""
    from .report import command_line

    job_dirs = sorted((p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir()), key=_job_number)
    all_overrides = [_overrides(d) for d in job_dirs]
    varying = _varying(all_overrides)
    rows = []
    for job_dir, overrides in zip(job_dirs, all_overrides):
        row: dict[str, Any] = {
            "job": job_dir.name,
            "overrides": " ".join(o for o in _swept(overrides) if o.partition("=")[0] in varying),
            "command": command_line(overrides),
            "run_dir": str(job_dir),
        }
        metrics_file = job_dir / "metrics.json"
        if not metrics_file.is_file():
            row.update(
                status="missing", error="no metrics.json: the job did not start or was killed"
            )
            rows.append(row)
            continue
        try:
            metrics = json.loads(metrics_file.read_text())
        except (OSError, json.JSONDecodeError) as error:
            row.update(status="unreadable", error=f"metrics.json: {error}")
            rows.append(row)
            continue
        error = (metrics.get("error") or "").strip()
        row.update(
            status=metrics.get("status", "unknown"),
            monitor=metrics.get("monitor"),
            mode=metrics.get("mode"),
            best=metrics.get("best_val_metric"),
            best_epoch=metrics.get("best_epoch"),
            epochs=metrics.get("epochs_run"),
            wall_time_s=metrics.get("wall_time_s"),
            error=error.splitlines()[0] if error else None,
        )
        for key, value in (metrics.get("test") or {}).items():
            row[f"test_{key}"] = value
        if metrics.get("mode") == "lr_find":
            row["best"] = metrics.get("suggested_lr")
        rows.append(row)
    return rows


OK_STATUSES = ("completed", "stopped_early")


def rank(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Finished runs by their best monitored metric (in its direction), then everything else."""
    good = [r for r in rows if r.get("status") in OK_STATUSES and _finite(r.get("best"))]
    mode = next((r.get("mode") for r in good if r.get("mode") in ("min", "max")), "min")
    good.sort(key=lambda r: r["best"], reverse=mode == "max")
    rest = [r for r in rows if r not in good]
    for i, row in enumerate(good + rest, start=1):
        row["rank"] = i if row in good else None
    return good + rest


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def summarize(sweep_dir: str | Path, show: bool = True) -> dict[str, Any]:
    """Write summary.csv and summary.json at the sweep root, print the table; return the summary."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        from .errors import UserError

        raise UserError(f"no such sweep directory: '{sweep_dir}'.", key="sweep_dir")
    rows = rank(collect(sweep_dir))
    if not rows:
        from .errors import UserError

        raise UserError(
            f"'{sweep_dir}' holds no runs of a sweep (no job directories with a .hydra/ folder); "
            "give the sweep's directory, e.g. outputs/sweeps/<date>/<time>. Nothing was written.",
            key="sweep_dir",
        )
    failed = [r for r in rows if r.get("status") not in OK_STATUSES]
    best = next((r for r in rows if r.get("rank") == 1), None)
    monitor = (
        best.get("monitor")
        if best
        else next((r.get("monitor") for r in rows if r.get("monitor")), None)
    )
    summary = {
        "sweep_dir": str(sweep_dir),
        "monitor": monitor,
        "mode": best.get("mode") if best else None,
        "jobs": len(rows),
        "failed": len(failed),
        "best": best,
        "runs": rows,
    }
    write_json(summary, sweep_dir / "summary.json")
    test_keys = sorted({k for r in rows for k in r if k.startswith("test_")})
    columns = [
        "rank",
        "job",
        "status",
        "overrides",
        "monitor",
        "best",
        "best_epoch",
        *test_keys,
        "epochs",
        "wall_time_s",
        "error",
        "command",
    ]
    with (sweep_dir / "summary.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    if show:
        _print(summary, test_keys)
    return summary


def _short(overrides: str) -> str:
    """Overrides for display: long floats (Optuna's) rounded to 4 significant digits."""
    import re

    return re.sub(
        r"(?<==)(-?\d+\.\d{5,}(?:e-?\d+)?|-?\d\.\d+e-?\d+)",
        lambda m: f"{float(m.group(1)):.4g}",
        overrides,
    )


def _print(summary: dict[str, Any], test_keys: list[str]) -> None:
    """The ranking table, printed in the launching process (it has no run log file)."""
    from rich.markup import escape
    from rich.table import Table

    from .console import console
    from .report import tensorboard_command

    rows = summary["runs"]
    monitor = summary.get("monitor") or "metric"
    main_test = next((k for k in ("test_accuracy", "test_r2") if k in test_keys), None)
    table = Table(
        title=f"sweep: {len(rows)} runs ranked by best {monitor} ({summary.get('mode') or 'min'})",
        title_justify="left",
    )
    columns = ["#", "job", "overrides", f"best {monitor}", "epoch"]
    columns += [main_test.replace("_", " ")] if main_test else []
    for name in (*columns, "epochs", "status", "time"):
        table.add_column(name, overflow="fold")

    def fmt(value) -> str:
        return "" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)

    for row in rows:
        status = row.get("status", "")
        time = row.get("wall_time_s")
        table.add_row(
            *(
                escape(cell)
                for cell in (
                    fmt(row.get("rank")),
                    row["job"].split("_", 1)[0],
                    _short(row.get("overrides", "")),
                    fmt(row.get("best")),
                    fmt(row.get("best_epoch")),
                    *([fmt(row.get(main_test))] if main_test else []),
                    fmt(row.get("epochs")),
                    status,
                    "" if time is None else f"{time:.1f}s",
                )
            ),
            style=None if status in OK_STATUSES else "red",
        )
    out = console()
    out.print(table)
    lines = [f"summary: {Path(summary['sweep_dir']) / 'summary.csv'} and summary.json"]
    if summary["best"]:
        lines.append(f"best run: {summary['best']['run_dir']}")
        lines.append(f"  re-run: {summary['best']['command']}")
    for row in rows:
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


def main_summarize(argv: list[str]) -> int:
    """`python -m trainer.summarize <sweep dir>`: rebuild the sweep summary."""
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print(
            "usage: python -m trainer.summarize <sweep dir>\n\nRebuilds summary.csv / summary.json and the "
            "ranking table from the run directories of a sweep (any launcher, any sweeper)."
        )
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    from .console import print_user_error
    from .errors import EXIT_SWEEP_FAILED, EXIT_USER_ERROR, UserError

    try:
        summary = summarize(argv[0])
    except UserError as error:
        print_user_error(str(error))
        return EXIT_USER_ERROR
    return EXIT_SWEEP_FAILED if summary["failed"] else 0
