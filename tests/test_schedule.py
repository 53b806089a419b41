"""`python -m trainer.schedule`: a run's learning-rate schedule drawn from the config alone."""

import math

import pytest
from PIL import Image

from trainer import schedule


def _simulate(*overrides, steps_per_epoch=None):
    cfg, choices, settings = schedule.compose(list(overrides))
    return schedule.simulate(cfg, choices, settings, steps_per_epoch)


def test_step_decay_per_epoch_with_the_steps_a_run_counts():
    steps, rates, per_epoch, how, when = _simulate(
        "scheduler=step", "optimizer.lr=0.1", "trainer.max_epochs=6"
    )
    assert (per_epoch, when) == (22, "every epoch")  # moons: 700 training samples, batches of 32
    assert how == "700 training samples / batch size 32 = 22 batches"
    assert steps == list(range(1, 133))
    assert list(rates) == ["default", "no_decay"]
    expected = [0.1] * 44 + [0.01] * 44 + [0.001] * 44  # step_size: a third of the run
    assert rates["default"] == pytest.approx(expected, rel=1e-9)
    assert rates["no_decay"] == rates["default"]


def test_per_step_schedule_module_rates_and_accumulation():
    steps, rates, per_epoch, how, when = _simulate(
        "scheduler=warmup_cosine",
        "optimizer.lr=0.01",
        "trainer.max_epochs=2",
        "trainer.accumulate_grad_batches=4",
        "param_groups.module_lr={layers.1: 0.1}",
    )
    assert (per_epoch, when) == (6, "every optimizer step")  # 22 batches, 4 per step
    assert how.endswith("= 22 batches, 4 per step")
    assert list(rates) == ["layers.1", "layers.1/no_decay", "default", "no_decay"]
    assert rates["layers.1"][0] == pytest.approx(0.1 / 2)  # warm-up: 1 step of 12, from ~0
    assert rates["default"][0] == pytest.approx(0.01 / 2)
    last = 0.01 * 0.5 * (1 + math.cos(math.pi * 10 / 11))  # step 12 of 12, after 1 warm-up
    assert rates["default"][-1] == pytest.approx(last)
    assert len(steps) == 12


def test_the_command_writes_the_png_it_names(tmp_path):
    out = tmp_path / "cosine.png"
    code = schedule.main(
        ["scheduler=cosine", "optimizer.lr=0.1", "trainer.max_epochs=5", "--output", str(out)]
    )
    assert code == 0
    assert Image.open(out).size == (540, 290)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["scheduler=plateau"], "scheduler=plateau lowers the rate when loss/val stops"),
        (["--steps-per-epoch", "0"], "--steps-per-epoch 0: give a whole number >= 1"),
        (["--output", "x.jpg"], "--output x.jpg: the figure is a PNG"),
        (["--steps"], "unknown option '--steps'"),
        (["scheduler=cosin"], "Did you mean 'cosine'?"),
        (["--output"], "--output needs a value"),
    ],
)
def test_bad_input_is_one_clear_message_and_exit_code_2(
    tmp_path, monkeypatch, capfd, argv, message
):
    monkeypatch.chdir(tmp_path)
    assert schedule.main(argv) == 2
    err = " ".join(capfd.readouterr().err.replace("│", " ").split())
    assert message in err
    assert list(tmp_path.iterdir()) == []  # no file written
