"""Hydra's composition of the config, done no more often than the answer can change: each
composition of this project's config takes about 90 ms (2 cores), and Hydra does some twice.
Both patches wrap a method of Hydra's and keep the original as `__wrapped__`."""

from __future__ import annotations

KEPT_AT_MOST = 256  # compositions kept from a sweep's check for its launch (about 90 ms each)


def compose_once(argv: list[str]) -> None:
    """Hydra composes the whole config once only to read `hydra.mode`, then again to run (0.2 s
    or more). None of our configs sets hydra.mode, so unless the command line names it (or
    another config directory or file), the answer is None: Hydra then runs in the mode the
    command line chose, exactly as after its own first composition."""
    from hydra._internal.hydra import Hydra

    original = getattr(Hydra.get_mode, "__wrapped__", Hydra.get_mode)
    if any(a.startswith(("-cd", "--config-dir", "-cn", "--config-name", "-cp")) for a in argv):
        Hydra.get_mode = original
        return

    def get_mode(self, config_name, overrides):
        if any("hydra.mode" in override for override in overrides):
            return original(self, config_name, overrides)
        return None

    get_mode.__wrapped__ = original
    Hydra.get_mode = get_mode


def reuse_validated_compositions() -> None:
    """Hydra's sweeper composes every job's config before launching, only to check that it
    composes (`Sweeper.validate_batch_is_legal`), and drops it; the basic launcher then composes
    each job's config again, with the same inputs, when the job starts. Here the check keeps
    what it composed (up to KEPT_AT_MOST jobs, for the basic launcher only: another launcher
    composes in its own processes) and the launch takes each back, once: a sequential sweep's
    job starts 90 ms sooner. The configs are those of the sweep's start, as the check saw them."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.plugins.sweeper import Sweeper

    if hasattr(Sweeper.validate_batch_is_legal, "__wrapped__"):
        return  # (patched already: a second command in this process)
    load, validate = ConfigLoaderImpl.load_sweep_config, Sweeper.validate_batch_is_legal
    kept: dict[tuple, object] = {}
    keeping = False  # while a check whose configs the basic launcher will run goes on

    def load_sweep_config(self, master_config, sweep_overrides):
        key = (id(master_config), tuple(sweep_overrides))
        config = kept.pop(key, None)
        if config is None:
            config = load(self, master_config, sweep_overrides)
            if keeping and len(kept) < KEPT_AT_MOST:
                kept[key] = config  # (the check drops its own reference)
        return config

    def validate_batch_is_legal(self, batch):
        nonlocal keeping
        kept.clear()  # (a new batch: what an earlier one left is not launched again)
        keeping = str(self.config.hydra.launcher.get("_target_", "")).endswith("BasicLauncher")
        try:
            return validate(self, batch)
        finally:
            keeping = False

    load_sweep_config.__wrapped__ = load
    validate_batch_is_legal.__wrapped__ = validate
    ConfigLoaderImpl.load_sweep_config = load_sweep_config
    Sweeper.validate_batch_is_legal = validate_batch_is_legal
