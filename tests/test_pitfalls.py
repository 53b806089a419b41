"""The pitfall lab, unit by unit: each pitfall makes exactly its mistake inside the real loop,
the right way stays the right way, and what each measured is in the run's record."""

import copy
import functools

import numpy as np
import pytest
import torch
from helpers import make_trainer, moons_data

from trainer.callbacks.base import Callback
from trainer.evaluation import eval_mode
from trainer.health import diagnose, verdict
from trainer.models import MLP
from trainer.pitfalls import (
    PITFALLS,
    ForgetEvalMode,
    ForgetZeroGrad,
    GradInValidation,
    LrFarTooHigh,
    NoPitfall,
    NoShuffle,
    TestSetPeeking,
)
from trainer.step import TrainStep


class Phases(Callback):
    """Records, for every forward pass of the model, the phase of the run (train, val, test),
    whether the model was in train mode, whether autograd was on, and the inputs."""

    def __init__(self, model):
        self.phase, self.calls = "train", []
        model.register_forward_pre_hook(self._hook)

    def _hook(self, module, args):
        self.calls.append((self.phase, module.training, torch.is_grad_enabled(), args[0].clone()))

    def on_train_epoch_start(self, run):
        self.phase = "train"

    def on_validation_start(self, run):
        self.phase = "val"

    def on_test_start(self, run):
        self.phase = "test"

    def modes(self, phase):
        return {(training, grad) for p, training, grad, _ in self.calls if p == phase}

    def sequence(self, phase):
        return [(training, grad) for p, training, grad, _ in self.calls if p == phase]


def _model(data, dropout=0.0, batch_norm=False):
    torch.manual_seed(0)
    return MLP(
        data.spec.input_shape, 1, hidden_sizes=[16, 16], dropout=dropout, batch_norm=batch_norm
    )


def test_every_option_of_the_group_is_a_pitfall_and_none_is_the_right_way(tmp_path):
    from trainer.paths import config_dir

    names = sorted(p.stem for p in (config_dir() / "pitfall").glob("*.yaml"))
    assert (
        names
        == sorted(PITFALLS)
        == [
            "forget_eval_mode",
            "forget_zero_grad",
            "grad_in_validation",
            "lr_far_too_high",
            "no_shuffle",
            "none",
            "test_set_peeking",
        ]
    )
    trainer, data = make_trainer(tmp_path, pitfall=NoPitfall(), max_epochs=1)
    trainer.setup(data)
    assert trainer.pitfall is None
    assert "pitfall" not in trainer.callbacks
    assert type(trainer.step) is TrainStep  # the normal path: the very class it always used
    assert trainer._evaluate.mode is eval_mode
    assert "pitfall" not in trainer.fit(data)


def test_forget_zero_grad_applies_the_sum_of_every_batch_gradient_so_far(tmp_path):
    data = moons_data()
    model = _model(data)

    class Grads(Callback):
        def __init__(self):
            self.weights, self.grads = [], []

        def on_train_batch_start(self, run, batch_idx):
            self.weights.append(copy.deepcopy(run.state.model.state_dict()))

        def on_before_optimizer_step(self, run):
            self.grads.append([p.grad.clone() for p in run.state.model.parameters()])

    grads = Grads()
    trainer, _ = make_trainer(
        tmp_path,
        data,
        model=model,
        pitfall=ForgetZeroGrad(),
        callbacks=[grads],
        max_epochs=1,
        limit_train_batches=3,
    )
    trainer.fit(data)
    assert type(trainer.step).__name__ == "_GradientsNeverZeroed"
    batches = list(trainer.train_batches.batches(1))
    own = []  # each batch's own gradient, at the weights it met
    for weights, (x, y) in zip(grads.weights, batches):
        fresh = copy.deepcopy(model)
        fresh.load_state_dict(weights)
        fresh.train()
        trainer.loss_fn(fresh(x), y).backward()
        own.append([p.grad for p in fresh.parameters()])
    assert len(grads.grads) == 3
    for step in range(3):
        expected = [sum(g[i] for g in own[: step + 1]) for i in range(len(own[0]))]
        for got, want in zip(grads.grads[step], expected):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    # (the step's own gradient is a small part of what the optimizer applied)
    assert not torch.allclose(grads.grads[2][0], own[2][0])
    ratio = trainer.record.pitfall["grad_carried_over_last_epoch"]
    assert ratio > 1.0


def test_without_the_pitfall_each_step_applies_its_own_batch_gradient(tmp_path):
    data = moons_data()
    model = _model(data)
    seen = []

    class Grads(Callback):
        def on_train_batch_start(self, run, batch_idx):
            seen.append(copy.deepcopy(run.state.model.state_dict()))

        def on_before_optimizer_step(self, run):
            seen.append([p.grad.clone() for p in run.state.model.parameters()])

    trainer, _ = make_trainer(
        tmp_path, data, model=model, callbacks=[Grads()], max_epochs=1, limit_train_batches=2
    )
    trainer.fit(data)
    x, y = list(trainer.train_batches.batches(1))[1]
    fresh = copy.deepcopy(model)
    fresh.load_state_dict(seen[2])
    trainer.loss_fn(fresh(x), y).backward()
    for got, want in zip(seen[3], [p.grad for p in fresh.parameters()]):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


def test_forget_eval_mode_validates_and_tests_in_train_mode_with_dropout_on(tmp_path):
    data = moons_data()
    model = _model(data, dropout=0.5)
    phases = Phases(model)
    trainer, _ = make_trainer(
        tmp_path, data, model=model, pitfall=ForgetEvalMode(), callbacks=[phases], max_epochs=3
    )
    trainer.fit(data)
    trainer.test(data)
    # Each validation (one batch) in train mode with gradients off, then the pitfall's own
    # evaluation the right way (eval mode) for the comparison; likewise the test.
    assert phases.sequence("val") == [(True, False), (False, False)] * 3
    assert phases.sequence("test") == [(True, False), (False, False)]
    report = trainer.record.pitfall
    assert report["layers_that_differ"] == ["Dropout"]
    assert "note" not in report
    # The right way, measured beside: eval mode, dropout off.
    right = trainer._evaluate("test", mode=eval_mode)
    assert report["test_in_eval_mode"] == right
    assert report["test_in_train_mode"] == trainer.record.test
    assert report["test_in_train_mode"]["loss"] != right["loss"]
    for h in trainer.record.history:
        assert h["loss/val"] != h["pitfall/loss_val_eval_mode"]


def test_without_the_pitfall_validation_runs_in_eval_mode_under_inference_mode(tmp_path):
    data = moons_data()
    model = _model(data, dropout=0.5)
    phases = Phases(model)
    trainer, _ = make_trainer(tmp_path, data, model=model, callbacks=[phases], max_epochs=2)
    trainer.fit(data)
    assert phases.modes("val") == {(False, False)}
    assert all(h.get("pitfall/loss_val_eval_mode") is None for h in trainer.record.history)


def test_forget_eval_mode_lets_validation_data_move_the_batchnorm_statistics(tmp_path):
    data = moons_data()
    moved = {}

    class Stats(Callback):
        def on_validation_start(self, run):
            self.before = run.state.model.layers[2].running_mean.clone()

        def on_validation_end(self, run, metrics):
            moved[run.state.epoch] = not torch.equal(
                self.before, run.state.model.layers[2].running_mean
            )

    for pitfall, expected in ((ForgetEvalMode(), True), (None, False)):
        model = _model(data, batch_norm=True)
        assert type(model.layers[2]).__name__ == "BatchNorm1d"
        trainer, _ = make_trainer(
            tmp_path / str(expected),
            data,
            model=model,
            pitfall=pitfall,
            callbacks=[Stats()],
            max_epochs=2,
        )
        trainer.fit(data)
        assert moved == {1: expected, 2: expected}


def test_forget_eval_mode_on_a_model_without_dropout_says_how_to_see_it(tmp_path):
    trainer, data = make_trainer(tmp_path, pitfall=ForgetEvalMode(), max_epochs=3)
    summary = trainer.fit(data)
    assert summary["pitfall"]["layers_that_differ"] == []
    assert summary["pitfall"]["note"].endswith(
        "add model.dropout=0.3 (or model.batch_norm=true) to see the mistake"
    )
    for h in summary["history"]:  # no dropout, no BatchNorm: the same numbers
        assert h["loss/val"] == h["pitfall/loss_val_eval_mode"]


def test_grad_in_validation_builds_graphs_for_nothing_and_changes_no_number(tmp_path):
    data = moons_data()
    runs = {}
    for name, pitfall in (("right", None), ("pitfall", GradInValidation())):
        model = _model(data)
        phases = Phases(model)
        trainer, _ = make_trainer(
            tmp_path / name, data, model=model, pitfall=pitfall, callbacks=[phases], max_epochs=3
        )
        trainer.fit(data)
        trainer.test(data)
        runs[name] = (trainer, phases)
    right, wrong = runs["right"][0].record, runs["pitfall"][0].record
    assert runs["pitfall"][1].modes("val") == {(False, True)}  # eval mode, autograd on
    assert runs["right"][1].modes("val") == {(False, False)}
    assert [h["loss/val"] for h in wrong.history] == [h["loss/val"] for h in right.history]
    assert wrong.test == right.test
    report = wrong.pitfall
    assert report["max_metric_difference"] == 0.0
    assert set(report) >= {"val_time_with_grad_s", "val_time_inference_s", "slowdown"}
    # moons' 60 validation rows (float32) through Linear(2,16)-ReLU-Linear(16,16)-ReLU-
    # Linear(16,1) and BCE-with-logits: autograd keeps the input (60x2: 480 bytes), each ReLU's
    # output for the ReLU and again for the next Linear (4 x 60x16: 15,360), and the logits and
    # targets for the loss (2 x 60x1: 480); the weights it keeps are not counted
    assert report["saved_MB_per_validation"] == (480 + 15_360 + 480) / 1e6
    assert [h["pitfall/val_saved_MB"] for h in wrong.history] == [
        report["saved_MB_per_validation"]
    ] * 3


def test_no_shuffle_trains_on_the_sorted_split_in_the_same_order_every_epoch(tmp_path):
    data = moons_data()
    model = _model(data)
    phases = Phases(model)
    losses = {}

    class BatchLosses(Callback):
        def on_train_batch_end(self, run, batch_idx, loss):
            losses.setdefault(run.state.epoch, []).append(float(loss))

    trainer, _ = make_trainer(
        tmp_path,
        data,
        model=model,
        pitfall=NoShuffle(),
        callbacks=[phases, BatchLosses()],
        max_epochs=3,
    )
    trainer.fit(data)
    x, y = data.arrays["train"]
    order = np.argsort(y, kind="stable")
    expected = torch.as_tensor(x[order])
    seen = [c[3] for c in phases.calls if c[0] == "train" and c[2]]  # (not the model check)
    per_epoch = len(seen) // 3
    assert per_epoch == len(trainer.train_batches) == 9  # 280 rows, batches of 32
    for epoch in range(3):
        torch.testing.assert_close(
            torch.cat(seen[epoch * per_epoch : (epoch + 1) * per_epoch]), expected, rtol=0, atol=0
        )
    report = trainer.record.pitfall
    assert report["order"] == "sorted by target"
    assert report["last_class"] == 1
    assert report["val_share_of_last_class"] == 0.5
    for h in trainer.record.history:  # the swing within each epoch
        assert h["pitfall/batch_loss_min"] == min(losses[h["epoch"]])
        assert h["pitfall/batch_loss_max"] == max(losses[h["epoch"]])


def test_test_set_peeking_picks_the_epoch_with_the_lowest_test_loss(tmp_path):
    data = moons_data()
    model = _model(data)
    independent = {"test": [], "val": []}

    class Losses(Callback):  # each split's loss after every epoch, computed here
        def on_epoch_end(self, run, logs):
            with torch.no_grad():
                model.eval()
                for split in ("test", "val"):
                    x, y = data.arrays[split]
                    out = model(torch.as_tensor(x))
                    loss = trainer.loss_fn(out, trainer.head.targets(y))
                    independent[split].append(float(loss))
                model.train()

    trainer, _ = make_trainer(
        tmp_path, data, model=model, pitfall=TestSetPeeking(), callbacks=[Losses()], max_epochs=6
    )
    summary = trainer.fit(data)
    trainer.test(data)
    assert summary["best_epoch"] == int(np.argmin(independent["test"])) + 1
    np.testing.assert_allclose(
        [h["loss/val"] for h in summary["history"]], independent["test"], rtol=1e-6
    )
    np.testing.assert_allclose(
        [h["pitfall/loss_holdout"] for h in summary["history"]], independent["val"], rtol=1e-6
    )
    report = trainer.record.pitfall
    assert report["best_epoch_by_test"] == summary["best_epoch"]
    assert report["best_epoch_by_holdout"] == int(np.argmin(independent["val"])) + 1
    assert report["test_peeked"] == trainer.record.test
    assert report["holdout"] == trainer._evaluate("holdout")
    assert report["gap"]["loss"] == report["test_peeked"]["loss"] - report["holdout"]["loss"]
    # the optimism: the test loss at the chosen epoch against the one an honest choice (by the
    # untouched validation split) would have reported, on the same test split
    honest = summary["history"][report["best_epoch_by_holdout"] - 1]
    assert report["test_at_holdout_choice"]["loss"] == honest["loss/val"]
    assert report["optimism"]["loss"] == report["test_peeked"]["loss"] - honest["loss/val"]
    assert report["optimism"]["loss"] <= 0.0  # the chosen epoch has the lowest test loss


def test_test_set_peeking_needs_a_test_split(tmp_path):
    from trainer.errors import UserError

    pitfall = TestSetPeeking()
    empty = (torch.zeros(0, 2), torch.zeros(0))
    with pytest.raises(UserError, match=r"\+pitfall=test_set_peeking needs a test split"):
        pitfall.splits({"train": empty, "val": empty, "test": empty})


def test_lr_far_too_high_multiplies_the_rates_set(tmp_path):
    trainer, data = make_trainer(tmp_path, pitfall=LrFarTooHigh(), lr=0.01, max_epochs=1)
    trainer.setup(data)
    assert trainer.state.optimizer.param_groups[0]["lr"] == pytest.approx(10.0)
    assert trainer.record.pitfall is None  # (set when fit starts)
    scheduler = functools.partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=0.05, total_steps=9)
    pitfall = LrFarTooHigh(factor=100)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.01)
    scaled = pitfall.rates(optimizer, scheduler)
    assert scaled.keywords == {"max_lr": pytest.approx(5.0), "total_steps": 9}
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1.0)
    assert (pitfall.report["lr_set"], pitfall.report["factor"]) == (0.01, 100.0)


def test_the_health_report_leads_with_the_pitfall_and_never_says_healthy(tmp_path):
    trainer, data = make_trainer(tmp_path, pitfall=ForgetZeroGrad(), max_epochs=4)
    trainer.fit(data)
    trainer.test(data)
    summary = trainer.finish()
    health = summary["health"]
    assert health[0]["kind"] == "pitfall"
    assert health[0]["severity"] == "warning"
    assert health[0]["message"].startswith(
        "pitfall lab: forget_zero_grad, a demonstration — optimizer.zero_grad() is never called"
    )
    ratios = [h["pitfall/grad_carried_over"] for h in summary["history"]]
    assert "in epoch 4 (the sum" in health[0]["message"]
    assert f"{ratios[-1]:.4g} times in epoch 4" in health[0]["message"]
    assert summary["health_verdict"] == verdict(health) == "pitfall"
    assert all(f["advice"] is None and " Fix: " not in f["message"] for f in health[1:])
    # metrics.json's `pitfall` alone is enough: the report reads it from any summary
    again = diagnose(summary, "binary", 0.01)
    assert again[0]["message"] == health[0]["message"]


def _summary(pitfall, history, **extra):
    return {
        "status": "completed",
        "monitor": "loss/val",
        "mode": "min",
        "history": history,
        "pitfall": pitfall,
        "dataset": {"baseline": {"loss": 0.6931, "accuracy": 0.5}},
        **extra,
    }


def _epochs(*rows):
    return [
        {"epoch": i + 1, "loss/train": t, "loss/val": v, "accuracy/train": 0.9, "accuracy/val": a}
        for i, (t, v, a) in enumerate(rows)
    ]


def test_the_peeking_finding_compares_the_same_test_split_under_both_choices():
    pitfall = {
        "name": "test_set_peeking",
        "what": "the test split is used as the validation split",
        "test_peeked": {"loss": 0.10, "accuracy": 0.98},
        "holdout": {"loss": 0.03, "accuracy": 0.99},
        "best_epoch_by_test": 3,
        "best_epoch_by_holdout": 2,
        "test_at_holdout_choice": {"loss": 0.13, "accuracy": 0.96},
        "optimism": {"loss": -0.03, "accuracy": 0.02},
    }
    history = _epochs((0.5, 0.2, 0.9), (0.3, 0.13, 0.96), (0.2, 0.10, 0.98))
    found = diagnose(_summary(pitfall, history, best_epoch=3), "binary", 0.003)
    assert found[0]["message"] == (
        "pitfall lab: test_set_peeking, a demonstration — the test split is used as the "
        "validation split. The loss/val curves are test-set numbers. The test split picked epoch "
        "3 and scored loss 0.1, accuracy 0.98 there (what the run reports as its test score). An "
        "honest choice, by the untouched validation split, is epoch 2, where the same test split "
        "scores loss 0.13, accuracy 0.96: the peeked score is optimistic by loss -0.03, accuracy "
        "+0.02. The fresh hold-out (the real validation split) scores loss 0.03, accuracy 0.99 "
        "with the chosen weights. Fix: do not make the mistake (the same command without "
        "+pitfall)."
    )
    assert found[0]["advice"] is None  # (no command line: a run from Python)


def test_the_grad_in_validation_finding_says_when_the_time_is_noise():
    pitfall = {
        "name": "grad_in_validation",
        "what": "validation without torch.no_grad()",
        "val_time_with_grad_s": 0.0105,
        "val_time_inference_s": 0.0100,
        "slowdown": 1.05,
        "saved_MB_per_validation": 0.369,
        "max_metric_difference": 0.0,
    }
    history = _epochs((0.5, 0.2, 0.9), (0.3, 0.13, 0.96), (0.2, 0.10, 0.98))
    message = diagnose(_summary(pitfall, history), "binary", 0.003)[0]["message"]
    assert (
        "Autograd kept 0.369 MB of activations per validation for a backward pass that never "
        "came, and a validation pass took 10.5 ms with autograd on against 10.0 ms under "
        "inference_mode (1.05x, medians of 5 interleaved passes) (no difference beyond timing "
        "noise: this model's forward pass is mostly overhead; the memory is the cost here); the "
        "metrics were the same (largest difference 0)."
    ) in message


def test_a_diverged_lr_far_too_high_run_names_both_rates_and_the_divergence():
    pitfall = {
        "name": "lr_far_too_high",
        "what": "the learning rate is 1000 times the one set",
        "factor": 1000.0,
        "lr_set": 0.05,
        "lr_used": 50.0,
    }
    nonfinite = {"epoch": 1, "steps": [0, 22], "lr": 50.0, "value": "nan"}
    summary = _summary(pitfall, [], nonfinite=nonfinite, status="failed")
    found = diagnose(summary, "binary", 0.05)
    assert [f["kind"] for f in found] == ["pitfall", "divergence"]
    assert verdict(found) == "divergence"
    assert (
        "The learning rate was 50, 1000 times the 0.05 set. The training loss became nan "
        "between optimizer steps 0 and 22 (epoch 1) and the run stopped as diverged."
        in (found[0]["message"])
    )
    assert "(set: 0.05)" in found[1]["message"]
    assert found[1]["advice"] is None


def test_the_eval_mode_finding_gives_the_gap_and_the_epoch_eval_mode_would_pick():
    pitfall = {
        "name": "forget_eval_mode",
        "what": "model.eval() is never called",
        "layers_that_differ": ["Dropout"],
        "test_in_train_mode": {"loss": 0.18, "accuracy": 0.96},
        "test_in_eval_mode": {"loss": 0.12, "accuracy": 0.97},
    }
    history = _epochs((0.5, 0.20, 0.9), (0.3, 0.15, 0.96), (0.2, 0.17, 0.98))
    for h, right in zip(history, (0.18, 0.12, 0.10)):
        h["pitfall/loss_val_eval_mode"] = right
    summary = _summary(pitfall, history, best_epoch=2)
    assert diagnose(summary, "binary", 0.003)[0]["message"] == (
        "pitfall lab: forget_eval_mode, a demonstration — model.eval() is never called. "
        "Validation in train mode reported loss 0.17 in the last epoch (3) where model.eval() "
        "gives 0.1; over the run, train mode minus eval mode averaged +0.04 (largest +0.07). The "
        "best epoch, chosen on these train-mode numbers, was 2; with model.eval() it would have "
        "been 3. Test in train mode: loss 0.18, accuracy 0.96; with model.eval(): loss 0.12, "
        "accuracy 0.97. Layers that behave differently in train mode: Dropout. Fix: do not make "
        "the mistake (the same command without +pitfall)."
    )
