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


def test_a_checkpoints_progress_is_the_json_of_the_record_as_it_is_now(tmp_path):
    import json

    record = RunRecord(tmp_path, TrainerSettings(max_epochs=5))
    record.wall_time = lambda: 1.5  # (the clock goes on between two reads)
    assert record.progress_json() == json.dumps(record.progress())  # no epoch yet
    for epoch in range(1, 4):
        logs = {"epoch": epoch, "loss/val": 1.0 / epoch, "grad_norm": float("nan")}
        record.add_epoch(logs, epoch * 10)
        record.progress_json()
        logs["lr"] = 0.1 * epoch  # a callback adds to the newest epoch after a snapshot
        assert record.progress_json() == json.dumps(record.progress())
    again = RunRecord(tmp_path, TrainerSettings(max_epochs=5))
    again.wall_time = lambda: 2.5
    again.add_epoch({"epoch": 1, "loss/val": 9.0}, 1)
    again.progress_json()
    again.load_progress(json.loads(record.progress_json()))  # a resume: its own history
    assert again.progress_json() == json.dumps(again.progress())
    assert json.loads(again.progress_json())["history"][2]["lr"] == 0.1 * 3
