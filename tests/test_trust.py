"""A `_target_` read from a checkpoint or a run's saved config is built only if it is allowed."""

import copy
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf

from trainer.config import register_resolvers
from trainer.errors import UserError
from trainer.paths import config_dir
from trainer.trust import check_stored_config, is_allowed, shipped_targets, stored_targets

SOURCE = "outputs/runs/x/checkpoints/best.pt"
TRUST = "trainer.trust_checkpoint_code=true"
BAD = "pathlib.Path.touch"

STORED = {
    "dataset": {"_target_": "trainer.data.synthetic.moons", "n_samples": 100, "seed": 0},
    "model": {"_target_": "trainer.models.MLP", "hidden_sizes": [16, 16]},
    "loss": {"_target_": "trainer.losses.auto", "_partial_": True},
    "optimizer": {"_target_": "torch.optim.AdamW", "lr": 0.001},
    "scheduler": {"_target_": "torch.optim.lr_scheduler.StepLR", "step_size": 10},
    "callbacks": {"early_stopping": {"_target_": "trainer.callbacks.EarlyStopping"}},
    "trainer": {"_target_": "trainer.Trainer", "max_epochs": 3},
}


def stored(**changes):
    """A copy of STORED with `changes` ({"model._target_": ...}) applied; creates missing nodes."""
    config = copy.deepcopy(STORED)
    for path, value in changes.items():
        *parents, last = path.split(".")
        node = config
        for parent in parents:
            node = node.setdefault(parent, {})
        node[last] = value
    return config


def refusal(config, source=SOURCE, **kwargs) -> UserError:
    with pytest.raises(UserError) as caught:
        check_stored_config(config, source=source, **kwargs)
    assert caught.value.key == "trainer.trust_checkpoint_code"
    assert "\n" not in str(caught.value)
    return caught.value


# ---------------------------------------------------------------------- is_allowed
def test_shipped_targets_holds_the_package_and_torch_targets_of_the_conf_tree():
    targets = shipped_targets()
    for known in [
        "trainer.models.MLP",
        "trainer.models.CNN",
        "torch.optim.AdamW",
        "trainer.callbacks.EarlyStopping",
        "trainer.losses.auto",
        "trainer.data.synthetic.moons",
        "torch.optim.lr_scheduler.OneCycleLR",
        "trainer.Trainer",
    ]:
        assert known in targets
    assert "trainer.sweeps.SweepRecorder" not in targets  # config.yaml's hydra: key is skipped
    assert all(isinstance(target, str) for target in targets)
    assert shipped_targets() is targets  # cached


def test_every_shipped_target_is_allowed():
    assert len(shipped_targets()) >= 40
    for target in shipped_targets():
        assert is_allowed(target), target


@pytest.mark.parametrize(
    "target",
    [
        "torch.nn.CrossEntropyLoss",
        "torch.nn.Linear",
        "torch.nn.Sequential",
        "torch.optim.SGD",
        "torch.optim.Adam",
        "torch.optim.lr_scheduler.StepLR",
        "torch.optim.lr_scheduler.ReduceLROnPlateau",
        "torch.optim.lr_scheduler.CosineAnnealingWarmRestarts",
    ],
)
def test_torch_modules_losses_optimizers_and_schedulers_are_allowed(target):
    assert is_allowed(target) is True


@pytest.mark.parametrize(
    "target",
    [
        "pathlib.Path.touch",
        "pathlib.Path",
        "os.system",
        "builtins.eval",
        "subprocess.run",
        "shutil.rmtree",
        "torch.load",
        "torch.save",
        "torch.nn.functional.relu",
        "torch.nn.functional",
        "torch.nn.Module.register_forward_hook",
        "torch.nn.Parameter",  # in torch.nn but not a Module
        "torch.nn.modules",
        "torch.optim.Optimizer.zero_grad",
        "torch.optim.lr_scheduler",
        "torch.optim.lr_scheduler.Optimizer",  # reachable there, but not a scheduler
        "torch.nn.DoesNotExist",
        "torch.nn.",
        "torch.nn.__class__",
        "trainer.files.write_json",  # the package's own code, but not a config target
        "trainer.models.MLP.forward",
        "",
        3,
        {"_target_": "torch.nn.Linear"},
        None,
    ],
)
def test_anything_else_is_refused(target):
    assert is_allowed(target) is False


def test_is_allowed_never_imports_the_module_it_names(tmp_path, monkeypatch):
    marker = tmp_path / "imported.txt"
    (tmp_path / "sidefx_mod.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('imported')\nclass Thing: pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for target in ["sidefx_mod.Thing", "sidefx_mod", "torch.nn.sidefx_mod", "sidefx_mod.nn.Linear"]:
        assert is_allowed(target) is False
    assert not marker.exists()
    assert "sidefx_mod" not in sys.modules


def test_importing_trust_and_refusing_a_foreign_target_do_not_import_torch():
    code = (
        "import sys, trainer\n"
        "before = 'torch' in sys.modules\n"  # whatever the package itself imports
        "from trainer.trust import check_stored_config, is_allowed\n"
        "assert is_allowed('os.system') is False\n"
        "assert is_allowed('trainer.models.MLP') is True\n"
        "print(before, 'torch' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    before, after = result.stdout.split()
    assert after == before


# ---------------------------------------------------------------------- stored_targets
def test_stored_targets_finds_nested_targets_in_dicts_and_lists_with_their_key_paths():
    config = {
        "loss": {"_target_": "torch.nn.MSELoss"},
        "callbacks": {"early_stopping": {"_target_": "trainer.callbacks.EarlyStopping"}},
        "model": {
            "_target_": "mypkg.Net",
            "layers": [{"_target_": "torch.nn.Linear"}, 3, {"_target_": "torch.nn.ReLU"}],
            "block": {"inner": [[{"_target_": 7}]]},
        },
        "seed": 0,
    }
    expected = [
        ("loss._target_", "torch.nn.MSELoss"),
        ("callbacks.early_stopping._target_", "trainer.callbacks.EarlyStopping"),
        ("model._target_", "mypkg.Net"),
        ("model.layers[0]._target_", "torch.nn.Linear"),
        ("model.layers[2]._target_", "torch.nn.ReLU"),
        ("model.block.inner[0][0]._target_", 7),
    ]
    assert stored_targets(config) == expected
    assert stored_targets(OmegaConf.create(config)) == expected
    assert stored_targets([{"_target_": "a.B"}]) == [("[0]._target_", "a.B")]
    assert stored_targets({"_target_": "a.B"}) == [("_target_", "a.B")]
    assert stored_targets({"seed": 1, "names": ["x"]}) == []


def test_stored_targets_leaves_omegaconf_interpolations_unresolved():
    config = OmegaConf.create({"model": {"_target_": "${name}", "size": "${missing.key}"}})
    assert stored_targets(config) == [("model._target_", "${name}")]


# ---------------------------------------------------------------------- check_stored_config
def test_the_stored_sample_config_passes():
    check_stored_config(STORED, source=SOURCE)
    check_stored_config(OmegaConf.create(STORED), source=SOURCE)


@pytest.mark.parametrize(
    "path",
    [
        "dataset._target_",
        "model._target_",
        "loss._target_",
        "optimizer._target_",
        "scheduler._target_",
        "trainer._target_",
        "callbacks.early_stopping._target_",
        "model.block._target_",
        "logger._target_",  # a node the sample config does not even have
    ],
)
def test_a_tampered_target_anywhere_is_refused_with_its_key_path(path):
    error = refusal(stored(**{path: BAD}))
    message = str(error)
    assert f"{path}='{BAD}'" in message
    assert SOURCE in message
    assert TRUST in message
    assert f"({path}={BAD}) or" in message  # the exact override that accepts it
    assert "only do it for checkpoints from a source you trust" in message


def test_a_tampered_target_inside_a_list_is_refused_with_its_index():
    config = stored(**{"model.layers": [{"_target_": "torch.nn.Linear"}, {"_target_": BAD}]})
    message = str(refusal(config))
    assert f"model.layers[1]._target_='{BAD}'" in message
    assert f"(model.layers.1._target_={BAD})" in message  # as Hydra spells a list item
    assert TRUST in message


def test_the_whole_message_for_one_user_class():
    error = refusal(stored(**{"model._target_": "mypkg.Net"}))
    assert str(error) == (
        f"{SOURCE} asks to build code that is not on trainer's allowlist (trainer's own config "
        "targets and torch.nn, torch.optim and torch.optim.lr_scheduler classes): "
        "model._target_='mypkg.Net'. To accept it, repeat it on the command line "
        "(model._target_=mypkg.Net) or pass trainer.trust_checkpoint_code=true; trusting runs "
        "that code, so only do it for checkpoints from a source you trust."
    )


def test_every_refused_target_is_named_not_just_the_first():
    config = stored(**{"loss._target_": BAD, "callbacks.early_stopping._target_": "os.system"})
    message = str(refusal(config))
    assert f"loss._target_='{BAD}'" in message
    assert "callbacks.early_stopping._target_='os.system'" in message
    assert (
        f"repeat them on the command line (loss._target_={BAD} "
        "callbacks.early_stopping._target_=os.system)"
    ) in message


def test_a_user_class_needs_trust_or_the_same_target_on_the_command_line():
    config = stored(**{"model._target_": "mypkg.Net"})
    refusal(config)
    check_stored_config(config, source=SOURCE, trusted=True)
    for accepted in [
        ["model._target_=mypkg.Net"],
        ["+model._target_=mypkg.Net"],
        ["++model._target_=mypkg.Net"],
        ["model._target_='mypkg.Net'"],
        ["mode=test", "trainer.resume=outputs/runs/x", "model._target_=mypkg.Net"],
    ]:
        check_stored_config(config, source=SOURCE, command_line=accepted)
    for still_refused in [
        ["model._target_=mypkg.Other"],
        ["model.name=mypkg.Net"],
        ["model.my_target_=mypkg.Net"],
        ["~model._target_=mypkg.Net"],
        ["mypkg.Net"],
        ["model._target_=mypkg.Net.extra"],
    ]:
        assert "model._target_='mypkg.Net'" in str(refusal(config, command_line=still_refused))


def test_the_command_line_accepts_only_the_targets_it_names():
    config = stored(**{"model._target_": "mypkg.Net", "loss._target_": BAD})
    message = str(refusal(config, command_line=["model._target_=mypkg.Net"]))
    assert f"loss._target_='{BAD}'" in message
    assert "mypkg.Net" not in message
    assert "To accept it, repeat it on the command line" in message


def test_a_non_string_target_is_refused_even_when_trusted():
    for value in [3, {"_target_": "torch.nn.Linear"}, None, ["os.system"]]:
        config = stored(**{"dataset._target_": value})
        for trusted in (False, True):
            message = str(refusal(config, trusted=trusted))
            assert f"dataset._target_={value!r} (not an import path" in message
            assert TRUST not in message


def test_an_empty_target_is_refused_and_only_trust_accepts_it():
    config = stored(**{"model._target_": ""})
    message = str(refusal(config, command_line=["model._target_="]))
    assert "model._target_=''" in message
    assert f"To accept it, pass {TRUST};" in message
    check_stored_config(config, source=SOURCE, trusted=True)


def test_a_node_built_by_a_resolver_is_checked_as_hydra_would_build_it(tmp_path):
    victim = tmp_path / "touched"
    sneaky = f"${{oc.create:'{{_target_: pathlib.Path.touch, self: {victim}}}'}}"
    config = stored(**{"model.block": sneaky})
    assert stored_targets(config) == stored_targets(STORED)  # no `_target_` until resolved
    message = str(refusal(config))
    assert f"model.block._target_='{BAD}'" in message
    assert f"(model.block._target_={BAD}) or pass {TRUST}" in message
    check_stored_config(config, source=SOURCE, trusted=True)
    assert not victim.exists()
    instantiate(OmegaConf.create(config).model.block)  # what the check stands between
    assert victim.exists()


@pytest.mark.parametrize(
    "changes,shown",
    [
        ({"loss._target_": "${oc.decode:'\"os.system\"'}"}, "loss._target_='os.system'"),
        ({"loss._target_": "${names.loss}", "names.loss": BAD}, f"loss._target_='{BAD}'"),
        ({"loss": "${oc.decode:'{_target_: os.system}'}"}, "loss._target_='os.system'"),
        ({"loss": "${evil}", "evil._target_": BAD}, f"loss._target_='{BAD}'"),
        ({"loss": "${oc.select:nope,{_target_: os.system}}"}, "loss._target_='os.system'"),
    ],
)
def test_interpolated_targets_are_checked_once_resolved(changes, shown):
    assert shown in str(refusal(stored(**changes)))


def test_interpolations_that_resolve_to_allowed_values_pass():
    config = stored(
        **{
            "data.seed": 3,
            "dataset.seed": "${data.seed}",
            "names.loss": "torch.nn.MSELoss",
            "loss._target_": "${names.loss}",
            "optimizer.lr": "${oc.decode:'0.1'}",
        }
    )
    check_stored_config(config, source=SOURCE)
    check_stored_config(OmegaConf.create(config), source=SOURCE)


@pytest.mark.parametrize(
    "value,cause",
    [
        ("${no_such_resolver:x}", "Unsupported interpolation type no_such_resolver"),
        ("${missing.key}", "missing"),
        ("\\${oc.create:'{_target_: os.system}'}", "model.block holds an interpolation again"),
    ],
)
def test_a_config_that_cannot_be_resolved_once_and_for_all_is_refused(value, cause):
    config = stored(**{"model.block": value})
    message = str(refusal(config))
    assert message.startswith(f"{SOURCE}: its interpolations cannot be resolved (")
    assert cause in message
    assert message.endswith(f"pass {TRUST} only if you trust the file.")
    check_stored_config(config, source=SOURCE, trusted=True)


def test_the_suggested_override_is_shell_quoted():
    message = str(refusal({"my $(rm -rf ~) model": {"_target_": "mypkg.Net"}}))
    assert "classes): my $(rm -rf ~) model._target_='mypkg.Net'." in message
    assert "on the command line ('my $(rm -rf ~) model._target_=mypkg.Net') or pass" in message


def test_the_message_stays_one_line_whatever_the_file_holds():
    config = {"x\ny": {"_target_": "a\nb"}, "model": {"_target_": "$(touch x)"}}
    message = str(refusal(config, source="tmp/ckpt\n.pt"))  # refusal() checks: no newline
    assert message.startswith("tmp/ckpt .pt asks to build code")
    assert "'x\\ny._target_'='a\\nb', model._target_='$(touch x)'." in message
    assert f"To accept them, pass {TRUST};" in message  # neither can be typed as an override


# ---------------------------------------------------------------------- the shipped configs
def composed(*overrides, resolve=False):
    register_resolvers()  # the configs' own resolvers (${metric_mode:...})
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            cfg = compose("config", overrides=list(overrides))
    finally:
        GlobalHydra.instance().clear()
    container = OmegaConf.to_container(cfg, resolve=resolve)
    container.pop("hydra", None)
    return container


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["model=cnn", "dataset=digits"],
        ["optimizer=sgd", "scheduler=onecycle", "loss=focal"],
        ["model=linear", "dataset=diabetes", "loss=huber", "scheduler=plateau", "logger=none"],
        ["callbacks=none", "scheduler=warmup_cosine", "optimizer=rmsprop", "loss=cross_entropy"],
        ["experiment=compare_lrs"],
    ],
)
def test_the_shipped_configs_pass(overrides):
    config = composed(*overrides)
    assert len(stored_targets(config)) >= 6
    check_stored_config(config, source=SOURCE)
    check_stored_config(composed(*overrides, resolve=True), source=SOURCE)


def test_every_option_of_every_group_passes():
    for group in ["dataset", "model", "loss", "optimizer", "scheduler", "callbacks", "logger"]:
        for option in sorted(path.stem for path in (config_dir() / group).glob("*.yaml")):
            own = (
                {  # a custom option's own class (the user's; here one of trainer's)
                    "model": ["model._target_=trainer.models.Linear"],
                    "dataset": ["dataset.dataset._target_=trainer.data.synthetic.moons"],
                }.get(group, [])
                if option == "custom"
                else []
            )
            check_stored_config(composed(f"{group}={option}", *own), source=f"{group}={option}")
