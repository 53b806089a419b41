"""The run's record: how it says a run ended."""

from trainer.record import RunRecord
from trainer.settings import TrainerSettings


def _ended(tmp_path, epochs_run, should_stop):
    record = RunRecord(tmp_path, TrainerSettings(max_epochs=3))
    for epoch in range(1, epochs_run + 1):
        record.add_epoch({"epoch": epoch, "loss/val": 1.0 / epoch}, epoch * 10)
    if should_stop:
        record.request_stop(f"stopped at epoch {epochs_run}: no improvement")
    record.stopped()
    return record.status, record.stop_reason


def test_stopped_early_only_when_it_stopped_before_max_epochs(tmp_path):
    assert _ended(tmp_path, 2, True) == ("stopped_early", "stopped at epoch 2: no improvement")
    assert _ended(tmp_path, 3, True) == (
        "completed",
        "reached trainer.max_epochs=3 (early stopping would have stopped there too)",
    )
    assert _ended(tmp_path, 3, False) == ("completed", "reached trainer.max_epochs=3")
