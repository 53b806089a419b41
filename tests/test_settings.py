"""One source for every default: the YAML under conf/ and the Python API agree, key by key."""

import inspect
from dataclasses import asdict, fields

import pytest
from hydra.utils import get_object
from omegaconf import OmegaConf
from test_config import compose_config

from trainer import Trainer
from trainer.data import DataModule
from trainer.errors import UserError
from trainer.optim import build_optimizer, parameter_groups
from trainer.paths import config_dir
from trainer.settings import SECTIONS, DataSettings, ParamGroupSettings, TrainerSettings


@pytest.fixture(scope="module")
def default_config():
    return OmegaConf.to_container(compose_config(), resolve=True)


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_each_section_of_the_default_config_equals_its_settings_class(default_config, section):
    composed = {k: v for k, v in default_config[section].items() if k != "_target_"}
    assert composed == asdict(SECTIONS[section]())


def test_the_python_api_builds_the_same_defaults(default_config):
    trainer = Trainer(None, None, None)
    assert asdict(trainer.settings) == asdict(TrainerSettings())
    groups = default_config["param_groups"]
    assert asdict(trainer.param_groups) == {**groups, "module_lr": groups["module_lr"] or {}}
    data = inspect.signature(DataModule).parameters
    assert list(data["split"].default) == DataSettings().split == default_config["data"]["split"]
    for name in ("seed", "standardize", "standardize_targets"):
        assert data[name].default == default_config["data"][name], name
    decay = ParamGroupSettings().decay_bias_and_norm
    assert decay is False and decay == default_config["param_groups"]["decay_bias_and_norm"]
    for function in (build_optimizer, parameter_groups):
        assert inspect.signature(function).parameters["decay_bias_and_norm"].default is decay


def _own_target_nodes():
    """(file, node) for every node of a shipped YAML that builds one of this package's targets."""
    for path in sorted(config_dir().rglob("*.yaml")):
        if path.relative_to(config_dir()).parts[0] in ("hydra", "trainer"):
            continue  # Hydra's own; the trainer section is compared with TrainerSettings above
        node = OmegaConf.to_container(OmegaConf.load(path))
        nodes = [node, *(v for v in node.values() if isinstance(v, dict))]
        for candidate in nodes:
            if str(candidate.get("_target_", "")).startswith("trainer."):
                yield path.relative_to(config_dir()), candidate


@pytest.mark.parametrize("path,node", list(_own_target_nodes()), ids=str)
def test_every_yaml_value_is_its_targets_default(path, node):
    """A YAML of ours repeats the signature's defaults (with a comment each): it never silently
    trains differently from the same class built in Python."""
    params = inspect.signature(get_object(node["_target_"])).parameters
    for key, value in node.items():
        if key.startswith("_") or (isinstance(value, str) and value.startswith("${")):
            continue  # interpolations follow another key (e.g. ${data.seed})
        if isinstance(value, dict) and "_target_" in value:
            continue  # a node built on its own (dataset=custom: the user's Dataset)
        default = params[key].default
        # a required argument (no default in Python) is left null in the YAML for the user to set
        expected = None if default is inspect.Parameter.empty else default
        assert value == (list(expected) if isinstance(expected, tuple) else expected), (path, key)


def test_an_unknown_setting_of_the_python_api_names_the_valid_ones():
    with pytest.raises(UserError, match=r"trainer.max_epoch is not a setting .* max_epochs"):
        Trainer(None, None, None, max_epoch=3)
    assert [f.name for f in fields(TrainerSettings)][:3] == [
        "max_epochs",
        "min_steps",
        "batch_size",
    ]


def test_max_epochs_none_takes_at_least_50_epochs_and_min_steps_steps():
    settings = TrainerSettings(min_steps=3000)
    assert [settings.auto_epochs(n) for n in (4, 22, 40, 60, 1000)] == [750, 137, 75, 50, 50]
    with pytest.raises(
        UserError, match=r"trainer.max_epochs=0 must be a positive whole number, or null"
    ):
        TrainerSettings.from_keywords(max_epochs=0)
