"""The measurement scripts in scripts/ still run (their quick modes; the numbers are for the README)."""

import subprocess
import sys

import pytest
from helpers import ROOT, cli_env

pytestmark = pytest.mark.e2e


def test_benchmark_quick_mode_runs_every_contender(tmp_path):
    out = tmp_path / "bench.md"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "benchmark.py"),
            "--quick",
            "--workloads",
            "moons_mlp",
            "--without-dataloader",  # (tests/e2e/test_own_data_cli.py runs that script's quick mode)
            "--out",
            str(out),
        ],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    table = out.read_text()
    for contender in ("| hand |", "| dataloader |", "| trainer |", "| trainer-bare |"):
        assert contender in table
    for name in ("trainer", "trainer-bare"):
        rows = [line for line in table.splitlines() if line.startswith(f"| {name} |")]
        accuracy = float(rows[0].rstrip(" |").split("|")[-1])
        assert 0.5 < accuracy <= 1.0  # the same work was done: the trainer learnt
    assert "`python -m trainer --help`" in table


def test_sweep_speedup_quick_mode(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "sweep_speedup.py"), "--quick"],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "same ranking and metrics in both sweeps: True" in result.stdout


@pytest.mark.parametrize(
    "script, flag",
    [
        ("benchmark.py", "--repeats"),
        ("benchmark.py", "--threads"),
        ("bench_dataloader.py", "--repeats"),
        ("sweep_speedup.py", "--epochs"),
        ("sweep_speedup.py", "--repeats"),
    ],
)
def test_a_count_below_one_is_refused_before_anything_runs(tmp_path, script, flag):
    out = tmp_path / "bench.md"
    extra = ["--out", str(out)] if script == "benchmark.py" else []
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), flag, "0", *extra],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"{script}: error: {flag} must be at least 1, not 0"
    )
    assert result.stdout == ""
    assert sorted(tmp_path.iterdir()) == []  # nothing written, nothing run
