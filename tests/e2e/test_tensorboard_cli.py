"""What `tensorboard --logdir outputs` shows of a real run: its name, its HParams columns, its
figures (read back with TensorBoard's own event reader), and curves.png beside the others."""

from helpers import metrics_of, run_cli
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2


def test_a_run_is_named_as_its_directory_shows_its_overrides_and_its_curves(tmp_path):
    run_dir = tmp_path / "outputs" / "runs" / "2026-01-01" / "12-00-00"
    result = run_cli(
        [
            "optimizer.lr=0.05",
            "trainer.max_epochs=40",
            "callbacks.early_stopping.patience=1",
            "callbacks.early_stopping.min_delta=0.05",
        ],
        tmp_path,
        run_dir=run_dir,
        check=True,
    )
    metrics = metrics_of(run_dir)
    assert metrics["status"] == "stopped_early"
    # The run TensorBoard lists: the event file's folder relative to --logdir
    logdir = tmp_path / "outputs"
    names = {p.parent.relative_to(logdir).as_posix() for p in logdir.rglob("events.out.tfevents*")}
    assert names == {"runs/2026-01-01/12-00-00"}
    events = EventAccumulator(str(run_dir), size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    start = plugin_data_pb2.HParamsPluginData.FromString(
        events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    ).session_start_info
    assert sorted(start.hparams) == [  # what the command line set, nothing constant
        "callbacks.early_stopping.min_delta",
        "callbacks.early_stopping.patience",
        "optimizer.lr",
        "trainer.max_epochs",
    ]
    assert set(events.Tags()["images"]) == {  # (no lr_schedule: a constant rate)
        "figures/decision_boundary",
        "figures/confusion_matrix_val",
        "figures/curves",
    }
    (curves,) = events.Images("figures/curves")
    assert (curves.step, curves.width, curves.height) == (metrics["epochs_run"], 540, 290)
    assert Image.open(run_dir / "figures" / "curves.png").size == (540, 290)
    assert f"tensorboard --logdir {run_dir}" in result.stdout
