"""The pitfall lab through the real CLI: a sweep with and without a mistake side by side, what a
user reads of it (panels, metrics.json, TensorBoard, curves.png, the health report), a wrong
name, and a pitfall run resumed and evaluated (its config passes the trust allowlist)."""

import json

import pytest
from helpers import metrics_of, run_cli, unsaid
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

pytestmark = pytest.mark.e2e

SMALL = ["dataset.n_samples=300", "trainer.max_epochs=3"]
JOBS = ("0_+pitfall=none", "1_+pitfall=forget_zero_grad")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pitfall_sweep")
    result = run_cli(["+pitfall=none,forget_zero_grad", *SMALL], tmp, multirun=True, check=True)
    return result, tmp / "sweep"


def test_a_sweep_runs_the_loop_with_and_without_the_mistake(sweep):
    _, sweep_dir = sweep
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == list(JOBS)
    right, wrong = (metrics_of(sweep_dir / job) for job in JOBS)
    assert "pitfall" not in right
    assert wrong["pitfall"]["name"] == "forget_zero_grad"
    assert wrong["pitfall"]["what"] == (
        "optimizer.zero_grad() is never called, so each step's gradient is the sum of the "
        "gradients of every batch so far"
    )
    ratios = [h["pitfall/grad_carried_over"] for h in wrong["history"]]
    assert wrong["pitfall"]["grad_carried_over_last_epoch"] == ratios[-1]
    assert all("pitfall/grad_carried_over" not in h for h in right["history"])
    assert (wrong["health_verdict"], wrong["health"][0]["kind"]) == ("pitfall", "pitfall")
    assert right["health"][0]["kind"] != "pitfall"
    assert (
        wrong["health"][0]["advice"]
        == "python -m trainer dataset.n_samples=300 trainer.max_epochs=3"
    )


def test_the_panels_mark_the_run_as_a_demonstration(sweep):
    result, _ = sweep
    assert not unsaid(
        result,
        "pitfall lab  forget_zero_grad — this run repeats a classic mistake on purpose: "
        "optimizer.zero_grad() is never called",
        "pitfall lab  forget_zero_grad — a demonstration: this run repeated a classic mistake on "
        "purpose",
        "health report: pitfall",
    )
    assert result.stdout.count("pitfall lab  forget_zero_grad") == 2  # start and end panels
    assert result.stdout.count("pitfall lab  none") == 0


def test_tensorboard_has_the_pitfall_column_and_text(sweep):
    _, sweep_dir = sweep
    for job, name in zip(JOBS, ("none", "forget_zero_grad")):
        events = EventAccumulator(str(sweep_dir / job), size_guidance={"tensors": 0})
        events.Reload()
        start = plugin_data_pb2.HParamsPluginData.FromString(
            events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
        ).session_start_info
        assert start.hparams["pitfall"].string_value == name
        texts = events.Tags()["tensors"]
        assert ("pitfall/text_summary" in texts) == (name != "none")
        if name == "none":
            continue
        text = events.Tensors("pitfall/text_summary")[0].tensor_proto.string_val[0].decode()
        assert text.startswith(
            "**a demonstration of a classic mistake**\n\n- name: forget_zero_grad"
        )
        scalars = events.Scalars("pitfall/grad_carried_over")
        assert [s.step for s in scalars] == [1, 2, 3]
    assert (sweep_dir / JOBS[1] / "figures" / "curves.png").stat().st_size > 0


def test_a_wrong_pitfall_name_names_the_valid_ones(tmp_path):
    result = run_cli(["+pitfall=forget_zerograd"], tmp_path)
    assert result.returncode == 2
    assert not unsaid(
        result,
        "Could not find 'pitfall/forget_zerograd'",
        "forget_eval_mode",
        "lr_far_too_high",
        "test_set_peeking",
        "Did you mean 'forget_zero_grad'?",
    )
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_pitfall_outside_training_is_refused(tmp_path):
    result = run_cli(["mode=lr_find", "+pitfall=no_shuffle"], tmp_path)
    assert result.returncode == 2
    assert not unsaid(
        result,
        "+pitfall=no_shuffle repeats a mistake inside a training run; mode=lr_find does not "
        "train, so it cannot show it. Drop +pitfall, or use mode=train.",
    )
    assert not (tmp_path / "run").exists()


def test_a_pitfall_run_resumes_exactly_and_its_checkpoint_evaluates(sweep, tmp_path):
    """forget_zero_grad's summed gradients travel in the checkpoint: 2 epochs, then a resume to
    3, give the numbers of the sweep's uninterrupted 3-epoch job."""
    _, sweep_dir = sweep
    first = run_cli(
        ["+pitfall=forget_zero_grad", "dataset.n_samples=300", "trainer.max_epochs=2"],
        tmp_path,
        check=True,
    )
    resumed = run_cli(
        [f"trainer.resume={first.dir}", "trainer.max_epochs=3"],
        tmp_path,
        run_dir=first.dir,
        check=True,
    )
    metrics, whole = metrics_of(first.dir), metrics_of(sweep_dir / JOBS[1])
    for key in ("loss/train", "loss/val", "pitfall/grad_carried_over"):
        assert [h[key] for h in metrics["history"]] == [h[key] for h in whole["history"]], key
    assert metrics["pitfall"] == whole["pitfall"]
    assert "pitfall lab  forget_zero_grad" in resumed.stdout
    test = run_cli(
        ["mode=test", f"trainer.resume={first.dir}"],
        tmp_path,
        run_dir=tmp_path / "eval",
        check=True,
    )
    evaluated = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert evaluated["test"] == metrics["test"]
    assert "allowlist" not in test.stdout + test.stderr
