"""Checkpoint files: atomic, plain, and never executing code when loaded."""

import os
import pickle

import pytest
import torch
from helpers import make_trainer

from trainer.callbacks import ModelCheckpoint
from trainer.checkpoints import load_checkpoint, save_checkpoint
from trainer.context import RunConfig
from trainer.errors import UserError
from trainer.files import BackgroundWriter, atomic_write


def test_a_failure_during_a_write_leaves_the_previous_file_intact(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint({"format": 1, "model": {"w": torch.ones(3)}}, path)

    def crash_halfway(handle):
        handle.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(path, crash_halfway)
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


def test_background_writer_reports_failures_to_the_training_thread(tmp_path):
    writer = BackgroundWriter()
    writer.submit(lambda: (_ for _ in ()).throw(OSError("no space left")))
    with pytest.raises(OSError, match="no space left"):
        writer.wait()


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_a_tampered_checkpoint_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    exploit = _Exploit()
    exploit.target = marker
    path = tmp_path / "evil.pt"
    torch.save({"format": 1, "model": {}, "payload": exploit}, path)
    with pytest.raises(UserError, match="refused to load"):
        load_checkpoint(path)
    assert not marker.exists()
    with open(tmp_path / "raw.pt", "wb") as handle:  # a bare pickle, not even a torch zip
        pickle.dump(exploit, handle)
    with pytest.raises(UserError):
        load_checkpoint(tmp_path / "raw.pt")
    assert not marker.exists()


def test_truncated_and_foreign_files_get_clear_errors(tmp_path):
    good = tmp_path / "good.pt"
    save_checkpoint({"format": 1, "model": {"w": torch.ones(1000)}}, good)
    (tmp_path / "cut.pt").write_bytes(good.read_bytes()[:200])
    with pytest.raises(UserError, match="truncated or corrupt"):
        load_checkpoint(tmp_path / "cut.pt")
    torch.save({"weights": torch.ones(2)}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="not a checkpoint written by trainer"):
        load_checkpoint(tmp_path / "other.pt")


def test_checkpoints_hold_plain_containers_and_load_with_weights_only(tmp_path):
    trainer, data = make_trainer(tmp_path, max_epochs=2, callbacks={"ckpt": ModelCheckpoint()})
    config = {"optimizer": {"lr": 0.01}, "model": {"hidden_sizes": [16, 16]}}
    trainer.config = RunConfig(resolved=config)
    trainer.fit(data)
    raw = torch.load(
        tmp_path / "checkpoints" / "last.pt", weights_only=True
    )  # plain data: no code runs
    assert raw["config"] == config
    for name, value in trainer.state.model.state_dict().items():
        assert torch.equal(raw["model"][name], value)  # the weights are readable as they are
    for key, value in trainer.state.optimizer.state_dict()["state"][0].items():
        assert torch.equal(raw["optimizer"]["state"][0][key], value)  # plain torch.save layout
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert state["progress"]["history"] == trainer.record.history  # JSON text in the file
    assert state["data"]["feature_scaler"]["mean"] == data.feature_scaler.mean.tolist()
    assert set(state["rng"][0]) >= {"python", "numpy", "torch"}
    for key, value in trainer.state.optimizer.state_dict()["state"][0].items():
        assert torch.equal(state["optimizer"]["state"][0][key], value)
    assert (
        state["epoch"] == 2
        and state["epoch_complete"]
        and state["global_step"] == trainer.state.global_step
    )
