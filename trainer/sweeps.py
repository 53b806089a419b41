"""The end of every sweep: one table ranking the runs, also as summary.csv and summary.json.

It is built from the run directories alone (each job's metrics.json and .hydra/overrides.yaml),
so it works for any launcher (local, joblib, submitit) and sweeper (grid, Optuna), includes
failed jobs, and can be rebuilt at any time: `python -m trainer.summarize <sweep dir>`.
"""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback as HydraCallback

from .files import write_json
from .job_output import NOISE
from .sweep_table import OK_STATUSES, print_summary

SWEEP_DIR: Path | None = None  # set in the launching process when a sweep starts
# What to rank by when the jobs' own losses are not comparable: a metric every job computes.
SHARED_METRICS = (("accuracy/val", "max"), ("r2/val", "max"))


class SweepRecorder(HydraCallback):
    """Hydra's hooks around a sweep and its jobs. In the launching process: remembers the sweep
    directory so the CLI can summarise the sweep when it ends, even when jobs failed (Hydra does
    not call on_multirun_end then), and keeps colour codes out of the sweeper's piped logs. In
    the process that runs a job: labels the job's output when jobs run in parallel, and adds the
    job's wall time (start to end of the job, set-up, test and reports included) to its
    metrics.json as `job_wall_time_s`."""

    def on_multirun_start(self, config, **kwargs) -> None:
        global SWEEP_DIR
        SWEEP_DIR = Path(str(config.hydra.sweep.dir))
        from .job_output import prepare_sweeper

        prepare_sweeper(config)
        if "basic_launcher" in str(config.hydra.launcher.get("_target_", "")).lower():
            # jobs run in this process: its one-time imports are not the first job's time
            import torch  # noqa: F401

            from . import build, run  # noqa: F401

    def on_job_start(self, config, **kwargs) -> None:
        from .job_output import LabelledOutput, is_parallel, job_label

        self._started = time.monotonic()
        self._metrics_before = _stamp(Path(str(config.hydra.runtime.output_dir)) / "metrics.json")
        self._output = None
        if is_parallel(config):
            self._output = LabelledOutput(f"[{job_label(config)}] ")
            self._output.start()

    def on_job_end(self, config, job_return, **kwargs) -> None:
        elapsed = time.monotonic() - getattr(self, "_started", time.monotonic())
        if getattr(self, "_output", None) is not None:
            self._output.stop()
            self._output = None
        path = Path(str(config.hydra.runtime.output_dir)) / "metrics.json"
        if _stamp(path) != getattr(self, "_metrics_before", None):  # this job wrote it
            record_job_time(path.parent, elapsed)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_ino


def record_job_time(run_dir: Path, seconds: float) -> None:
    """Add `job_wall_time_s` to the job's metrics.json (if the job left one; rank 0 only). The
    callback calls it only when the job wrote metrics.json: a refused resume, or one with nothing
    left to train, changes no file."""
    from .distributed import env_rank

    path = run_dir / "metrics.json"
    if env_rank() != 0 or not path.is_file():
        return
    try:
        metrics = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return  # the summary reports an unreadable metrics.json itself
    metrics["job_wall_time_s"] = round(seconds, 3)
    write_json(metrics, path)


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
            val_metrics={
                k: v for k, v in (metrics.get("best") or {}).items() if k.endswith("/val")
            },
            epochs=metrics.get("epochs_run"),
            wall_time_s=metrics.get("wall_time_s"),
            job_wall_time_s=metrics.get("job_wall_time_s"),
            health=health_verdict(metrics),
            error=error.splitlines()[0] if error else None,
        )
        for key, value in (metrics.get("test") or {}).items():
            row[f"test_{key}"] = value
        if metrics.get("mode") == "lr_find":
            row["best"] = metrics.get("suggested_lr")
        rows.append(row)
    return rows


def health_verdict(metrics: dict[str, Any]) -> str | None:
    """The run's main health finding: metrics.json's `health_verdict`, else the kind of its
    first error (then warning) finding, else `healthy`; None when the run has no report."""
    verdict = metrics.get("health_verdict")
    if isinstance(verdict, dict):
        verdict = verdict.get("kind") or verdict.get("verdict")
    if verdict:
        return str(verdict)
    findings = metrics.get("health")
    if not isinstance(findings, list):
        return None
    for severity in ("error", "warning"):
        for finding in findings:
            if isinstance(finding, dict) and finding.get("severity") == severity:
                return str(finding.get("kind") or severity)
    return "healthy"


def choose_ranking(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What the finished runs are ranked by: their monitored metric, unless its values are not
    comparable between jobs (different losses, or different monitors); then a metric every job
    shares, said in `note`."""
    good = [r for r in rows if r.get("status") in OK_STATUSES and _finite(r.get("best"))]
    monitors = sorted({str(r.get("monitor")) for r in good})
    monitor = (
        monitors[0] if monitors else next((r["monitor"] for r in rows if r.get("monitor")), None)
    )
    mode = next((r.get("mode") for r in good if r.get("mode") in ("min", "max")), "min")
    ranking = {"metric": monitor, "mode": mode, "note": None}
    if not good or any(r.get("mode") == "lr_find" for r in good):
        return ranking
    if len(monitors) == 1 and monitor.endswith("/train"):  # no validation split in any job
        note = (
            f"ranked by {monitor}: the jobs have no validation split (data.split validation "
            "fraction 0), so this ranks how well each fits its training data, not how well it "
            "generalises."
        )
        return {**ranking, "note": note}
    not_by = ""
    if len(monitors) > 1:
        why = f"the jobs monitor different metrics ({', '.join(monitors)})"
        compared = "their monitored values"
    elif monitor.startswith("loss"):
        differing = loss_settings_that_differ(good)
        if not differing:
            return ranking
        why = f"the jobs' losses differ ({', '.join(differing)})"
        compared, not_by = f"their {monitor} values", f", not by {monitor}"
    else:
        return ranking
    for metric, direction in SHARED_METRICS:
        if all(_finite(r["val_metrics"].get(metric)) for r in good):
            note = (
                f"ranked by {metric} (at each run's best epoch){not_by}: {why}, "
                f"so {compared} are not comparable."
            )
            return {"metric": metric, "mode": direction, "note": note}
    shared = " or ".join(m for m, _ in SHARED_METRICS)
    note = (
        f"ranked by {monitor}, but {compared} are not comparable: {why}, and no metric every "
        f"job records ({shared}) could rank them instead."
    )
    return {**ranking, "note": note}


def loss_settings_that_differ(rows: list[dict[str, Any]]) -> list[str]:
    """The loss settings (loss.*, and data.standardize_targets for regression) that are not the
    same in every job, from each job's composed config and its overrides."""
    import yaml

    settings: list[dict[str, Any]] = []
    for row in rows:
        config_file = Path(row["run_dir"]) / ".hydra" / "config.yaml"
        try:
            config = yaml.safe_load(config_file.read_text()) or {}
        except (OSError, yaml.YAMLError):
            config = {}
        flat = _flatten(config.get("loss"), "loss")
        if "r2/val" in row["val_metrics"]:  # standardised targets change a regression loss's scale
            flat["data.standardize_targets"] = (config.get("data") or {}).get("standardize_targets")
        settings.append({"loss" if k == "loss._target_" else k: v for k, v in flat.items()})
    keys = {k for flat in settings for k in flat}
    differing = {
        k for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in settings}) > 1
    }
    overridden = _varying([_overrides(Path(r["run_dir"])) for r in rows])
    differing |= {k.lstrip("+~") for k in overridden if k.lstrip("+~").split(".")[0] == "loss"}
    return sorted(differing)


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        return {} if value is None else {prefix: value}
    flat: dict[str, Any] = {}
    for key, item in value.items():
        flat.update(
            _flatten(item, f"{prefix}.{key}")
            if isinstance(item, dict)
            else {f"{prefix}.{key}": item}
        )
    return flat


def rank(rows: list[dict[str, Any]], ranking: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Finished runs by the ranking metric (in its direction), then everything else. Runs with
    equal values share a rank (1, 1, 3), in job order."""
    ranking = ranking or choose_ranking(rows)
    metric = ranking["metric"]
    for row in rows:
        if row.get("monitor") == metric or row.get("mode") == "lr_find":
            row["ranked_value"] = row.get("best")
        else:
            row["ranked_value"] = (row.get("val_metrics") or {}).get(metric)
    good = [r for r in rows if r.get("status") in OK_STATUSES and _finite(r.get("ranked_value"))]
    good.sort(key=lambda r: r["ranked_value"], reverse=ranking["mode"] == "max")
    rest = [r for r in rows if r not in good]
    for i, row in enumerate(good, start=1):
        tied = i > 1 and row["ranked_value"] == good[i - 2]["ranked_value"]
        row["rank"] = good[i - 2]["rank"] if tied else i
    for row in rest:
        row["rank"] = None
    return good + rest


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def summarize(sweep_dir: str | Path, show: bool = True) -> dict[str, Any]:
    """Write summary.csv and summary.json at the sweep root, print the table; return the summary."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        from .errors import UserError

        raise UserError(f"no such sweep directory: '{sweep_dir}'.", key="sweep_dir")
    rows = collect(sweep_dir)
    if not rows:
        from .errors import UserError

        raise UserError(
            f"'{sweep_dir}' holds no runs of a sweep (no job directories with a .hydra/ folder); "
            "give the sweep's directory, e.g. outputs/sweeps/<date>/<time>. Nothing was written.",
            key="sweep_dir",
        )
    ranking = choose_ranking(rows)
    rows = rank(rows, ranking)
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
        "ranked_by": ranking["metric"],
        "ranked_mode": ranking["mode"],
        "ranking_note": ranking["note"],
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
        "ranked_value",
        *test_keys,
        "epochs",
        "wall_time_s",
        "job_wall_time_s",
        "health",
        "error",
        "command",
    ]
    with (sweep_dir / "summary.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    from .curve_figures import write_sweep_curves

    figure = write_sweep_curves(sweep_dir)  # every job's validation curves, overlaid
    if show:
        print_summary(summary)
        if figure is not None:
            print(f"curves: {figure}")
    return summary


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
