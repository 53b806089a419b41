"""What a person finds in TensorBoard, read back with TensorBoard's own event reader."""

import functools

import pytest
import torch
from google.protobuf import struct_pb2
from helpers import make_trainer
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from trainer.callbacks import Callback, LearningRateMonitor, ModelCheckpoint, TensorBoardLogger
from trainer.data import DataModule
from trainer.data.synthetic import linear
from trainer.errors import NonFiniteError


def _events(run_dir):
    events = EventAccumulator(
        str(run_dir),
        size_guidance={"scalars": 0, "images": 0, "tensors": 0, "histograms": 0},
    )
    events.Reload()
    return events


def _run(run_dir, logger=None, **settings):
    settings.setdefault(
        "callbacks", {"lr_monitor": LearningRateMonitor(), "ckpt": ModelCheckpoint()}
    )
    trainer, data = make_trainer(
        run_dir, loggers={"tensorboard": logger or TensorBoardLogger()}, **settings
    )
    trainer.config.hparams = {"dataset": "moons", "optimizer.lr": 0.01, "trainer.batch_size": 32}
    trainer.config.varied = {"optimizer.lr"}
    trainer.fit(data)
    trainer.test(data)
    trainer.finish()
    return trainer, _events(run_dir)


def test_epoch_scalars_test_metrics_and_learning_rate_per_group(tmp_path):
    optimizer = functools.partial(torch.optim.AdamW, lr=0.01, weight_decay=0.1)
    trainer, events = _run(tmp_path, max_epochs=4, optimizer=optimizer, decay_bias_and_norm=False)
    for tag in (
        "loss/train",
        "loss/val",
        "accuracy/train",
        "accuracy/val",
        "grad_norm",
        "time/epoch_s",
        "throughput/samples_per_s",
        "lr",
        "lr/default",
        "lr/no_decay",
    ):
        assert [e.step for e in events.Scalars(tag)] == [1, 2, 3, 4], tag  # x axis: the epoch
    for tag in ("loss/test", "accuracy/test", "best/loss/val", "best/epoch"):
        assert len(events.Scalars(tag)) == 1
    assert events.Scalars("accuracy/test")[0].value == pytest.approx(
        trainer.record.test["accuracy"]
    )
    assert events.Scalars("loss/val")[-1].value == pytest.approx(
        trainer.record.history[-1]["loss/val"]
    )


def test_per_step_loss_uses_the_optimizer_step_as_x_axis(tmp_path):
    trainer, events = _run(
        tmp_path, TensorBoardLogger(log_every_n_steps=5, grad_norm_every_n_steps=5), max_epochs=2
    )
    steps = [e.step for e in events.Scalars("loss/train_step")]
    assert steps == list(range(5, trainer.state.global_step + 1, 5))
    assert [e.step for e in events.Scalars("grad_norm_step")] == steps


def test_hparams_in_the_runs_own_file_with_final_metrics(tmp_path):
    _trainer, events = _run(tmp_path, max_epochs=3)
    content = events.PluginTagToContent("hparams")
    # no experiment summary: TensorBoard would take one run's columns for every run it lists
    assert set(content) == {"_hparams_/session_start_info", "_hparams_/session_end_info"}
    start = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/session_start_info"]
    ).session_start_info
    # without Hydra's files: what `varied` names; the constant settings stay out of the table
    assert dict(start.hparams) == {"optimizer.lr": struct_pb2.Value(number_value=0.01)}
    for tag in ("best/loss/val", "best/epoch", "loss/test", "accuracy/test"):  # the metrics
        assert [e.step for e in events.Scalars(tag)] == [3], tag
    assert "hp_metric" not in events.Tags()["scalars"]
    files = list(tmp_path.rglob("events.out.tfevents*"))
    assert {f.parent for f in files} == {tmp_path}  # one run, named as its directory


def test_figures_and_text(tmp_path):
    _trainer, events = _run(tmp_path, TensorBoardLogger(figure_every_n_epochs=2), max_epochs=4)
    images = events.Tags()["images"]
    assert set(images) == {  # (no lr_schedule: the rate never changed)
        "figures/decision_boundary",
        "figures/confusion_matrix_val",
        "figures/curves",
    }
    (curves,) = events.Images("figures/curves")  # once, at the end
    assert (curves.step, curves.width, curves.height) == (4, 540, 290)
    assert [e.step for e in events.Images("figures/decision_boundary")] == [
        2,
        4,
        4,
    ]  # every 2 epochs and the end
    image = events.Images("figures/decision_boundary")[-1]
    assert (image.width, image.height) == (540, 290)  # landscape, for TensorBoard's box
    texts = {tag.split("/")[0] for tag in events.Tags()["tensors"]}
    assert texts == {"config", "model", "summary", "health"}
    for name in (
        "decision_boundary.png",
        "confusion_matrix_val.png",
        "curves.png",
    ):
        assert (tmp_path / "figures" / name).stat().st_size > 5000
    assert not (tmp_path / "figures" / "lr_schedule.png").exists()


def test_regression_runs_get_predicted_vs_true(tmp_path):
    data = DataModule(linear(n_samples=300))
    _, events = _run(tmp_path, data=data, max_epochs=3)
    assert "figures/predicted_vs_true_val" in events.Tags()["images"]
    assert "figures/decision_boundary" not in events.Tags()["images"]
    assert [e.step for e in events.Scalars("r2/val")] == [1, 2, 3]


def test_histograms_when_asked(tmp_path):
    _, events = _run(tmp_path, TensorBoardLogger(histograms=True, figures=False), max_epochs=2)
    histograms = events.Tags()["histograms"]
    assert "weights/layers.1.weight" in histograms and "gradients/layers.1.weight" in histograms


def test_writers_are_flushed_and_closed_when_the_run_fails(tmp_path):
    data = DataModule(linear(n_samples=400))
    trainer, _ = make_trainer(
        tmp_path,
        data=data,
        max_epochs=50,
        check_finite_every_n_steps=1000,
        optimizer=functools.partial(torch.optim.SGD, lr=0.5, foreach=True),
        loggers={"tensorboard": TensorBoardLogger(figures=False)},
    )
    trainer.loss_fn = torch.nn.MSELoss()

    class Explode(torch.nn.Module):  # a finite first epoch, then NaN
        def forward(self, out, y):
            loss = torch.nn.functional.mse_loss(out, y)
            return loss * float("nan") if trainer.state.epoch >= 2 else loss

    trainer.loss_fn = Explode()
    with pytest.raises(NonFiniteError) as info:
        trainer.fit(data)
    trainer.finish(error=info.value)
    events = _events(tmp_path)
    assert [e.step for e in events.Scalars("loss/train")] == [1]
    assert "summary/text_summary" in events.Tags()["tensors"]
    assert trainer.callbacks["tensorboard"].writer.file_writer is None  # closed, all flushed


def test_a_resume_drops_the_events_written_after_its_checkpoint(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    from trainer.callbacks.event_files import drop_events_after

    with SummaryWriter(str(tmp_path)) as writer:
        writer.add_text("config", "kept", 0)
        for epoch in range(1, 6):
            writer.add_scalar("loss/val", 1.0 / epoch, epoch)
        for step in range(1, 51):
            writer.add_scalar("loss/train_step", 1.0 / step, step)
            writer.add_scalar("lr_step/head", 0.1, step)
    drop_events_after(tmp_path, epoch=3, global_step=30)
    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    events.Reload()
    assert [e.step for e in events.Scalars("loss/val")] == [1, 2, 3]
    assert [e.step for e in events.Scalars("loss/train_step")] == list(range(1, 31))
    assert [e.step for e in events.Scalars("lr_step/head")] == list(range(1, 31))
    assert events.Tags()["tensors"] == ["config/text_summary"]


def test_per_step_rates_are_the_rates_each_step_trained_with(tmp_path):
    from trainer.callbacks import Callback

    class UsedRates(Callback):
        def __init__(self):
            self.rates = []

        def on_before_optimizer_step(self, run):
            self.rates.append(run.state.optimizer.param_groups[0]["lr"])

    used = UsedRates()
    cyclic = functools.partial(
        torch.optim.lr_scheduler.CyclicLR, base_lr=0.001, max_lr=0.01, step_size_up=4
    )
    trainer, events = _run(
        tmp_path,
        callbacks={"lr_monitor": LearningRateMonitor(logging_interval="step"), "used": used},
        optimizer=functools.partial(torch.optim.SGD, lr=0.001, momentum=0.9),
        scheduler=cyclic,
        max_epochs=2,
    )
    logged = [(e.step, e.value) for e in events.Scalars("lr_step")]
    assert [step for step, _ in logged] == list(range(1, trainer.state.global_step + 1))
    assert [value for _, value in logged] == pytest.approx(used.rates, rel=1e-6)
    assert used.rates[:3] == pytest.approx([0.001, 0.00325, 0.0055])  # step 1 at the base rate
    recorded = trainer.callbacks["tensorboard"]._rate_history.rates()[1][
        "default"
    ]  # the schedule figure
    assert recorded == pytest.approx(used.rates, rel=1e-12)


def test_rates_of_a_per_epoch_schedule_are_read_once_an_epoch_with_no_per_step_hook(tmp_path):
    from trainer.callbacks.base import per_batch_hooks

    halving = functools.partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5)
    trainer, _ = _run(
        tmp_path,
        optimizer=functools.partial(torch.optim.SGD, lr=0.1),
        scheduler=halving,
        max_epochs=3,
    )
    logger = trainer.callbacks["tensorboard"]
    assert logger.batch_hooks == ()
    assert all(logger not in hooked for hooked in per_batch_hooks(trainer.callbacks).values())
    n = trainer.state.steps_per_epoch
    steps, rates = (
        logger._rate_history.rates()
    )  # the schedule figure: each epoch's first and last step
    assert steps == [1, n, n + 1, 2 * n, 2 * n + 1, 3 * n]
    assert rates == {"default": [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]}
    assert (tmp_path / "figures" / "lr_schedule.png").stat().st_size > 5000  # (it changed)


def test_a_resumed_run_from_before_the_move_keeps_its_events_in_one_place(tmp_path):
    """Runs written before events moved into the run directory kept them in tensorboard/:
    resuming one continues there, so TensorBoard still lists it once."""
    _run(tmp_path, TensorBoardLogger(subdir="tensorboard", figures=False), max_epochs=2)
    trainer, data = make_trainer(
        tmp_path,
        loggers={"tensorboard": TensorBoardLogger(figures=False)},
        callbacks={"ckpt": ModelCheckpoint()},
        resume=str(tmp_path),
        max_epochs=3,
    )
    trainer.fit(data)
    trainer.finish()
    folders = {p.parent for p in tmp_path.rglob("events.out.tfevents*")}
    assert folders == {tmp_path / "tensorboard"}
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    # every epoch once (two event files whose names may sort either way within one second)
    assert sorted(e.step for e in events.Scalars("loss/val")) == [1, 2, 3]


class _EventsOnDiskAtEachCheckpoint(Callback):
    """After each epoch's checkpoint is queued (runs last): waits for the writer, then reads
    which epochs' `loss/val` events are on disk, and which epoch last.pt holds."""

    runs_last = True

    def __init__(self) -> None:
        self.seen: list[tuple[int, list[int]]] = []

    def on_epoch_end(self, run, logs) -> None:
        run.files.wait()
        saved = torch.load(run.run_dir / "checkpoints" / "last.pt", weights_only=True)["epoch"]
        steps = [s.step for s in _events(run.run_dir).Scalars("loss/val")]
        self.seen.append((saved, steps))


def test_events_are_written_on_a_time_budget_but_never_after_the_checkpoint_that_holds_them(
    tmp_path,
):
    probe = _EventsOnDiskAtEachCheckpoint()
    callbacks = {"ckpt": ModelCheckpoint(every_n_seconds=0), "probe": probe}
    _run(
        tmp_path,
        TensorBoardLogger(write_every_s=3600, figures=False),
        callbacks=callbacks,
        max_epochs=4,
    )
    assert probe.seen == [(e, list(range(1, e + 1))) for e in range(1, 5)]
    # without a checkpoint the hour-long budget holds them back until the end of the run
    quiet = _EventsOnDiskAtEachCheckpoint()
    quiet_dir = tmp_path / "no_checkpoints"
    quiet_dir.mkdir()
    _, events = _run(
        quiet_dir,
        TensorBoardLogger(write_every_s=3600, figures=False),
        callbacks={"probe": _NoCheckpointProbe(quiet)},
        max_epochs=3,
    )
    assert quiet.seen == [[1], [1], [1]]  # the first epoch goes at once, the rest wait
    assert [s.step for s in events.Scalars("loss/val")] == [1, 2, 3]


class _NoCheckpointProbe(Callback):
    runs_last = True

    def __init__(self, into: _EventsOnDiskAtEachCheckpoint) -> None:
        self.into = into

    def on_epoch_end(self, run, logs) -> None:
        run.files.wait()
        self.into.seen.append([s.step for s in _events(run.run_dir).Scalars("loss/val")])
