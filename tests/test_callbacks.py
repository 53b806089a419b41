"""Early stopping, checkpoints and user callbacks."""

import math
from types import SimpleNamespace

import pytest
import torch
from helpers import make_trainer, moons_data

from trainer.best import BestEpoch
from trainer.callbacks import Callback, EarlyStopping, ModelCheckpoint
from trainer.checkpoints import load_checkpoint
from trainer.errors import UserError


def _feed(callback, values, monitor="loss/val"):
    """Epochs with these monitored values, through a stand-in of the run a callback is given."""
    best = BestEpoch(monitor)
    run = SimpleNamespace(
        state=SimpleNamespace(epoch=0, model=torch.nn.Linear(1, 1)),
        record=SimpleNamespace(best=best),
        stopped=None,
    )
    run.request_stop = lambda reason: setattr(run, "stopped", reason)
    for value in values:
        run.state.epoch += 1
        logs = {"epoch": run.state.epoch, monitor: value}
        best.update(run.state.epoch, logs)
        callback.on_epoch_end(run, logs)
        if run.stopped:
            break
    return run


def test_patience_counts_epochs_without_improvement_beyond_min_delta():
    stopper = EarlyStopping(patience=3, min_delta=0.01)
    run = _feed(stopper, [1.0, 0.9, 0.895, 0.893, 0.891, 0.5])
    assert run.state.epoch == 5 and stopper.reference == 0.9 and stopper.wait == 3
    assert run.record.best.epoch == 5  # the best epoch is the best value, min_delta or not
    assert stopper.best_weights_epoch == 5
    assert run.stopped == (
        "stopped at epoch 5: no improvement in loss/val for 3 epochs (patience 3, min_delta 0.01)"
    )


def test_stops_on_non_finite_metric_and_thresholds():
    assert _feed(EarlyStopping(patience=10), [1.0, math.nan]).stopped == (
        "stopped at epoch 2: loss/val is nan (not finite)"
    )
    reached = _feed(EarlyStopping(stopping_threshold=0.2), [1.0, 0.5, 0.19, 0.1])
    assert reached.state.epoch == 3 and "stopping threshold 0.2 (0.19)" in reached.stopped
    diverged = _feed(EarlyStopping(divergence_threshold=5.0), [1.0, 2.0, 6.0, 1.0])
    assert diverged.state.epoch == 3 and "crossed the divergence threshold 5.0" in diverged.stopped
    up = _feed(EarlyStopping(patience=1), [0.5, 0.7, 0.6, 0.65], monitor="accuracy/val")
    assert up.state.epoch == 3 and up.record.best.epoch == 2  # accuracy: larger is better


def test_a_callback_monitor_other_than_the_runs_is_refused(tmp_path):
    trainer, data = make_trainer(
        tmp_path, callbacks={"early_stopping": EarlyStopping(monitor="accuracy/val")}
    )
    with pytest.raises(UserError, match=r"callbacks.early_stopping.monitor='accuracy/val' differs"):
        trainer.fit(data)


def test_early_stopping_restores_the_best_epochs_weights(tmp_path):
    stopper, checkpoint = EarlyStopping(patience=3), ModelCheckpoint()
    trainer, data = make_trainer(
        tmp_path,
        data=moons_data(120),
        hidden=(128, 128),
        lr=0.05,
        max_epochs=60,
        callbacks={"early_stopping": stopper, "model_checkpoint": checkpoint},
    )
    trainer.fit(data)
    assert trainer.record.status == "stopped_early" and trainer.state.epoch < 60
    best_epoch = trainer.record.best.epoch
    assert stopper.best_weights_epoch == checkpoint.best_epoch == best_epoch
    assert trainer.record.stop_reason.endswith(f"; restored epoch {best_epoch}")
    best = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    assert best["epoch"] == best_epoch
    for name, value in trainer.state.model.state_dict().items():
        assert torch.equal(value, best["model"][name])
    last = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert last["epoch"] == trainer.state.epoch and last["callbacks"]["early_stopping"]["wait"] == 3


def test_test_split_uses_the_best_checkpoint_without_restore(tmp_path):
    checkpoint = ModelCheckpoint()
    trainer, data = make_trainer(
        tmp_path,
        data=moons_data(120),
        hidden=(128, 128),
        lr=0.05,
        max_epochs=25,
        callbacks={"model_checkpoint": checkpoint},
    )
    trainer.fit(data)
    trainer.test(data)
    assert trainer.record.tested_on == f"checkpoints/best.pt, epoch {checkpoint.best_epoch}"


def test_top_k_keeps_the_k_best_epochs(tmp_path):
    checkpoint = ModelCheckpoint(save_top_k=2)
    trainer, data = make_trainer(tmp_path, max_epochs=6, callbacks={"ckpt": checkpoint})
    trainer.fit(data)
    trainer.finish()
    kept = sorted(p.name for p in (tmp_path / "checkpoints").glob("epoch=*.pt"))
    best_two = sorted(trainer.record.history, key=lambda h: h["loss/val"])[:2]
    assert kept == sorted(
        f"epoch={h['epoch']:03d}-loss_val={h['loss/val']:.4f}.pt" for h in best_two
    )


class CountingCallback(Callback):
    """A user callback with state: the state travels in checkpoints."""

    def __init__(self):
        self.batches = 0

    def on_train_batch_end(self, trainer, batch_idx, loss):
        self.batches += 1

    def state_dict(self):
        return {"batches": self.batches}

    def load_state_dict(self, state):
        self.batches = state["batches"]


def test_user_callback_state_is_saved_and_restored(tmp_path):
    counter = CountingCallback()
    trainer, data = make_trainer(
        tmp_path, max_epochs=2, callbacks={"counter": counter, "ckpt": ModelCheckpoint()}
    )
    trainer.fit(data)
    trainer.finish()
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["callbacks"]["counter"] == {
        "batches": counter.batches
    }
    again = CountingCallback()
    trainer, data = make_trainer(
        tmp_path,
        max_epochs=3,
        resume=str(tmp_path),
        callbacks={"counter": again, "ckpt": ModelCheckpoint()},
    )
    trainer.fit(data)
    assert again.batches == counter.batches * 3 // 2


def test_unknown_monitor_in_early_stopping_is_a_user_error(tmp_path):

    trainer, data = make_trainer(tmp_path, callbacks={"es": EarlyStopping(monitor="acc/val")})
    with pytest.raises(UserError, match="callbacks.early_stopping.monitor"):
        trainer.fit(data)


def test_every_n_epochs_still_saves_the_final_state(tmp_path):
    trainer, data = make_trainer(
        tmp_path, max_epochs=5, callbacks={"ckpt": ModelCheckpoint(every_n_epochs=2)}
    )
    trainer.fit(data)
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["epoch"] == 5


class _BatchCounter(Callback):
    """Counts its per-batch calls; `batch_hooks` (when given) names the ones it wants."""

    def __init__(self, batch_hooks=None) -> None:
        if batch_hooks is not None:
            self.batch_hooks = batch_hooks
        self.calls = {"on_train_batch_end": 0, "on_before_optimizer_step": 0}

    def on_before_optimizer_step(self, run) -> None:
        self.calls["on_before_optimizer_step"] += 1

    def on_train_batch_end(self, run, batch_idx, loss) -> None:
        self.calls["on_train_batch_end"] += 1


def test_per_batch_hooks_are_called_only_where_a_callback_has_work(tmp_path):
    from trainer.callbacks import LearningRateMonitor, ProgressBar

    every = _BatchCounter()
    one = _BatchCounter(batch_hooks=("on_train_batch_end",))
    none = _BatchCounter(batch_hooks=())
    callbacks = {"every": every, "one": one, "none": none, "progress": ProgressBar()}
    callbacks |= {"lr_epoch": LearningRateMonitor(), "lr_step": LearningRateMonitor("step")}
    trainer, data = make_trainer(tmp_path, callbacks=callbacks, max_epochs=2, batch_size=64)
    trainer.fit(data)
    steps = trainer.state.global_step
    assert steps == 2 * len(trainer.train_batches)
    assert every.calls == {"on_train_batch_end": steps, "on_before_optimizer_step": steps}
    assert one.calls == {"on_train_batch_end": steps, "on_before_optimizer_step": 0}
    assert none.calls == {"on_train_batch_end": 0, "on_before_optimizer_step": 0}
    called = {hook: [type(cb).__name__ for cb in cbs] for hook, cbs in trainer._per_batch.items()}
    # the progress bar has no terminal here (lines per epoch); lr at the epoch interval: no work
    assert called["on_train_batch_end"] == ["_BatchCounter", "_BatchCounter", "LearningRateMonitor"]
    assert called["on_before_optimizer_step"] == ["_BatchCounter", "LearningRateMonitor"]
    assert trainer._per_batch["on_train_batch_end"][2] is callbacks["lr_step"]
