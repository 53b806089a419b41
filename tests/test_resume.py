"""Resume after an interruption ends bitwise equal to the uninterrupted run (CPU)."""

import functools

import pytest
import torch
from helpers import moons_data

from trainer.callbacks import Callback, EarlyStopping, ModelCheckpoint
from trainer.errors import TrainingInterrupted


class InterruptAt(Callback):
    """Acts like SIGTERM arriving at the end of an epoch, or after a given batch."""

    def __init__(self, epoch, batch=None):
        self.epoch, self.batch = epoch, batch
        self.signals = None  # the Trainer's signal trap, set by _fit

    def on_train_batch_end(self, run, batch_idx, loss):
        if run.state.epoch == self.epoch and batch_idx == self.batch:
            self.signals.received = "SIGTERM"

    def on_epoch_end(self, run, logs):
        if self.batch is None and run.state.epoch == self.epoch:
            self.signals.received = "SIGTERM"


def _fit(run_dir, interrupt=None, resume=None, accumulate=1):
    callbacks = {"early_stopping": EarlyStopping(patience=4), "model_checkpoint": ModelCheckpoint()}
    if interrupt is not None:
        callbacks["interrupt"] = interrupt
    from trainer import Trainer, seed_everything
    from trainer.losses import auto
    from trainer.models import MLP

    seed_everything(0)
    data = moons_data(300)
    trainer = Trainer(
        MLP((2,), 1, hidden_sizes=[16, 16], dropout=0.2),
        auto("binary"),
        functools.partial(torch.optim.AdamW, lr=0.05),
        functools.partial(torch.optim.lr_scheduler.ReduceLROnPlateau, patience=1, factor=0.5),
        callbacks=callbacks,
        max_epochs=14,
        batch_size=16,
        run_dir=run_dir,
        resume=resume,
        accumulate_grad_batches=accumulate,
    )
    if interrupt is not None:
        interrupt.signals = trainer._signals
    try:
        trainer.fit(data)
    except TrainingInterrupted as error:
        trainer.finish(error=error)
    return trainer


@pytest.mark.parametrize(
    "where,accumulate", [((3, None), 1), ((7, None), 1), ((5, 7), 1), ((4, 3), 2)]
)
def test_interrupt_and_resume_equals_the_uninterrupted_run(tmp_path, where, accumulate):
    reference = _fit(tmp_path / "reference", accumulate=accumulate)
    run = tmp_path / "interrupted"
    first = _fit(run, interrupt=InterruptAt(*where), accumulate=accumulate)
    assert first.record.status == "interrupted"
    if where[1] is None:  # cut at an epoch's end, with early stopping and the plateau mid-patience
        assert first.callbacks["early_stopping"].wait == 1
        assert first.state.schedule.scheduler.num_bad_epochs == 1
    resumed = _fit(run, resume=str(run), accumulate=accumulate)
    assert (
        resumed.state.epoch == reference.state.epoch
        and resumed.state.global_step == reference.state.global_step
    )
    assert resumed.record.status == reference.record.status
    for name, value in reference.state.model.state_dict().items():
        assert torch.equal(value, resumed.state.model.state_dict()[name]), name
    assert [h["loss/val"] for h in resumed.record.history] == [
        h["loss/val"] for h in reference.record.history
    ]
    assert (
        resumed.state.optimizer.param_groups[0]["lr"]
        == reference.state.optimizer.param_groups[0]["lr"]
    )


def test_sigint_finishes_the_step_saves_last_pt_and_marks_the_run_interrupted(tmp_path):
    import json
    import signal

    class CtrlC(Callback):
        def on_train_batch_end(self, trainer, batch_idx, loss):
            if trainer.state.epoch == 2 and batch_idx == 3:
                signal.raise_signal(signal.SIGINT)

    trainer = _fit(tmp_path, interrupt=CtrlC())
    assert trainer.record.status == "interrupted" and "SIGINT" in trainer.record.stop_reason
    state = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert (state["epoch"], state["batches_done"], state["epoch_complete"]) == (2, 4, False)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "interrupted"
    # metrics.json counts the steps last.pt holds, the interrupted epoch's four included
    assert metrics["global_step"] == state["global_step"] == trainer.state.steps_per_epoch + 4
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored


def test_resume_auto_continues_the_run_directorys_own_checkpoint(tmp_path):
    from helpers import metrics_of, run_cli

    first = run_cli(["trainer.max_epochs=2", "logger=none", "trainer.resume=auto"], tmp_path)
    assert (
        first.returncode == 0 and metrics_of(first.dir)["resumed_from"] is None
    )  # nothing to resume yet
    again = run_cli(["trainer.max_epochs=4", "logger=none", "trainer.resume=auto"], tmp_path)
    assert again.returncode == 0, again.stderr
    metrics = metrics_of(again.dir)
    assert metrics["resumed_from"].endswith("last.pt") and metrics["epochs_run"] == 4
