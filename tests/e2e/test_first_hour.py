"""What a newcomer meets in the first hour: --help, tab completion, and a start panel that says
what the optimizer and the callbacks really are."""

from __future__ import annotations

import pytest
from helpers import FAST, metrics_of, run_cli, trainer_cli, unsaid

pytestmark = pytest.mark.e2e


def _trainer(args, tmp_path, **env):
    return trainer_cli(args, tmp_path, env=env, timeout=120)


def test_help_describes_every_group_and_shows_callbacks_as_a_set(tmp_path):
    result = _trainer(["--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # (descriptions wrap)
    assert "@package" not in text
    # experiment and hparams_search: their whole description, not the first comment line
    assert "early stopping off so every curve spans the same epochs." in text
    assert (
        "(seeded TPE) over a log-uniform learning rate and weight decay; the objective is" in text
    )
    assert "callbacks: a SET, all four on by default (callbacks=default):" in text
    assert "remove one: ~callbacks.early_stopping" in text
    assert "(callbacks=<one name> keeps ONLY that one; the start panel says so)" in text
    assert "sgd_nesterov" in text and "trainer --install-completion" in text


def test_install_completion_adds_one_line_once_and_completion_answers(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text("alias ll='ls -l'")  # no final newline: ours starts a line
    first = _trainer(["--install-completion", "bash"], tmp_path, HOME=str(home))
    assert first.returncode == 0, first.stderr
    expected = "alias ll='ls -l'\neval \"$(trainer -sc install=bash)\"  # trainer: tab completion\n"
    assert (home / ".bashrc").read_text() == expected
    again = _trainer(["--install-completion", "bash"], tmp_path, HOME=str(home))
    assert again.returncode == 0 and "already installed" in again.stdout
    assert (home / ".bashrc").read_text() == expected

    query = _trainer(
        ["-sc", "query=bash"], tmp_path, COMP_LINE="trainer optimizer=sg", COMP_POINT="20"
    )
    assert query.stdout.split() == [
        "optimizer=sgd",
        "optimizer=sgd_momentum",
        "optimizer=sgd_nesterov",
    ]


def test_install_completion_refuses_an_unknown_shell_and_writes_nothing(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    result = _trainer(["--install-completion", "tcsh"], tmp_path, HOME=str(home))
    assert result.returncode == 2
    assert unsaid(result, "unknown shell 'tcsh'", "Choose one of: bash, zsh, fish") == []
    assert list(home.iterdir()) == []


def test_start_panel_says_classic_or_nesterov_momentum_and_what_weight_decay_skips(tmp_path):
    classic = run_cli(
        [
            "optimizer=sgd_momentum",
            "optimizer.weight_decay=0.01",
            "trainer.max_epochs=1",
            "logger=none",
        ],
        tmp_path,
        run_dir=tmp_path / "classic",
        check=True,
    )
    assert (
        unsaid(
            classic,
            "sgd_momentum (SGD): lr 0.05, weight_decay 0.01, momentum 0.9, classic momentum, "
            "no decay on biases and norm weights (param_groups.decay_bias_and_norm)",
        )
        == []
    )
    nesterov = run_cli(
        ["optimizer=sgd_nesterov", "trainer.max_epochs=1", "logger=none"],
        tmp_path,
        run_dir=tmp_path / "nesterov",
        check=True,
    )
    assert (
        unsaid(nesterov, "sgd_nesterov (SGD): lr 0.05, weight_decay 0, momentum 0.9, Nesterov")
        == []
    )
    assert "no decay on biases" not in nesterov.stdout  # no weight decay: nothing to skip


def test_choosing_one_callback_file_says_the_others_are_off(tmp_path):
    result = run_cli(["callbacks=early_stopping", *FAST], tmp_path, check=True)
    assert (
        unsaid(
            result,
            "callbacks early_stopping only: callbacks=early_stopping replaced the default set; "
            "to drop one callback from the set instead: ~callbacks.<name>",
        )
        == []
    )
    assert not (result.dir / "checkpoints").exists()  # what "only" means


def test_a_small_data_set_gets_enough_epochs_and_the_panel_says_why(tmp_path):
    # iris: 105 training rows, 4 steps an epoch; min_steps=400 needs 100 epochs (more than 50)
    auto = run_cli(
        ["dataset=iris", "model=linear", "trainer.min_steps=400", "callbacks=none", "logger=none"],
        tmp_path,
        run_dir=tmp_path / "auto",
        check=True,
    )
    assert metrics_of(auto.dir)["max_epochs"] == 100
    assert metrics_of(auto.dir)["global_step"] == 400
    assert (
        unsaid(
            auto,
            "100 epochs x 4 steps (max_epochs auto: at least 50 and trainer.min_steps=400 "
            "optimizer steps)",
        )
        == []
    )
    chosen = run_cli(
        ["dataset=iris", "model=linear", "trainer.max_epochs=3", "logger=none"],
        tmp_path,
        run_dir=tmp_path / "chosen",
        check=True,
    )
    assert metrics_of(chosen.dir)["max_epochs"] == 3  # a number typed is the number used
    assert "max_epochs auto" not in chosen.stdout
