"""The user's own model: sizes by name, weight initialisation, saved weights, freezing, and the
forward-pass check before training."""

import math
from dataclasses import asdict

import pytest
import torch
from omegaconf import OmegaConf
from test_config import compose_config
from torch import nn

from trainer.errors import UserError
from trainer.losses import BCEWithLogits, CrossEntropy
from trainer.model_check import check_output
from trainer.model_init import _SCHEMES, initialize
from trainer.models import size_arguments
from trainer.settings import INIT_SCHEMES, MODEL_KEYS, ModelSettings
from trainer.tasks import Head
from trainer.transfer import freeze, load_weights


class Net(nn.Module):
    def __init__(self, in_features, num_outputs, width=16):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(in_features, width), nn.BatchNorm1d(width), nn.ReLU())
        self.head = nn.Linear(width, num_outputs)

    def forward(self, x):
        return self.head(self.body(x))


class Everything(nn.Module):
    def __init__(self, input_shape, in_features, in_channels, num_classes, num_outputs, depth=2):
        super().__init__()


# ---------------------------------------------------------------------- settings
def test_the_model_block_of_the_config_equals_model_settings():
    composed = OmegaConf.to_container(compose_config("model=cnn"), resolve=True)["model"]
    assert {k: composed[k] for k in MODEL_KEYS} == asdict(ModelSettings())
    assert asdict(ModelSettings()) == {
        "init": "default",
        "weights": None,
        "weights_strict": True,
        "freeze": [],
    }
    assert set(INIT_SCHEMES) == {"default", *_SCHEMES}


def test_model_settings_read_from_a_config_node():
    node = OmegaConf.create(
        {"_target_": "x.Net", "width": 3, "freeze": "body", "init": "orthogonal"}
    )
    assert asdict(ModelSettings.of(node)) == {
        "init": "orthogonal",
        "weights": None,
        "weights_strict": True,
        "freeze": ["body"],
    }
    assert asdict(ModelSettings.of({"_target_": "x.Net"})) == asdict(ModelSettings())
    with pytest.raises(UserError, match=r"model.weights_strict='no' must be true or false") as e:
        ModelSettings.of({"weights_strict": "no"})
    assert e.value.key == "model.weights_strict"
    with pytest.raises(UserError, match=r"model.freeze=\[3\] must be a list of parameter name"):
        ModelSettings.of({"freeze": [3]})


# ---------------------------------------------------------------------- sizes
def test_the_constructor_gets_the_sizes_it_declares_by_name():
    sizes = size_arguments(Everything, (1, 8, 8), 10, 10)
    assert sizes == {
        "input_shape": (1, 8, 8),
        "in_features": 64,
        "in_channels": 1,
        "num_classes": 10,
        "num_outputs": 10,
    }
    assert size_arguments(Net, (2,), 2, 1) == {"in_features": 2, "num_outputs": 1}
    # a size the config sets is the user's
    assert size_arguments(Net, (2,), 2, 1, {"num_outputs": 4}) == {"in_features": 2}
    assert size_arguments(nn.Linear, (5,), 3, 3) == {"in_features": 5}


def test_a_size_the_data_does_not_have_is_an_error_unless_it_has_a_default():
    with pytest.raises(
        UserError,
        match=r"requires in_channels, but this data set's samples are "
        r"flat \(2 features\): declare in_features instead \(trainer passes "
        r"in_features=2\)",
    ) as error:
        size_arguments(Everything, (2,), 2, 1)
    assert error.value.key == "model.in_channels"

    class Regressor(nn.Module):
        def __init__(self, in_features, num_outputs, num_classes=None):
            super().__init__()

    assert size_arguments(Regressor, (3,), None, 1) == {"in_features": 3, "num_outputs": 1}
    with pytest.raises(
        UserError,
        match=r"requires num_classes, but this data set is a "
        r"regression: declare num_outputs instead",
    ):
        size_arguments(Everything, (1, 4, 4), None, 1)


# ---------------------------------------------------------------------- init
def _layers():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(512, 256), nn.Conv2d(32, 64, 3), nn.BatchNorm1d(8))


FAN = {"0.weight": (512, 256), "1.weight": (32 * 9, 64 * 9)}  # (fan_in, fan_out)


@pytest.mark.parametrize("scheme", [s for s in INIT_SCHEMES if s != "default"])
def test_each_init_draws_the_weights_and_zeroes_the_biases(scheme):
    model = _layers()
    done = initialize(model, scheme)
    assert done == {"weights": ["0.weight", "1.weight"], "biases": ["0.bias", "1.bias", "2.bias"]}
    params = dict(model.named_parameters())
    for name in done["biases"]:
        assert torch.count_nonzero(params[name]).item() == 0, name
    assert torch.equal(params["2.weight"], torch.ones(8))  # a norm weight keeps its value
    for name, (fan_in, fan_out) in FAN.items():
        w = params[name].detach()
        if scheme == "orthogonal":
            flat = w.reshape(w.shape[0], -1)  # rows (out channels) orthonormal: fewer than columns
            gram = flat @ flat.T
            assert torch.allclose(gram, torch.eye(len(flat)), atol=1e-4), name
            continue
        std = math.sqrt(2 / (fan_in + fan_out)) if "xavier" in scheme else math.sqrt(2 / fan_in)
        assert abs(w.mean().item()) < 0.05 * std, name
        assert w.std().item() == pytest.approx(std, rel=0.03), name
        if scheme.endswith("uniform"):
            assert w.abs().max().item() <= math.sqrt(3) * std * (1 + 1e-6), name


def test_default_init_changes_nothing_and_draws_no_random_number():
    model, again = _layers(), _layers()
    state = torch.get_rng_state()
    assert initialize(model, "default") == {"weights": [], "biases": []}
    assert torch.equal(torch.get_rng_state(), state)
    for a, b in zip(model.parameters(), again.parameters()):
        assert torch.equal(a, b)


def test_an_unknown_init_names_the_valid_ones():
    with pytest.raises(UserError) as error:
        initialize(_layers(), "he")
    assert str(error.value) == (
        "model.init='he' is not a known initialisation; valid: default, xavier_uniform, "
        "xavier_normal, kaiming_uniform, kaiming_normal, orthogonal."
    )
    assert error.value.key == "model.init"


# ---------------------------------------------------------------------- weights
def _saved(tmp_path, model, name="w.pt", prefix=""):
    path = tmp_path / name
    torch.save({prefix + k: v for k, v in model.state_dict().items()}, path)
    return path


def test_strict_weights_load_every_tensor(tmp_path):
    torch.manual_seed(1)
    source = Net(2, 1)
    target = Net(2, 1)
    report = load_weights(target, _saved(tmp_path, source, prefix="module."))  # DDP-saved
    assert len(report.loaded) == 9 and report.complete  # 2 linear layers, BN: 2 + 3 buffers
    for (name, a), b in zip(source.state_dict().items(), target.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_new_head_is_refused_when_strict_and_kept_as_initialised_when_not(tmp_path):
    torch.manual_seed(1)
    path = _saved(tmp_path, Net(2, 1))
    target = Net(2, 3)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(UserError) as error:
        load_weights(target, path)
    assert str(error.value) == (
        f"model.weights: '{path}' does not fit this model exactly: 7 of the file's 9 tensors "
        "fit; shapes differ (file vs model): head.weight ((1, 16) vs (3, 16)), head.bias ((1,) "
        "vs (3,)). To load the tensors that fit and keep the others as initialised (e.g. a new "
        "output layer), add model.weights_strict=false."
    )
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())

    report = load_weights(target, path, strict=False)
    assert report.text() == (
        "7 of the file's 9 tensors loaded; shapes differ (file vs model): head.weight ((1, 16) "
        "vs (3, 16)), head.bias ((1,) vs (3,))"
    )
    saved = torch.load(path, weights_only=True)
    for name, value in target.state_dict().items():
        expected = before[name] if name.startswith("head.") else saved[name]
        assert torch.equal(value, expected), name


def test_missing_and_unexpected_names_are_listed(tmp_path):
    state = Net(2, 1).state_dict()
    state["extra.weight"] = torch.zeros(2)
    del state["body.0.bias"]
    path = tmp_path / "w.pt"
    torch.save(state, path)
    with pytest.raises(
        UserError,
        match=r"missing from the file \(kept as initialised\): "
        r"body.0.bias; unexpected \(in the file, not in the model\): extra.weight",
    ):
        load_weights(Net(2, 1), path)


class Payload:
    """Not a tensor: torch.load(weights_only=True) must refuse it, never build it."""

    def __reduce__(self):
        return (print, ("executed",))


def test_a_weights_file_that_holds_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"head.weight": torch.zeros(1), "x": Payload()}, path)
    with pytest.raises(UserError, match=r"model.weights: refused to load .*evil.pt'") as error:
        load_weights(Net(2, 1), path)
    assert error.value.key == "model.weights"
    assert "executed" not in capsys.readouterr().out


def test_a_weights_path_that_is_no_file_names_the_choices(tmp_path):
    with pytest.raises(
        UserError,
        match=r"model.weights: '.*' holds no checkpoint \(no "
        r"checkpoints/best.pt or checkpoints/last.pt\)",
    ):
        load_weights(Net(2, 1), tmp_path)
    with pytest.raises(UserError, match=r"model.weights: no such run directory or file: "):
        load_weights(Net(2, 1), tmp_path / "nope.pt")
    path = tmp_path / "other.pt"
    torch.save({"conv.weight": torch.zeros(3)}, path)
    with pytest.raises(UserError, match=r"no tensor of '.*other.pt' fits this model"):
        load_weights(Net(2, 1), path)


# ---------------------------------------------------------------------- freeze
def test_freeze_stops_gradients_and_keeps_batch_norm_statistics():
    torch.manual_seed(0)
    model = Net(4, 2)
    assert freeze(model, ["body"]) == [
        "body.0.weight",
        "body.0.bias",
        "body.1.weight",
        "body.1.bias",
    ]
    assert [n for n, p in model.named_parameters() if p.requires_grad] == [
        "head.weight",
        "head.bias",
    ]
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    model.train()
    model(torch.randn(16, 4) * 5 + 3).sum().backward()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in stats.items())
    assert model.body[0].weight.grad is None and model.head.weight.grad is not None


def test_freeze_names_the_modules_when_a_prefix_matches_nothing():
    with pytest.raises(UserError) as error:
        freeze(Net(4, 2), ["bod"])
    assert str(error.value) == (
        "model.freeze names 'bod', which matches no parameter of the model. Its top-level "
        "modules: body, head (parameters such as body.0.weight, body.0.bias, body.1.weight, "
        "body.1.bias, head.weight, head.bias)."
    )
    with pytest.raises(UserError, match=r"freezes every parameter of the model: nothing would"):
        freeze(Net(4, 2), ["body", "head"])


# ---------------------------------------------------------------------- forward check
class Returns(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.shape = shape
        self.norm = nn.BatchNorm1d(2)

    def forward(self, x):
        return self.norm(x).sum() * torch.zeros(self.shape)


def test_a_wrong_output_shape_names_both_shapes_and_the_fix():
    x, y = torch.randn(32, 2), torch.arange(32) % 3
    head = Head("multiclass", "logits", 3)
    with pytest.raises(UserError) as error:
        check_output(Returns((32, 1)), CrossEntropy(), head, x, y)
    assert str(error.value) == (
        "model: Returns returns (32, 1) for a batch of 32, but CrossEntropy on 3 classes needs "
        "(32, 3): the last layer must give 3 outputs per sample: declare num_outputs in the "
        "model's __init__ (trainer passes 3) and end with e.g. nn.Linear(..., num_outputs)."
    )
    binary = Head("binary", "logit", 1)
    with pytest.raises(
        UserError,
        match=r"returns \(32,\) for a batch of 32, but BCEWithLogits on "
        r"binary classification \(one logit per sample\) needs \(32, 1\): .* can "
        r"end with .reshape\(-1, 1\)",
    ):
        check_output(Returns((32,)), BCEWithLogits(), binary, x, head.targets(y % 2))


def test_the_check_changes_nothing_and_a_fitting_model_passes():
    model = Returns((32, 3))
    model.train()
    x = torch.randn(32, 2) + 4
    state = torch.get_rng_state()
    check_output(model, CrossEntropy(), Head("multiclass", "logits", 3), x, torch.arange(32) % 3)
    assert model.training and torch.equal(torch.get_rng_state(), state)
    assert torch.equal(model.norm.running_mean, torch.zeros(2))


class Broken(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(5, 3)

    def forward(self, x):
        return self.layer(x)


def test_a_forward_that_fails_is_reported_with_the_users_line():
    with pytest.raises(UserError) as error:
        check_output(
            Broken(),
            CrossEntropy(),
            Head("multiclass", "logits", 3),
            torch.randn(4, 2),
            torch.zeros(4, dtype=torch.long),
        )
    text = str(error.value)
    assert text.startswith(
        "model: Broken failed on a batch of inputs shaped (4, 2): RuntimeError: mat1 and mat2 "
        "shapes cannot be multiplied (4x2 and 5x3) (at "
    )
    assert (
        f"{__file__}:" in text
        and ", in forward). Its first layer must take inputs shaped (2,)" in text
    )


def test_a_resume_cannot_change_what_is_frozen():
    from trainer.state import check_same_training

    saved = {"optimizer": {"lr": 0.1}, "model": {"freeze": ["body"]}}
    check_same_training(saved, {"optimizer": {"lr": 0.1}, "model": {"freeze": ["body"]}})
    check_same_training({"optimizer": {"lr": 0.1}}, {"optimizer": {"lr": 0.1}, "model": {}})
    with pytest.raises(UserError, match=r"changes them \(model.freeze: \['body'\] -> \[\]\)") as e:
        check_same_training(saved, {"optimizer": {"lr": 0.1}, "model": {"freeze": []}})
    assert e.value.key == "model.freeze"
