"""The user's own model through the real CLI: sizes passed by name with both entry points, the
forward-pass check, clean errors, and fine-tuning with a new head and frozen weights."""

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from helpers import cli_env, metrics_of, run_cli, unsaid

pytestmark = pytest.mark.e2e

FAST = ["trainer.max_epochs=2", "logger=none"]
CONSOLE_SCRIPT = Path(sys.executable).parent / "trainer"  # what `pip install` puts on PATH

# The README's model half, as a user writes it.
MODELS = """
    import json

    from torch import nn


    class Net(nn.Module):
        def __init__(self, in_features, num_outputs, width=16):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(in_features, width), nn.ReLU())
            self.head = nn.Linear(width, num_outputs)

        def forward(self, x):
            return self.head(self.body(x))


    class Sized(nn.Module):
        def __init__(self, input_shape, in_features, in_channels, num_classes, num_outputs, width=8):
            super().__init__()
            with open("sizes.json", "w") as handle:
                json.dump(dict(input_shape=input_shape, in_features=in_features, width=width,
                               in_channels=in_channels, num_classes=num_classes,
                               num_outputs=num_outputs), handle)
            self.layers = nn.Sequential(
                nn.Flatten(), nn.Linear(in_features, width), nn.ReLU(), nn.Linear(width, num_outputs)
            )

        def forward(self, x):
            return self.layers(x)


    class OneOutput(nn.Module):
        def __init__(self, in_features):
            super().__init__()
            self.layer = nn.Linear(in_features, 1)

        def forward(self, x):
            return self.layer(x)
"""


@pytest.fixture
def user_dir(tmp_path):
    (tmp_path / "mymodels.py").write_text(textwrap.dedent(MODELS))
    return tmp_path


def _hashes(folder):
    return {
        p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_the_users_model_gets_the_sizes_it_declares_with_both_entry_points(user_dir):
    args = [*FAST, "dataset=digits", "model=custom", "model._target_=mymodels.Sized"]
    run_cli([*args, "+model.width=12"], user_dir, run_dir=user_dir / "a", check=True)
    assert json.loads((user_dir / "sizes.json").read_text()) == {
        "input_shape": [1, 8, 8],
        "in_features": 64,
        "in_channels": 1,
        "num_classes": 10,
        "num_outputs": 10,
        "width": 12,
    }
    (user_dir / "sizes.json").unlink()
    script = [str(CONSOLE_SCRIPT), *args, "+model.width=12", f"hydra.run.dir={user_dir / 'b'}"]
    result = subprocess.run(
        script, cwd=user_dir, env=cli_env(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((user_dir / "sizes.json").read_text())["in_features"] == 64
    a, b = metrics_of(user_dir / "a"), metrics_of(user_dir / "b")
    assert a["status"] == b["status"] == "completed"
    assert a["test"] == b["test"]  # the same run, whichever entry point started it

    # Evaluating it rebuilds the user's class: accepted when the user names it again.
    test = run_cli(
        ["mode=test", f"trainer.resume={user_dir / 'a'}", "model._target_=mymodels.Sized"],
        user_dir,
        run_dir=user_dir / "t",
        check=True,
    )
    assert test.returncode == 0
    assert metrics_of(user_dir / "t")["test"] == a["test"]


def test_a_model_whose_output_does_not_fit_the_loss_stops_before_training(user_dir):
    args = [*FAST, "dataset=iris", "model=custom", "model._target_=mymodels.OneOutput"]
    result = run_cli(args, user_dir)
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    assert not unsaid(
        result,
        "model: OneOutput returns (32, 1) for a batch of 32, but CrossEntropy on 3 classes needs "
        "(32, 3): the last layer must give 3 outputs per sample: declare num_outputs in the "
        "model's __init__ (trainer passes 3)",
    )
    assert not (user_dir / "run").exists()  # nothing left behind


def test_bad_model_settings_are_clean_errors_naming_the_choices(user_dir):
    base = [*FAST, "model=custom", "model._target_=mymodels.Net"]
    init = run_cli([*base, "model.init=he_normal"], user_dir)
    freeze = run_cli([*base, "model.freeze=[bdy]"], user_dir)
    unset = run_cli([*FAST, "model=custom"], user_dir)
    assert init.returncode == freeze.returncode == unset.returncode == 2
    assert not unsaid(
        init,
        "model.init='he_normal' is not a known initialisation; valid: default, xavier_uniform, "
        "xavier_normal, kaiming_uniform, kaiming_normal, orthogonal.",
    )
    assert not unsaid(
        freeze,
        "model.freeze names 'bdy', which matches no parameter of the model. Its top-level "
        "modules: body, head",
    )
    assert not unsaid(
        unset, "model._target_ is not set", "model=custom model._target_=mymodels.Net"
    )
    for result in (init, freeze, unset):
        assert "Traceback" not in result.stdout + result.stderr


def test_fine_tuning_on_other_data_with_a_new_head_keeps_the_frozen_weights(user_dir):
    net = ["model=custom", "model._target_=mymodels.Net"]
    run_cli([*FAST, *net], user_dir, run_dir=user_dir / "moons", check=True)  # binary: 1 output
    before = _hashes(user_dir / "moons")

    tune = [*FAST, *net, "dataset=blobs", f"model.weights={user_dir / 'moons'}"]
    strict = run_cli(tune, user_dir, run_dir=user_dir / "strict")
    assert strict.returncode == 2
    assert not unsaid(
        strict,
        "does not fit this model exactly: 2 of the file's 4 tensors fit; shapes differ (file vs "
        "model): head.weight ((1, 16) vs (3, 16)), head.bias ((1,) vs (3,)).",
        "add model.weights_strict=false.",
    )
    assert not (user_dir / "strict").exists()

    tuned = run_cli(
        [
            *tune,
            "model.weights_strict=false",
            "model.freeze=[body]",
            "param_groups.module_lr={head: 0.01}",
        ],
        user_dir,
        run_dir=user_dir / "blobs",
        check=True,
    )
    assert not unsaid(
        tuned,
        f"model.weights={user_dir / 'moons' / 'checkpoints' / 'best.pt'}: 2 of the file's 4 "
        "tensors loaded; shapes differ (file vs model): head.weight ((1, 16) vs (3, 16)), "
        "head.bias ((1,) vs (3,))",
        "model.freeze: 2 parameter tensors frozen (body.0.weight, body.0.bias)",
    )
    assert _hashes(user_dir / "moons") == before  # the source run is only read
    source = torch.load(user_dir / "moons/checkpoints/best.pt", weights_only=True)["model"]
    last = torch.load(user_dir / "blobs/checkpoints/last.pt", weights_only=True)
    assert metrics_of(user_dir / "blobs")["epochs_run"] == 2 and last["global_step"] > 0
    for name in ("body.0.weight", "body.0.bias"):
        assert torch.equal(last["model"][name], source[name]), name  # bitwise
    assert tuple(last["model"]["head.weight"].shape) == (3, 16)
    assert not torch.equal(last["model"]["head.bias"], torch.zeros(3))  # the head trained
    groups = last["optimizer"]["param_groups"]
    assert [(g["name"], g["lr"], len(g["params"])) for g in groups] == [
        ("head", 0.01, 1),
        ("head/no_decay", 0.01, 1),
    ]
    assert len(last["optimizer"]["state"]) == 2  # no optimizer state for the frozen body

    # Resumed (the user's class named again, see trust.py), the body stays frozen.
    resume = [f"trainer.resume={user_dir / 'blobs'}", "trainer.max_epochs=3", *net[1:]]
    run_cli(resume, user_dir, run_dir=user_dir / "blobs", check=True)
    last = torch.load(user_dir / "blobs/checkpoints/last.pt", weights_only=True)
    assert last["epoch"] == metrics_of(user_dir / "blobs")["epochs_run"] == 3
    for name in ("body.0.weight", "body.0.bias"):
        assert torch.equal(last["model"][name], source[name]), name


def test_init_applies_to_the_users_model(user_dir):
    """A frozen layer keeps its initial weights: the checkpoint shows what model.init drew."""
    args = [*FAST, "model=custom", "model._target_=mymodels.Net", "model.init=orthogonal"]
    run_cli([*args, "model.freeze=[body]"], user_dir, check=True)
    weights = torch.load(user_dir / "run/checkpoints/last.pt", weights_only=True)["model"]
    w = weights["body.0.weight"]  # (16, 2): orthonormal columns
    assert torch.allclose(w.T @ w, torch.eye(2), atol=1e-5)
    assert torch.equal(weights["body.0.bias"], torch.zeros(16))
