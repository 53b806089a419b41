"""Every config option composes and validates; bad values fail with their key before any work."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from trainer.config import register_resolvers, validate
from trainer.errors import UserError
from trainer.paths import config_dir

GROUPS = ["dataset", "model", "loss", "optimizer", "scheduler", "callbacks", "logger", "trainer"]


def compose_config(*overrides):
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def all_options():
    return [
        (group, path.stem)
        for group in GROUPS
        for path in sorted((config_dir() / group).glob("*.yaml"))
    ]


@pytest.mark.parametrize("group,option", all_options())
def test_every_option_composes_and_validates(group, option):
    extra = {
        ("dataset", "csv"): ["dataset.path=x.csv", "dataset.target=y"],
        ("model", "custom"): ["model._target_=trainer.models.Linear"],  # the user's class
    }.get((group, option), [])
    cfg = compose_config(f"{group}={option}", *extra)
    validate(cfg)


def test_every_option_has_a_description_and_every_setting_a_comment():
    undescribed, uncommented = [], []
    for group, option in all_options():
        text = (config_dir() / group / f"{option}.yaml").read_text().splitlines()
        if not text[0].startswith("# "):
            undescribed.append(f"{group}/{option}.yaml")
        settings = [
            line
            for line in text
            if line.split("#")[0].strip()
            and not line.split("#")[0]
            .strip()
            .startswith(("_target_", "_partial_", "defaults", "-"))
            and not line.split("#")[0].strip().endswith(":")
        ]
        uncommented += [
            f"{group}/{option}.yaml: {line.strip()}" for line in settings if "#" not in line
        ]
    assert undescribed == [] and uncommented == []


@pytest.mark.parametrize(
    "override,key,text",
    [
        ("optimizer.lr=abc", "optimizer.lr", "not a number"),
        ("optimizer.lr=-0.1", "optimizer.lr", "must be > 0"),
        ("optimizer.weight_decay=-1", "optimizer.weight_decay", ">= 0"),
        ("+optimizer.momentun=0.9", "optimizer.momentun", "not an argument of torch.optim.AdamW"),
        ("trainer.max_epochs=abc", "trainer.max_epochs", "could not be converted"),
        ("trainer.batch_size=0", "trainer.batch_size", "positive"),
        ("data.split=[0.5,0.3,0.3]", "data.split", "sum to 1"),
        ("data.split=[0.7,0.3]", "data.split", "these are 2 fraction(s)"),
        ("data.split=[1.0,0,0]", "data.split", "turn early stopping off (~callbacks.early_stop"),
        ("mode=fit", "mode", "train, test, predict, lr_find"),
        ("model.dropout=1.5", "model.dropout", "[0, 1)"),
        ("dataset.noise=-1", "dataset.noise", ">= 0"),
        ("callbacks.early_stopping.patience=-2", "callbacks.early_stopping.patience", ">= 0"),
        ("trainer.mode=maximum", "trainer.mode", "auto, min or max"),
    ],
)
def test_bad_values_name_their_key(override, key, text):
    cfg = compose_config(override)
    with pytest.raises(UserError) as info:
        validate(cfg)
    assert info.value.key == key
    assert text in str(info.value)


def test_run_directories_are_unique_and_under_outputs():
    import re

    from trainer.argv import _register_now

    _register_now()
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        hydra = compose("config", return_hydra_config=True).hydra
    first, second = (OmegaConf.to_container(hydra.run, resolve=True)["dir"] for _ in range(2))
    assert re.fullmatch(r"outputs/runs/\d{4}-\d\d-\d\d/\d\d-\d\d-\d\d-\d{6}", first), first
    sweep = OmegaConf.to_container(hydra.sweep, resolve=False)["dir"]
    assert sweep == "outputs/sweeps/${now:%Y-%m-%d}/${now:%H-%M-%S-%f}"  # microseconds: unique
    assert hydra.job.name == "trainer" and hydra.job.chdir is False
    assert first == second  # one run, one directory: ${now:} is resolved once per process


def test_configs_ship_inside_the_package():
    import tomllib

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert project["tool"]["setuptools"]["package-dir"]["trainer.conf"] == "conf"
    assert "**/*.yaml" in project["tool"]["setuptools"]["package-data"]["trainer.conf"]


@pytest.mark.parametrize(
    "path", ["/runs/2026-01-01/12-00-00", "/s/0_optimizer.lr=0.01", "/s/1_+pitfall=a,b c"]
)
def test_a_path_survives_hydra_quoting_and_unquoting(path):
    from trainer.paths import hydra_unquoted, hydra_value

    quoted = hydra_value(path)
    assert hydra_unquoted(quoted) == path
    assert (quoted == path) == ("=" not in path and " " not in path)
