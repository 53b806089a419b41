"""The health report: findings on crafted histories and on real runs that go wrong on purpose."""

import functools

import pytest
import torch
from helpers import make_trainer

from trainer.data import DataModule
from trainer.data.synthetic import moons
from trainer.health import diagnose


def _summary(train, val, status="completed", acc=None, monitor="loss/val"):
    history = [
        {"epoch": i + 1, "loss/train": t, "loss/val": v} for i, (t, v) in enumerate(zip(train, val))
    ]
    if acc is not None:
        for h, a in zip(history, acc):
            h["accuracy/train"] = a
    return {"history": history, "status": status, "monitor": monitor, "dataset": {"num_classes": 2}}


def _kinds(findings):
    return [f["kind"] for f in findings]


def test_overfitting_names_the_turn_and_the_gap():
    train = [0.6, 0.4, 0.3, 0.25, 0.2, 0.15, 0.1, 0.07, 0.05]
    val = [0.6, 0.45, 0.35, 0.36, 0.4, 0.45, 0.5, 0.55, 0.6]
    (finding,) = [
        f
        for f in diagnose(_summary(train, val, acc=[0.9] * 9), "binary", 0.01)
        if f["kind"] == "overfitting"
    ]
    assert finding["evidence"]["best_epoch"] == 3 and finding["evidence"]["epochs_rising"] == 6
    assert "0.35 (epoch 3) to 0.6" in finding["message"] and "gap is 0.55" in finding["message"]


def test_rising_and_oscillating_loss_point_at_the_learning_rate():
    rising = diagnose(_summary([0.7, 0.9, 1.3, 1.5, 2.0], [0.7, 0.9, 1.3, 1.5, 2.0]), "binary", 0.5)
    assert "lr_too_high" in _kinds(rising) and "optimizer.lr=0.05" in rising[0]["message"]
    zigzag = [0.7, 0.5, 0.65, 0.45, 0.6, 0.4, 0.58, 0.42, 0.55]
    assert "lr_too_high" in _kinds(diagnose(_summary(zigzag, zigzag), "binary", 0.5))
    calm = [0.7, 0.4, 0.2, 0.1, 0.05, 0.051, 0.049, 0.0495, 0.048]  # tiny late wiggles: fine
    assert "lr_too_high" not in _kinds(diagnose(_summary(calm, calm), "binary", 0.001))


def test_flat_loss_points_at_a_too_small_learning_rate_and_underfitting():
    flat = [0.693, 0.6929, 0.6928, 0.6928, 0.6927, 0.6926]
    findings = diagnose(_summary(flat, flat, acc=[0.5] * 6), "binary", 1e-6)
    assert _kinds(findings)[:2] == ["lr_too_low", "underfitting"]
    assert "optimizer.lr=1e-05" in findings[0]["message"]


def test_still_improving_plateau_divergence_and_ok():
    improving = [1.0 - 0.05 * i for i in range(15)]
    assert "still_improving" in _kinds(
        diagnose(_summary(improving, improving, acc=[0.9] * 15), "binary", 0.01)
    )
    plateau_val = [0.5, 0.3, 0.2] + [0.2001] * 12
    plateau_train = [0.5, 0.3, 0.19] + [0.19] * 12
    assert _kinds(
        diagnose(_summary(plateau_train, plateau_val, acc=[0.9] * 15), "binary", 0.01)
    ) == ["plateau"]
    divergent = _summary([0.7, 0.5], [0.7, 0.5])
    divergent["nonfinite"] = {"steps": [25, 50], "epoch": 3, "lr": 5.0, "value": "nan"}
    (finding,) = diagnose(divergent, "binary", 5.0)
    assert (
        finding["kind"] == "divergence"
        and "steps 25 and 50" in finding["message"]
        and "lr" in finding["evidence"]
    )
    good = [0.7, 0.4, 0.3, 0.25, 0.22]
    (ok,) = diagnose(
        _summary(good, [v + 0.01 for v in good], acc=[0.95] * 5, status="stopped_early"),
        "binary",
        0.01,
    )
    assert ok["kind"] == "ok" and "0.23" in ok["message"]


def test_every_finding_carries_numbers():
    train = [0.6, 0.4, 0.3, 0.25, 0.2, 0.15, 0.1, 0.07, 0.05]
    val = [0.6, 0.45, 0.35, 0.36, 0.4, 0.45, 0.5, 0.55, 0.6]
    for finding in diagnose(_summary(train, val, acc=[0.6] * 9), "binary", 0.01):
        assert finding["evidence"] and any(ch.isdigit() for ch in finding["message"])


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
    kinds = _kinds(trainer.finish()["health"])
    assert kinds[0] == expected, kinds
    ruled_out = {"overfitting": {"lr_too_high"}}.get(expected, set())
    assert ruled_out.isdisjoint(kinds), kinds


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
    assert "at lr 1e-05. Try optimizer.lr=0.0001" in finding["message"]
