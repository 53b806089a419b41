"""last.pt and best.pt on a time budget (callbacks.model_checkpoint.every_n_seconds): when they
are written, on a clock the test drives, and that the budget changes when, never what."""

import types

import pytest
import torch
from helpers import make_trainer

import trainer.callbacks.checkpoint as checkpoint_module
from trainer.callbacks import Callback, ModelCheckpoint
from trainer.checkpoints import load_checkpoint
from trainer.errors import TrainingInterrupted


class Clock(Callback):
    """Every epoch takes `epoch_s` seconds on the clock the checkpoint callback reads."""

    def __init__(self, epoch_s):
        self.now, self.epoch_s = 1000.0, epoch_s

    def on_train_epoch_start(self, run):
        self.now += self.epoch_s


@pytest.fixture
def written(monkeypatch):
    """(file name, epoch) of every checkpoint written, in order."""
    files = []
    real = checkpoint_module.save_checkpoint

    def save(state, path):
        files.append((path.name, state["epoch"]))
        real(state, path)

    monkeypatch.setattr(checkpoint_module, "save_checkpoint", save)
    return files


def _fit(run_dir, monkeypatch, epoch_s, callbacks, **settings):
    clock = Clock(epoch_s)
    monkeypatch.setattr(
        checkpoint_module, "time", types.SimpleNamespace(monotonic=lambda: clock.now)
    )
    trainer, data = make_trainer(run_dir, callbacks={"clock": clock, **callbacks}, **settings)
    return trainer, data


def test_last_pt_is_written_when_waiting_longer_would_leave_more_than_the_budget_unsaved(
    tmp_path, monkeypatch, written
):
    # 1 s epochs, 2.5 s budget: after epoch 2 the next write would come 3 s after the last one
    ckpt = ModelCheckpoint(save_best=False, every_n_seconds=2.5)
    trainer, data = _fit(tmp_path, monkeypatch, 1.0, {"ckpt": ckpt}, max_epochs=7)
    trainer.fit(data)
    assert written == [("last.pt", 2), ("last.pt", 4), ("last.pt", 6), ("last.pt", 7)]
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["epoch"] == 7


def test_epochs_longer_than_the_budget_are_each_written(tmp_path, monkeypatch, written):
    ckpt = ModelCheckpoint(save_best=False, every_n_seconds=2.0)
    trainer, data = _fit(tmp_path, monkeypatch, 3.0, {"ckpt": ckpt}, max_epochs=4)
    trainer.fit(data)
    assert written == [("last.pt", 1), ("last.pt", 2), ("last.pt", 3), ("last.pt", 4)]


def test_zero_seconds_writes_last_pt_after_every_epoch(tmp_path, monkeypatch, written):
    ckpt = ModelCheckpoint(save_best=False, every_n_seconds=0)
    trainer, data = _fit(tmp_path, monkeypatch, 0.001, {"ckpt": ckpt}, max_epochs=3)
    trainer.fit(data)
    assert written == [("last.pt", 1), ("last.pt", 2), ("last.pt", 3)]


def test_the_budget_changes_when_checkpoints_are_written_never_what_they_hold(
    tmp_path, monkeypatch, written
):
    every_epoch, data = _fit(
        tmp_path / "every", monkeypatch, 0.01, {"ckpt": ModelCheckpoint(every_n_seconds=0)}
    )
    every_epoch.fit(data)
    budget, data = _fit(
        tmp_path / "budget", monkeypatch, 0.01, {"ckpt": ModelCheckpoint(every_n_seconds=60)}
    )
    budget.fit(data)
    best_epoch = budget.record.best.epoch
    assert best_epoch == every_epoch.record.best.epoch
    # Within the budget nothing but the final epoch's last.pt (and best.pt once) is written.
    budget_files = written[len(written) - (1 if best_epoch == 5 else 2) :]
    expected = [("last.pt", 5)] if best_epoch == 5 else [("best.pt", best_epoch), ("last.pt", 5)]
    assert budget_files == expected
    for name in ("last.pt", "best.pt"):
        a = torch.load(tmp_path / "every" / "checkpoints" / name, weights_only=True)
        b = torch.load(tmp_path / "budget" / "checkpoints" / name, weights_only=True)
        assert a["epoch"] == b["epoch"]
        for key, value in a["model"].items():
            assert torch.equal(value, b["model"][key]), (name, key)
        for index, moments in a["optimizer"]["state"].items():
            for key, value in moments.items():
                assert torch.equal(value, b["optimizer"]["state"][index][key]), (name, key)
        assert torch.equal(a["rng"][0]["torch"], b["rng"][0]["torch"]), name


class CrashAt(Callback):
    def __init__(self, epoch, error):
        self.epoch, self.error = epoch, error

    def on_train_epoch_start(self, run):
        if run.state.epoch == self.epoch:
            raise self.error


def test_a_crash_writes_the_best_epoch_held_in_memory_as_best_pt_and_last_pt(
    tmp_path, monkeypatch, written
):
    callbacks = {"ckpt": ModelCheckpoint(every_n_seconds=60), "crash": CrashAt(4, KeyError("x"))}
    trainer, data = _fit(tmp_path, monkeypatch, 0.01, callbacks, max_epochs=6)
    with pytest.raises(KeyError):
        trainer.fit(data)
    best = trainer.record.best.epoch  # of the 3 finished epochs
    assert written == [("last.pt", best)]  # best.pt is a hard link of it
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["epoch"] == best
    assert load_checkpoint(tmp_path / "checkpoints" / "best.pt")["epoch"] == best
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["epoch_complete"] is True


def test_a_signal_writes_the_pending_best_pt_and_the_current_state_as_last_pt(
    tmp_path, monkeypatch, written
):
    callbacks = {
        "ckpt": ModelCheckpoint(every_n_seconds=60),
        "stop": CrashAt(4, TrainingInterrupted("SIGTERM")),
    }
    trainer, data = _fit(tmp_path, monkeypatch, 0.01, callbacks, max_epochs=6)
    with pytest.raises(TrainingInterrupted):
        trainer.fit(data)
    best = trainer.record.best.epoch
    assert written == [("best.pt", best), ("last.pt", 4)]
    last = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert (last["epoch"], last["epoch_complete"], last["batches_done"]) == (4, False, 0)


def test_a_negative_budget_is_refused():
    with pytest.raises(ValueError, match="every_n_seconds must be a number >= 0"):
        ModelCheckpoint(every_n_seconds=-1)
