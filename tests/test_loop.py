"""The loop does what every tutorial teaches, right by default."""

import functools

import numpy as np
import pytest
import torch
from helpers import make_trainer, moons_data
from torch import nn

from trainer.callbacks import Callback
from trainer.errors import UserError


class Probe(nn.Module):
    """Wraps a model and records the mode it is called in."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.calls = []

    def forward(self, x):
        self.calls.append(
            (self.training, torch.is_grad_enabled(), torch.is_inference_mode_enabled())
        )
        return self.inner(x)


class Events(Callback):
    def __init__(self):
        self.events = []

    def on_validation_start(self, trainer):
        self.events.append("validate")

    def on_test_start(self, trainer):
        self.events.append("test")

    def on_epoch_end(self, trainer, logs):
        self.events.append("epoch_end")


def test_moons_mlp_learns_with_defaults(tmp_path):
    trainer, data = make_trainer(
        tmp_path, data=moons_data(1000), hidden=(64, 64), lr=3e-3, max_epochs=30
    )
    trainer.fit(data)
    assert trainer.record.best.metrics["accuracy/val"] >= 0.95
    assert trainer.test(data)["accuracy"] >= 0.95


def test_train_mode_for_training_eval_and_inference_mode_for_evaluation(tmp_path):
    from trainer.models import MLP

    probe = Probe(MLP((2,), 1, hidden_sizes=[8], dropout=0.5))
    events = Events()
    trainer, data = make_trainer(tmp_path, model=probe, callbacks={"events": events}, max_epochs=2)
    trainer.fit(data)
    train_calls = 2 * len(trainer.train_batches)
    assert all(call == (True, True, False) for call in probe.calls[: len(trainer.train_batches)])
    evaluation = [c for c in probe.calls if not c[0]]
    assert len(probe.calls) - len(evaluation) == train_calls
    assert evaluation and all(c == (False, False, True) for c in evaluation)
    trainer.test(data)
    assert events.events == ["validate", "epoch_end", "validate", "epoch_end", "test"]


def test_zero_grad_comes_before_each_backward_and_step_after(tmp_path):
    order = []

    class Recording(torch.optim.SGD):
        def zero_grad(self, set_to_none=True):
            order.append("zero_grad")
            super().zero_grad(set_to_none)

        def step(self, closure=None):
            order.append("step")
            return super().step(closure)

    class Backward(Callback):
        def on_after_backward(self, trainer):
            order.append("backward")

    trainer, data = make_trainer(
        tmp_path,
        optimizer=functools.partial(Recording, lr=0.1, foreach=True),
        callbacks={"b": Backward()},
        max_epochs=1,
        accumulate_grad_batches=2,
    )
    trainer.fit(data)
    assert order[:8] == ["zero_grad", "backward", "backward", "step"] * 2
    assert order.count("step") == trainer.state.global_step == trainer.state.steps_per_epoch


def test_validation_metrics_cover_the_whole_split(tmp_path):
    trainer, data = make_trainer(tmp_path, max_epochs=2, eval_batch_size=7)  # uneven batches
    trainer.fit(data)
    x, y = data.arrays["val"]
    with torch.no_grad():
        logits = trainer.state.model(torch.from_numpy(x))
    accuracy = ((logits[:, 0] > 0).numpy() == y).mean()
    loss = nn.functional.binary_cross_entropy_with_logits(
        logits[:, 0], torch.from_numpy(y).float()
    ).item()
    assert trainer.record.history[-1]["accuracy/val"] == pytest.approx(accuracy)
    assert trainer.record.history[-1]["loss/val"] == pytest.approx(loss, rel=1e-5)


def test_same_seed_same_numbers_other_seed_other_numbers(tmp_path):
    runs = []
    for seed in (1, 1, 2):
        trainer, data = make_trainer(
            tmp_path / str(len(runs)), seed=seed, dropout=0.2, max_epochs=3
        )
        trainer.fit(data)
        runs.append([h["loss/train"] for h in trainer.record.history])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_metrics_file_holds_the_required_fields(tmp_path):
    import json

    trainer, data = make_trainer(tmp_path, max_epochs=3)
    trainer.fit(data)
    trainer.test(data)
    summary = trainer.finish()
    written = json.loads((tmp_path / "metrics.json").read_text())
    for key in (
        "best_val_metric",
        "best_epoch",
        "final",
        "test",
        "epochs_run",
        "wall_time_s",
        "status",
        "history",
    ):
        assert key in written
    assert written["status"] == "completed" and written["epochs_run"] == 3
    assert written["final"]["val"]["accuracy"] == summary["history"][-1]["accuracy/val"]
    assert written["test"]["accuracy"] == trainer.record.test["accuracy"]


def test_monitor_must_be_a_metric_of_the_run(tmp_path):
    trainer, data = make_trainer(tmp_path, monitor="r2/val")
    with pytest.raises(UserError, match="accuracy/val"):
        trainer.fit(data)


def test_limits_and_overfit_batches(tmp_path):
    trainer, data = make_trainer(
        tmp_path, limit_train_batches=3, limit_val_batches=0.5, max_epochs=1
    )
    trainer.fit(data)
    assert trainer.state.global_step == 3
    trainer, data = make_trainer(
        tmp_path / "overfit",
        overfit_batches=1,
        batch_size=16,
        lr=0.03,
        hidden=(64, 64),
        max_epochs=150,
    )
    trainer.fit(data)
    assert trainer.record.history[-1]["loss/train"] < 0.05  # a working model memorises one batch
    assert trainer.record.history[-1]["loss/val"] < 0.05  # ... and is validated on that very batch
    assert trainer.state.global_step == 150


def test_fast_dev_run_runs_one_batch_each_and_writes_nothing(tmp_path):
    from trainer.callbacks import ModelCheckpoint, TensorBoardLogger

    run_dir = tmp_path / "run"
    trainer, data = make_trainer(
        run_dir,
        fast_dev_run=True,
        max_epochs=10,
        callbacks={"ckpt": ModelCheckpoint()},
        loggers=[TensorBoardLogger()],
    )
    trainer.fit(data)
    trainer.test(data)
    trainer.finish()
    assert trainer.state.epoch == 1 and trainer.state.global_step == 1
    assert not run_dir.exists()


def test_predict_returns_classes_and_regression_values_in_original_units(tmp_path):
    from trainer.data import DataModule
    from trainer.data.synthetic import linear

    trainer, data = make_trainer(tmp_path, max_epochs=2)
    trainer.fit(data)
    predictions = trainer.predictions.predict(data.arrays["test"][0])
    assert set(np.unique(predictions)) <= {0, 1}
    data = DataModule(linear(n_samples=300))
    trainer, data = make_trainer(tmp_path / "r", data=data, max_epochs=40, lr=0.03)
    trainer.fit(data)
    raw_x = np.array([[0.0], [1.0]], dtype=np.float32)
    y = trainer.predictions.predict(data.feature_scaler.transform(raw_x))[:, 0]
    assert y[0] == pytest.approx(-2.0, abs=0.4) and y[1] - y[0] == pytest.approx(3.0, abs=0.4)


class Raises(Callback):
    def __init__(self, error):
        self.error = error

    def on_train_epoch_start(self, trainer):
        raise self.error


@pytest.mark.parametrize(
    "error, recorded",
    [
        (RuntimeError("boom"), "RuntimeError: boom"),  # a bug: its type is the first clue
        (UserError("data.split must sum to 1.", key="data.split"), "data.split must sum to 1."),
    ],
)
def test_a_failed_fit_records_its_error_in_metrics_json(tmp_path, error, recorded):
    import json

    trainer, data = make_trainer(tmp_path, callbacks={"raises": Raises(error)}, max_epochs=2)
    with pytest.raises(type(error)):
        trainer.fit(data)
    trainer.finish(error)
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert (written["status"], written["error"]) == ("failed", recorded)


def test_probabilities_are_per_row_and_agree_with_predictions(tmp_path):
    trainer, data = make_trainer(tmp_path, max_epochs=2, eval_batch_size=7)
    trainer.fit(data)
    x = data.arrays["test"][0]
    probabilities = trainer.predictions.probabilities(x)
    assert probabilities.shape == (len(x), 2)
    np.testing.assert_allclose(probabilities.sum(1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(probabilities.argmax(1), trainer.predictions.predict(x))
    one_by_one = np.concatenate([trainer.predictions.probabilities(x[i : i + 1]) for i in range(5)])
    np.testing.assert_allclose(one_by_one, probabilities[:5], rtol=1e-5, atol=1e-6)
