"""`python -m trainer.compare A B`: two runs side by side.

The config difference (every flattened key of the runs' composed configs whose value differs, and
the keys only one run has) and the metric difference (status, epochs, the best epoch's metrics,
test metrics, wall time, health) with B - A and which run is better where the direction is
known. Reads only the files the runs wrote (metrics.json, .hydra/*.yaml); writes nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from . import run_files
from .best import resolve_mode
from .errors import UserError

ABSENT = "(not set)"


def config_file(run_dir: Path) -> Path | None:
    """The composition the run last ran with: its newest resume's, else its own."""
    resumes = sorted((run_dir / ".hydra").glob("resumed-*/config.yaml"))
    for path in (*reversed(resumes), run_dir / ".hydra" / "config.yaml"):
        if path.is_file():
            return path
    return None


def flat_config(path: Path | None) -> dict[str, Any]:
    """A config.yaml as {'optimizer.lr': 0.003, ...}; lists stay whole values."""
    import yaml

    if path is None:
        return {}
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise UserError(f"'{path}' cannot be read as YAML ({error}).", key="config") from None
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for key, child in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), child)
        else:
            flat[prefix] = value

    walk("", data if isinstance(data, dict) else {})
    return flat


def config_difference(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """The keys whose values differ or that one config lacks, in the first config's order."""
    keys = list(dict.fromkeys([*a, *b]))
    rows = []
    for key in keys:
        if key in a and key in b and a[key] == b[key]:
            continue
        only = None if key in a and key in b else ("a" if key in a else "b")
        rows.append({"key": key, "a": a.get(key), "b": b.get(key), "only_in": only})
    return rows


def _better(name: str, a: Any, b: Any, mode: str | None) -> str | None:
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b)):
        return None
    if a == b or mode not in ("min", "max"):
        return None
    return "b" if (b < a) == (mode == "min") else "a"


def _metric(name: str, a: Any, b: Any, mode: str | None = None) -> dict[str, Any]:
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
    delta = b - a if numeric else None
    return {"name": name, "a": a, "b": b, "delta": delta, "better": _better(name, a, b, mode)}


def metric_difference(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of (name, A, B, B - A, better): what each run's metrics.json says."""
    rows = [
        _metric("status", a["status"], b["status"]),
        _metric("epochs", a["epochs"], b["epochs"]),
        _metric("max epochs", a["max_epochs"], b["max_epochs"]),
    ]
    monitors = list(dict.fromkeys(m for m in (a["monitor"], b["monitor"]) if m))
    for monitor in monitors:
        mode = next(r["monitor_mode"] for r in (a, b) if r["monitor"] == monitor)
        value = {r["run_dir"]: r["best"] if r["monitor"] == monitor else None for r in (a, b)}
        rows.append(_metric(f"best {monitor}", value[a["run_dir"]], value[b["run_dir"]], mode))
    rows.append(_metric("best epoch", a["best_epoch"], b["best_epoch"]))
    at_best = list(dict.fromkeys([*a["best_metrics"], *b["best_metrics"]]))
    for key in at_best:
        if key in monitors:
            continue
        rows.append(
            _metric(
                f"{key} at best epoch",
                a["best_metrics"].get(key),
                b["best_metrics"].get(key),
                resolve_mode(key),
            )
        )
    for key in dict.fromkeys([*a["test"], *b["test"]]):
        rows.append(
            _metric(f"test {key}", a["test"].get(key), b["test"].get(key), resolve_mode(key))
        )
    rows.append(_metric("wall time s", a["wall_time_s"], b["wall_time_s"]))
    rows.append(_metric("health", a["health"], b["health"]))
    return [row for row in rows if row["a"] is not None or row["b"] is not None]


def compare(path_a: str, path_b: str) -> dict[str, Any]:
    runs, configs = [], []
    for key, path in (("A", path_a), ("B", path_b)):
        folder = run_files.check_dir(
            path, "Give two run directories, e.g. from `python -m trainer.runs`.", key=key
        )
        run = run_files.read_run(folder) if run_files.is_run(folder) else None
        if run is None:
            if run_files.is_run(folder):
                what = "an evaluation's or a prediction's directory (mode=test or mode=predict)"
            elif run_files.is_sweep(folder):
                jobs = sorted(p.name for p in folder.iterdir() if run_files.is_run(p))
                what = f"a sweep's directory (its jobs: {', '.join(jobs) or 'none'})"
            else:
                what = "not a run directory (it has no .hydra/ folder)"
            raise UserError(
                f"{key}: '{path}' is {what}. Give two run directories, e.g. "
                "outputs/runs/<date>/<time> or a sweep's job outputs/sweeps/<date>/<time>/<job>; "
                "`python -m trainer.runs` lists them.",
                key=key,
            )
        source = config_file(folder)
        run["config_file"] = None if source is None else str(source.absolute())
        runs.append(run)
        configs.append(flat_config(source))
    a, b = runs
    return {
        "a": a,
        "b": b,
        "config": config_difference(*configs),
        "config_keys": len(set(configs[0]) | set(configs[1])),
        "metrics": metric_difference(a, b),
    }


def _value(value: Any, exact: bool = False) -> str:
    """A value for a cell: metrics to 4 significant digits, config values exactly."""
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    if value is None or isinstance(value, bool):
        return json.dumps(value)  # null, true, false: as the YAML says
    return str(value) if exact else run_files.fmt(value)


def _delta(row: dict[str, Any]) -> str:
    delta = row["delta"]
    if delta is None:
        both = row["a"] is not None and row["b"] is not None
        return "differs" if both and row["a"] != row["b"] else ""
    if delta == 0:
        return "0"
    text = f"{delta:+d}" if isinstance(delta, int) else f"{delta:+.4g}"
    if isinstance(row["a"], (int, float)) and row["a"] and not isinstance(delta, int):
        text += f" ({delta / abs(row['a']):+.1%})"
    return text + {"a": " (A better)", "b": " (B better)", None: ""}[row["better"]]


def tables(result: dict[str, Any], shown: tuple[str, str]):
    from rich import box
    from rich.table import Table
    from rich.text import Text

    a, b = result["a"], result["b"]
    header = Table.grid(padding=(0, 3))
    for _ in range(4):
        header.add_column(overflow="fold")
    for name, run, path in (("A", a, shown[0]), ("B", b, shown[1])):
        header.add_row(name, Text(path), Text(run["status"]), Text(" ".join(run["overrides"])))

    differs = result["config"]
    title = f"config: {len(differs)} of {result['config_keys']} keys differ"
    config = Table(title=Text(title), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("key", "A", "B"):
        config.add_column(name, overflow="fold")
    for row in differs:
        cells = [
            ABSENT if row["only_in"] == other else _value(row[side], exact=True)
            for side, other in (("a", "b"), ("b", "a"))
        ]
        config.add_row(Text(row["key"]), *(Text(c) for c in cells))

    metrics = Table(
        title=Text("metrics"), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False
    )
    for name in ("metric", "A", "B", "B - A"):
        metrics.add_column(name, overflow="fold", justify="left" if name == "metric" else "right")
    for row in result["metrics"]:
        cells = ["" if row[s] is None else _value(row[s]) for s in ("a", "b")]
        metrics.add_row(Text(row["name"]), *(Text(c) for c in cells), Text(_delta(row)))
    errors = [
        f"{name} failed: {run['error']}" for name, run in (("A", a), ("B", b)) if run["error"]
    ]
    return [header, "", config if differs else "config: identical", metrics, *errors]


def main(argv: list[str]) -> int:
    parser = run_files.parser_error("trainer.compare")(
        prog="python -m trainer.compare",
        description="Compare two runs: the config keys that differ and the metrics side by side, "
        "with B - A. Reads only the files the runs wrote; writes nothing.",
    )
    parser.add_argument("a", metavar="A", help="a run directory")
    parser.add_argument("b", metavar="B", help="another run directory")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args(argv)
    result = compare(args.a, args.b)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    run_files.print_tables(run_files.output_console(), *tables(result, (args.a, args.b)))
    return 0


if __name__ == "__main__":
    sys.exit(run_files.run_main(main, None, "trainer.compare"))
