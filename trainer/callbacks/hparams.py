"""Which hyper-parameters a run shows in TensorBoard's HParams table: what its sweep varies, or,
for a single run, what its command line set. Read from the files Hydra wrote (the run's
`.hydra/` and the sweep's `multirun.yaml`), so every job of a sweep agrees, whichever launcher
ran it (joblib's workers see no command line) and in whichever order the jobs ran."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _yaml(path: Path) -> Any:
    """A file Hydra wrote, read with libyaml where PyYAML has it (hydra.yaml and a sweep's
    multirun.yaml: 17 ms of every job's end in pure Python, 2.5 ms with libyaml)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(path.read_text(), Loader=loader) if path.is_file() else None
    except (OSError, yaml.YAMLError):
        return None


def _key(override: str) -> str:
    return override.lstrip("+~").split("=", 1)[0]


def _swept_on_command_line(overrides: list[str]) -> set[str]:
    """The keys a sweep's command line gives several values (`optimizer.lr=1e-3,1e-2`,
    `range(...)`, `choice(...)`, `interval(...)`), as Hydra's own parser reads them."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides=[str(o) for o in overrides])
    except HydraException:
        return set()
    return {o.key_or_group for o in parsed if o.is_sweep_override()}


def sweep_keys(run_dir: Path) -> set[str] | None:
    """The keys this job's sweep varies: its command-line sweeps (the sweep directory's
    multirun.yaml) and `hydra.sweeper.params` (grid and Optuna alike). None: not a sweep's job."""
    hydra = (_yaml(run_dir / ".hydra" / "hydra.yaml") or {}).get("hydra") or {}
    if hydra.get("mode") != "MULTIRUN":
        return None
    keys = {_key(str(k)) for k in ((hydra.get("sweeper") or {}).get("params") or {})}
    for folder in list(run_dir.parents)[:2]:  # <sweep dir>/<job> (or one level deeper)
        master = (_yaml(folder / "multirun.yaml") or {}).get("hydra") or {}
        if master:
            keys |= _swept_on_command_line((master.get("overrides") or {}).get("task") or [])
            break
    return keys


def run_overrides(run_dir: Path) -> list[str] | None:
    """The run's command-line overrides (`.hydra/overrides.yaml`); None where Hydra wrote none."""
    overrides = _yaml(run_dir / ".hydra" / "overrides.yaml")
    return [str(o) for o in overrides] if isinstance(overrides, list) else None


def shown(hparams: dict[str, Any], varied: set[str], run_dir: Path) -> dict[str, Any]:
    """The hyper-parameters worth a column: in a sweep, those it varies; in a single run, those
    its command line set; without Hydra's files (the Python API), those `varied` names, or all
    of them when it names none. Constant settings stay in the config text, not in the table."""
    keys = sweep_keys(run_dir)
    if keys is None:
        overrides = run_overrides(run_dir)
        keys = {_key(o) for o in overrides} if overrides is not None else set(varied)
        if overrides is None and not keys:
            return dict(hparams)
    elif not keys:  # a sweep with nothing we could read: what names its job directories
        keys = set(varied)
    return {k: v for k, v in hparams.items() if k in keys}
