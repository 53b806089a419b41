"""The health report: findings on crafted histories (judged against the task's chance level),
the verdict, advice that exists in every composed config, and real runs that go wrong on purpose."""

import functools
import math

import numpy as np
import pytest
import torch
from helpers import make_trainer
from test_config import compose_config

from trainer.data import DataModule
from trainer.data.synthetic import moons
from trainer.health import chance_level, diagnose, verdict
from trainer.health.advice import GROUP_OPTIONS, Advisor
from trainer.paths import config_dir

BINARY = {"accuracy": 0.5, "classes": 2, "loss": math.log(2), "loss_name": "BCEWithLogits"}


def _summary(train, val, status="completed", acc=None, val_acc=None, baseline=BINARY, **extra):
    history = [
        {"epoch": i + 1, "loss/train": t, "loss/val": v} for i, (t, v) in enumerate(zip(train, val))
    ]
    for key, series in (("accuracy/train", acc), ("accuracy/val", val_acc)):
        for h, a in zip(history, series or []):
            h[key] = a
    summary = {
        "history": history,
        "status": status,
        "monitor": "loss/val",
        "max_epochs": len(train),
        "dataset": {"num_classes": 2, "baseline": baseline, "sizes": {"val": 150}},
    }
    return summary | extra


def _kinds(findings):
    return [f["kind"] for f in findings]


OVERFIT_TRAIN = [0.6, 0.4, 0.3, 0.25, 0.2, 0.15, 0.1, 0.07, 0.05]
OVERFIT_VAL = [0.6, 0.45, 0.35, 0.36, 0.4, 0.45, 0.5, 0.55, 0.6]


def test_overfitting_that_hurt_is_a_warning_with_the_turn_and_the_gap():
    findings = diagnose(_summary(OVERFIT_TRAIN, OVERFIT_VAL, acc=[0.9] * 9), "binary", 0.01)
    assert _kinds(findings) == ["overfitting"] and verdict(findings) == "overfitting"
    (finding,) = findings
    assert finding["severity"] == "warning"
    assert finding["evidence"]["best_epoch"] == 3 and finding["evidence"]["epochs_rising"] == 6
    assert "0.35 (epoch 3) to 0.6" in finding["message"] and "gap is 0.55" in finding["message"]
    assert finding["advice"] == "callbacks=default"  # no early stopping: put it back


def test_overfitting_caught_by_early_stopping_is_info_and_the_run_is_healthy():
    summary = _summary(
        OVERFIT_TRAIN, OVERFIT_VAL, status="stopped_early", restored="restored epoch 3"
    )
    summary["best_epoch"] = 3
    findings = diagnose(summary, "binary", 0.01, {"early_stopping": {"patience": 6, "restores": 1}})
    assert verdict(findings) == "healthy"
    assert _kinds(findings) == ["ok", "overfitting_caught"]
    assert findings[1]["severity"] == "info" and findings[1]["advice"] is None
    assert "early stopping caught overfitting" in findings[1]["message"]
    assert "restored epoch 3" in findings[1]["message"]


def test_a_validation_loss_below_the_training_loss_is_not_overfitting():
    train = [0.6, 0.45, 0.38, 0.34, 0.32, 0.31, 0.305, 0.302]
    val = [t - 0.08 for t in train]  # dropout / augmentation: val below train throughout
    findings = diagnose(_summary(train, val, status="stopped_early"), "binary", 0.003)
    assert verdict(findings) == "healthy" and findings[0]["kind"] == "ok"


def test_an_oscillating_loss_is_a_learning_rate_too_high_without_nan():
    zigzag = [0.7, 0.5, 0.65, 0.45, 0.6, 0.4, 0.58, 0.42, 0.55]
    findings = diagnose(_summary(zigzag, zigzag), "binary", 0.5)
    assert verdict(findings) == "lr_too_high"
    assert findings[0]["advice"] == "optimizer.lr=0.05"
    assert "rose in 4 of 8 epochs" in findings[0]["message"]
    calm = [0.7, 0.4, 0.2, 0.1, 0.05, 0.051, 0.049, 0.0495, 0.048]  # tiny late wiggles: fine
    assert "lr_too_high" not in _kinds(diagnose(_summary(calm, calm), "binary", 0.001))


def test_a_loss_worse_than_chance_points_at_the_rate_not_at_the_first_epoch():
    # The first epoch was already bad: measured against it, nothing "rose"; against chance it is.
    train = [0.95, 0.9, 0.97, 0.92, 0.94, 0.9, 0.93, 0.91]
    findings = diagnose(_summary(train, train, val_acc=[0.5] * 8), "binary", 0.5)
    assert verdict(findings) == "lr_too_high"
    assert "worse than the chance level 0.6931" in findings[0]["message"]
    assert findings[0]["advice"] == "optimizer.lr=0.05"


def test_learning_rate_advice_moves_down_from_what_the_user_set_under_a_schedule():
    # A warm-up diverged at a scheduled 0.002 below the base rate 0.01: lower than both.
    summary = _summary([0.7, 0.5], [0.7, 0.5])
    summary["nonfinite"] = {"steps": [25, 50], "epoch": 3, "lr": 0.002, "value": "nan"}
    (finding,) = diagnose(summary, "binary", 0.01)
    assert finding["kind"] == "divergence" and finding["severity"] == "error"
    assert finding["advice"] == "optimizer.lr=0.0002"
    assert "steps 25 and 50" in finding["message"] and "(set: 0.01)" in finding["message"]
    # A cyclic schedule peaked at 0.12 = 12x its base: the advice still starts from the base.
    summary["nonfinite"]["lr"] = 0.12
    assert diagnose(summary, "binary", 0.01)[0]["advice"] == "optimizer.lr=0.001"


def test_flat_loss_is_a_too_small_learning_rate_raised_from_the_rate_set():
    flat = [0.7, 0.6995, 0.699, 0.6985, 0.698, 0.6975]
    findings = diagnose(_summary(flat, flat, acc=[0.5] * 6, val_acc=[0.5] * 6), "binary", 1e-6)
    assert _kinds(findings) == ["lr_too_low"]
    assert findings[0]["advice"] == "optimizer.lr=1e-05"
    assert "at lr 1e-06" in findings[0]["message"]


def test_no_learnable_signal_is_told_apart_from_a_low_rate():
    train = [0.70, 0.693, 0.690, 0.688, 0.687, 0.686, 0.685, 0.684]  # reached chance (0.693)
    val = [0.70, 0.697, 0.699, 0.701, 0.703, 0.702, 0.704, 0.705]  # never below it
    summary = _summary(train, val, acc=[0.52] * 8, val_acc=[0.49, 0.5, 0.48, 0.5] * 2)
    findings = diagnose(summary, "binary", 0.003)
    assert verdict(findings) == "no_signal" and findings[0]["advice"] is None
    assert "within what 150 val samples can tell from 0.500" in findings[0]["message"]


def test_a_linear_model_that_underfits_is_pointed_at_a_model_with_hidden_layers():
    train = [0.69, 0.60, 0.58, 0.575, 0.573, 0.572, 0.572]
    summary = _summary(train, train, acc=[0.6] * 7, val_acc=[0.62] * 7, status="stopped_early")
    facts = {
        "model": {"class": "Linear", "weight_layers": 1, "hidden_widths": []},
        "config": {"model": {"_target_": "trainer.models.Linear"}, "optimizer": {"lr": 0.003}},
        "overrides": ["dataset=circles", "model=linear"],
    }
    findings = diagnose(summary, "binary", 0.003, facts)
    assert verdict(findings) == "underfitting"
    assert findings[0]["advice"] == "python -m trainer dataset=circles model=mlp"
    assert "hidden_sizes" not in findings[0]["message"]


def test_vanishing_gradients_are_named_from_the_per_layer_norms():
    train = [0.70, 0.695, 0.694, 0.6935, 0.6933, 0.6932]
    summary = _summary(train, train, acc=[0.5] * 6, val_acc=[0.5] * 6)
    for h in summary["history"]:
        h["grad_norm/first_layer"], h["grad_norm/last_layer"] = 2e-5, 0.05
    facts = {"model": {"class": "MLP", "weight_layers": 7, "saturating": ["Sigmoid"]}}
    findings = diagnose(summary, "binary", 0.05, facts)
    assert verdict(findings) == "vanishing_gradients"
    assert findings[0]["evidence"]["layer_ratio"] == pytest.approx(4e-4)
    assert findings[0]["advice"] == "model.activation=relu"


def test_a_run_that_stopped_while_still_improving_says_so_plainly():
    improving = [0.69 - 0.03 * i for i in range(15)]
    summary = _summary(improving, improving, acc=[0.9] * 15)
    findings = diagnose(summary, "binary", 0.01, {"overrides": ["dataset=iris"]})
    assert verdict(findings) == "still_improving"
    assert findings[0]["message"].startswith("stopped while still improving")
    assert findings[0]["advice"] == "python -m trainer dataset=iris trainer.max_epochs=30"


def test_plateau_is_context_and_healthy_otherwise():
    plateau_val = [0.5, 0.3, 0.2] + [0.2001] * 12
    plateau_train = [0.5, 0.3, 0.19] + [0.19] * 12
    findings = diagnose(_summary(plateau_train, plateau_val, acc=[0.9] * 15), "binary", 0.01)
    assert _kinds(findings) == ["ok", "plateau"] and verdict(findings) == "healthy"
    assert "has not improved since epoch 3" in findings[1]["message"]
    good = [0.7, 0.4, 0.3, 0.25, 0.22]
    (ok,) = diagnose(
        _summary(good, [v + 0.01 for v in good], acc=[0.95] * 5, status="stopped_early"),
        "binary",
        0.01,
    )
    assert ok["kind"] == "ok" and "0.23" in ok["message"] and "chance level 0.6931" in ok["message"]


def test_verdict_of_old_and_new_reports():
    assert verdict([]) == "healthy" and verdict(None) == "healthy"
    old = [  # a metrics.json from before "advice" existed
        {"kind": "still_improving", "severity": "info", "message": "", "evidence": {}},
        {"kind": "lr_too_low", "severity": "warning", "message": "", "evidence": {}},
        {"kind": "divergence", "severity": "error", "message": "", "evidence": {}},
    ]
    assert verdict(old) == "divergence" and verdict(old[:2]) == "lr_too_low"
    assert verdict(old[:1]) == "healthy"


def test_every_finding_carries_numbers():
    for finding in diagnose(_summary(OVERFIT_TRAIN, OVERFIT_VAL, acc=[0.6] * 9), "binary", 0.01):
        assert finding["evidence"] and any(ch.isdigit() for ch in finding["message"])


def test_chance_levels_come_from_the_train_split():
    data = DataModule(moons(n_samples=400))
    level = chance_level(data, torch.nn.BCEWithLogitsLoss())
    assert level["accuracy"] == 0.5 and level["classes"] == 2
    assert level["loss"] == pytest.approx(math.log(2))
    weighted = chance_level(data, torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor([2.0])))
    assert weighted["loss"] is None  # a weighted loss has another chance level: metrics only
    from trainer.data.synthetic import linear

    regression = chance_level(DataModule(linear(n_samples=200)), torch.nn.MSELoss())
    assert regression["r2"] == 0.0 and regression["loss"] == pytest.approx(1.0)  # standardised


# ---------------------------------------------------------------------- advice vs. the configs
def _options(group):
    return sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))


def _has(config, key):
    node = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


@pytest.mark.parametrize("scheduler", _options("scheduler"))
@pytest.mark.parametrize("model", _options("model"))
def test_every_advice_template_names_keys_of_the_composed_config(model, scheduler):
    from omegaconf import OmegaConf

    dataset = ["dataset=digits"] if model == "cnn" else []
    cfg = compose_config(f"model={model}", f"scheduler={scheduler}", *dataset)
    config = OmegaConf.to_container(cfg, resolve=True)
    base = float(config["optimizer"]["lr"])
    for stopping in (None, {"patience": 10, "restores": False}, {"patience": 10, "restores": True}):
        facts = {"config": config, "early_stopping": stopping, "model": {"hidden_widths": [64]}}
        advisor = Advisor(facts, base, [base * 0.5, base * 12], {"max_epochs": 7})
        templates = [
            advisor.lower_lr(),
            advisor.lower_lr(below=base * 12),
            advisor.raise_lr(),
            advisor.bigger_model(),
            advisor.regularise(),
            advisor.non_saturating(),
            advisor.clip(),
            advisor.standardise(),
            advisor.longer(),
            advisor.schedule(),
        ]
        for _, overrides in templates:
            for override in overrides:
                key, value = override.split("=", 1)
                if key in GROUP_OPTIONS:
                    assert value in _options(key) and value in GROUP_OPTIONS[key], override
                else:
                    assert _has(config, key), (model, scheduler, override)
        values = {o.split("=")[0]: float(o.split("=")[1]) for o in advisor.lower_lr()[1]}
        assert values["optimizer.lr"] == pytest.approx(base / 10)
        assert float(advisor.raise_lr()[1][0].split("=")[1]) == pytest.approx(base * 10)
        assert (advisor.bigger_model()[1] == ["model=mlp"]) == (model == "linear")


def test_a_schedule_peak_set_apart_from_the_rate_is_lowered_too():
    config = compose_config("scheduler=onecycle", "scheduler.max_lr=0.5")
    from omegaconf import OmegaConf

    advisor = Advisor({"config": OmegaConf.to_container(config, resolve=True)}, 0.003, [0.5], {})
    assert advisor.lower_lr()[1] == ["optimizer.lr=0.0003", "scheduler.max_lr=0.05"]
    assert advisor.raise_lr()[1] == ["optimizer.lr=0.03", "scheduler.max_lr=5"]


# ---------------------------------------------------------------------- real runs
@pytest.mark.parametrize(
    "case,expected",
    [
        ("overfitting", "overfitting"),
        ("lr_too_high", "lr_too_high"),
        ("lr_too_low", "lr_too_low"),
    ],
)
def test_crafted_runs_get_the_right_finding(tmp_path, case, expected):
    settings = {
        "overfitting": dict(
            data=DataModule(moons(n_samples=120, noise=0.35)),
            hidden=(256, 256),
            lr=0.01,
            max_epochs=150,
        ),
        "lr_too_high": dict(
            optimizer=functools.partial(torch.optim.SGD, lr=8.0, foreach=True), max_epochs=15
        ),
        "lr_too_low": dict(
            optimizer=functools.partial(torch.optim.SGD, lr=1e-5, foreach=True), max_epochs=10
        ),
    }[case]
    trainer, data = make_trainer(tmp_path, **settings)
    trainer.fit(data)
    summary = trainer.finish()
    kinds = _kinds(summary["health"])
    assert kinds[0] == expected and summary["health_verdict"] == expected, kinds
    ruled_out = {"overfitting": {"lr_too_high"}}.get(expected, set())
    assert ruled_out.isdisjoint(kinds), kinds
    assert summary["dataset"]["baseline"]["accuracy"] == 0.5


def test_learning_rate_advice_starts_from_the_rate_the_user_set(tmp_path):
    cosine = functools.partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=8, eta_min=0.0)
    trainer, data = make_trainer(
        tmp_path,
        optimizer=functools.partial(torch.optim.SGD, lr=1e-5, foreach=True),
        scheduler=cosine,
        max_epochs=8,
    )
    trainer.fit(data)
    assert trainer.state.optimizer.param_groups[0]["lr"] == 0.0  # the schedule ended at 0
    finding = next(f for f in trainer.finish()["health"] if f["kind"] == "lr_too_low")
    assert "at lr 1e-05" in finding["message"] and finding["advice"] == "optimizer.lr=0.0001"


def test_per_layer_gradient_norms_are_logged_once_per_epoch(tmp_path):
    from trainer.callbacks.base import Callback

    class NormEveryStep(Callback):  # asks for the gradient norm at every step
        grad_norm_every_n_steps = 1

    trainer, data = make_trainer(tmp_path, callbacks={"n": NormEveryStep()}, max_epochs=2)
    trainer.fit(data)
    last = trainer.record.history[-1]
    first, final = last["grad_norm/first_layer"], last["grad_norm/last_layer"]
    assert np.isfinite(first) and np.isfinite(final) and first > 0 and final > 0
    assert set(trainer.record.history[0]) >= {"grad_norm", "grad_norm/first_layer"}
