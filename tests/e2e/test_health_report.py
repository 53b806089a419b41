"""The health report as a user meets it: a run with a learning rate far too high gets the
verdict, the numbers and one command to copy, the same in the terminal, metrics.json and
TensorBoard; the command it advises runs and trains a healthy model."""

import shlex

import pytest
from helpers import metrics_of, run_cli

pytestmark = pytest.mark.e2e

TOO_HIGH = ["optimizer.lr=0.5", "trainer.max_epochs=30", "logger.figures=false"]


def _flat(text):
    return " ".join(text.replace("│", " ").split())


def test_a_rate_far_too_high_is_named_and_the_advised_command_fixes_it(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    first = run_cli(TOO_HIGH, tmp_path, run_dir=tmp_path / "high", check=True)
    metrics = metrics_of(first.dir)
    assert metrics["health_verdict"] == "lr_too_high"
    main = metrics["health"][0]
    assert (main["kind"], main["severity"]) == ("lr_too_high", "warning")
    advice = "python -m trainer trainer.max_epochs=30 logger.figures=false optimizer.lr=0.05"
    assert main["advice"] == advice  # the run's own overrides, the rate ten times lower
    assert metrics["dataset"]["baseline"]["accuracy"] == 0.5
    out = _flat(first.stdout)
    assert "health report: lr_too_high" in out
    assert f"\ntry:         {advice}\n" in first.stdout  # whole, on a line of its own
    assert _flat(main["message"]) in out
    events = EventAccumulator(str(first.dir), size_guidance={"tensors": 0})
    events.Reload()
    text = events.Tensors("health/text_summary")[0].tensor_proto.string_val[0].decode()
    assert text.startswith("**verdict: lr_too_high**")
    assert f"try: `{advice}`" in text

    # What the user does next: run the advised command as printed.
    args = shlex.split(advice)[3:]
    second = run_cli(args, tmp_path, run_dir=tmp_path / "advised", check=True)
    fixed = metrics_of(second.dir)
    assert fixed["health_verdict"] == "healthy"
    assert fixed["health"][0]["kind"] == "ok"
    assert fixed["best"]["accuracy/val"] > metrics["best"]["accuracy/val"]
    assert "health report: healthy" in _flat(second.stdout)


def test_the_calibration_corpus_runs_and_prints_its_figures(tmp_path):
    import subprocess
    import sys

    from helpers import ROOT, cli_env

    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "health_corpus.py"),
            "--set",
            "tuned",
            "--only",
            "healthy_wine_mlp,lr_low_sgd",
            "--out",
            str(tmp_path / "corpus"),
        ],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert [line.split()[:2] for line in lines if line.startswith(("ok ", "XX "))] == [
        ["ok", "healthy_wine_mlp"],
        ["ok", "lr_low_sgd"],
    ]
    assert "tuned      named right 2/2 (100%); warnings on healthy runs 0/1" in lines
    metrics = metrics_of(tmp_path / "corpus" / "lr_low_sgd")
    assert metrics["health_verdict"] == "lr_too_low"
