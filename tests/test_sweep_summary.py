"""The sweep summary on crafted sweep directories (hand-written metrics.json files): what varies,
what the runs are ranked by, the table's columns, the health verdict, the job's wall time."""

import io
import json
import subprocess
import sys

import yaml
from helpers import cli_env

from trainer.sweep_table import chosen_test, table_rows, title
from trainer.sweeps import _varying, health_verdict, record_job_time, summarize

HEADER = ["#", "job", "overrides", "best loss/val", "epoch", "epochs", "status", "health", "time"]
HEALTHY = [{"kind": "ok", "severity": "info", "message": "no problems found"}]


def _job(sweep, num, overrides, *, loss=None, status="completed", best=None, val=None, **extra):
    """A job directory as a sweep leaves it: .hydra/overrides.yaml, .hydra/config.yaml and
    metrics.json with the best epoch's metrics."""
    name = f"{num}_{','.join(overrides)}".replace("/", "_")
    job = sweep / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    config = {"loss": loss or {"_target_": "trainer.losses.auto"}, "data": {}}
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    metrics = {
        "status": status,
        "monitor": "loss/val",
        "mode": "min",
        "best_val_metric": best,
        "best_epoch": 3 if best is not None else None,
        "best": {"loss/train": 0.1, "loss/val": best, **(val or {})} if best is not None else {},
        "epochs_run": 4,
        "wall_time_s": 1.25,
        "health": HEALTHY,
        **extra,
    }
    (job / "metrics.json").write_text(json.dumps(metrics))
    return job


def _smoothing(value):
    return {"_target_": "trainer.losses.cross_entropy", "label_smoothing": value}


def test_a_setting_only_some_jobs_have_varies():
    jobs = [["optimizer.lr=0.1", "+loss.label_smoothing=0.1"], ["optimizer.lr=0.1"]]
    assert _varying(jobs) == {"+loss.label_smoothing"}


def test_values_that_differ_vary_and_shared_ones_do_not():
    jobs = [["optimizer.lr=0.1", "model=mlp"], ["optimizer.lr=0.01", "model=mlp"]]
    assert _varying(jobs) == {"optimizer.lr"}
    assert _varying([["model=mlp"], ["model=mlp"]]) == {"model"}  # nothing varies: show all


def test_jobs_with_one_loss_are_ranked_by_it(tmp_path):
    _job(tmp_path, 0, ["optimizer.lr=0.1"], best=0.30, val={"accuracy/val": 0.95})
    _job(tmp_path, 1, ["optimizer.lr=0.01"], best=0.20, val={"accuracy/val": 0.90})
    _job(tmp_path, 2, ["optimizer.lr=0.001"], best=0.50, val={"accuracy/val": 0.80})
    summary = summarize(tmp_path, show=False)
    assert [(r["job"], r["rank"]) for r in summary["runs"]] == [
        ("1_optimizer.lr=0.01", 1),
        ("0_optimizer.lr=0.1", 2),
        ("2_optimizer.lr=0.001", 3),
    ]
    assert (summary["ranked_by"], summary["ranked_mode"], summary["ranking_note"]) == (
        "loss/val",
        "min",
        None,
    )
    assert title(summary) == "sweep: 3 runs ranked by best loss/val (min)"


def test_jobs_with_different_losses_are_ranked_by_accuracy_and_the_table_says_so(tmp_path):
    # the lowest loss belongs to the least accurate run: label smoothing raises the loss floor
    _job(tmp_path, 0, ["loss.label_smoothing=0.0"], loss=_smoothing(0.0), best=0.10,
         val={"accuracy/val": 0.80})  # fmt: skip
    _job(tmp_path, 1, ["loss.label_smoothing=0.2"], loss=_smoothing(0.2), best=0.60,
         val={"accuracy/val": 0.95})  # fmt: skip
    _job(tmp_path, 2, ["loss.label_smoothing=0.1"], loss=_smoothing(0.1), best=0.40,
         val={"accuracy/val": 0.90})  # fmt: skip
    summary = summarize(tmp_path, show=False)
    assert [r["job"].split("_")[0] for r in summary["runs"]] == ["1", "2", "0"]
    assert [r["ranked_value"] for r in summary["runs"]] == [0.95, 0.90, 0.80]
    assert summary["ranked_by"] == "accuracy/val" and summary["ranked_mode"] == "max"
    assert summary["ranking_note"] == (
        "ranked by accuracy/val (at each run's best epoch), not by loss/val: the jobs' losses "
        "differ (loss.label_smoothing), so their loss/val values are not comparable."
    )
    assert summary["best"]["job"] == "1_loss.label_smoothing=0.2"
    header, cells = table_rows(summary)
    assert header == [*HEADER[:3], "accuracy/val", *HEADER[4:]]
    assert [c[3] for c in cells] == ["0.95", "0.9", "0.8"]
    assert title(summary) == "sweep: 3 runs ranked by accuracy/val at each run's best epoch (max)"


def test_a_loss_chosen_in_only_some_jobs_and_a_regression_rank_by_r2(tmp_path):
    _job(tmp_path, 0, ["loss=mse"], loss={"_target_": "torch.nn.MSELoss"}, best=0.2,
         val={"r2/val": 0.7})  # fmt: skip
    _job(tmp_path, 1, ["loss=huber"], loss={"_target_": "torch.nn.HuberLoss", "delta": 1.0},
         best=0.1, val={"r2/val": 0.6})  # fmt: skip
    summary = summarize(tmp_path, show=False)
    assert [r["job"] for r in summary["runs"]] == ["0_loss=mse", "1_loss=huber"]
    assert summary["ranked_by"] == "r2/val"
    assert "the jobs' losses differ (loss, loss.delta)" in summary["ranking_note"]


def test_without_a_shared_metric_the_ranking_stays_and_says_it_is_not_comparable(tmp_path):
    _job(tmp_path, 0, ["loss=mse"], loss={"_target_": "torch.nn.MSELoss"}, best=0.2)
    _job(tmp_path, 1, ["loss=l1"], loss={"_target_": "torch.nn.L1Loss"}, best=0.1)
    summary = summarize(tmp_path, show=False)
    assert [r["job"] for r in summary["runs"]] == ["1_loss=l1", "0_loss=mse"]
    assert summary["ranked_by"] == "loss/val"
    assert summary["ranking_note"] == (
        "ranked by loss/val, but their loss/val values are not comparable: the jobs' losses "
        "differ (loss), and no metric every job records (accuracy/val or r2/val) could rank "
        "them instead."
    )


def test_the_table_shows_health_and_job_time_and_no_test_column(tmp_path):
    _job(tmp_path, 0, ["optimizer.lr=1"], best=0.9, job_wall_time_s=12.34,
         health=[{"kind": "plateau", "severity": "info"}, {"kind": "lr_too_high",
                 "severity": "warning"}], test={"accuracy": 0.5, "loss": 0.9})  # fmt: skip
    _job(tmp_path, 1, ["optimizer.lr=0.1"], best=0.2, job_wall_time_s=3.0,
         health_verdict="overfitting_caught", test={"accuracy": 0.9, "loss": 0.3})  # fmt: skip
    _job(tmp_path, 2, ["optimizer.lr=0.01"], best=0.4, test={"accuracy": 0.8, "loss": 0.5})
    failed = tmp_path / "3_optimizer.lr=abc"
    (failed / ".hydra").mkdir(parents=True)
    (failed / ".hydra" / "overrides.yaml").write_text("- optimizer.lr=abc\n")
    (failed / "metrics.json").write_text('{"status": "failed", "error": "bad lr", "history": []}')
    summary = summarize(tmp_path, show=False)
    header, cells = table_rows(summary)
    assert header == HEADER
    assert cells == [
        ["1", "1", "optimizer.lr=0.1", "0.2", "3", "4", "completed", "overfitting_caught", "3.0s"],
        ["2", "2", "optimizer.lr=0.01", "0.4", "3", "4", "completed", "healthy", "1.2s (training)"],
        ["3", "0", "optimizer.lr=1", "0.9", "3", "4", "completed", "lr_too_high", "12.3s"],
        ["", "3", "optimizer.lr=abc", "", "", "", "failed", "", ""],
    ]
    assert chosen_test(summary["best"]) == (
        "  test:   accuracy 0.9, loss 0.3 (this run only; the test split is not used to rank "
        "or choose)"
    )


def test_the_printed_summary_shows_the_test_metric_of_the_chosen_run_only(tmp_path, capsys):
    _job(tmp_path, 0, ["optimizer.lr=0.1"], best=0.3, test={"accuracy": 0.71})
    _job(tmp_path, 1, ["optimizer.lr=0.01"], best=0.2, test={"accuracy": 0.93})
    summarize(tmp_path)
    printed = capsys.readouterr().out
    assert "0.93" in printed and "0.71" not in printed and "test accuracy" not in printed
    assert printed.count("test:   accuracy 0.93 (this run only") == 1
    csv_header = (tmp_path / "summary.csv").read_text().splitlines()[0].split(",")
    assert csv_header[-6:] == ["epochs", "wall_time_s", "job_wall_time_s", "health", "error",
                               "command"]  # fmt: skip


def test_health_verdict_prefers_the_recorded_verdict_then_errors_then_warnings():
    error = {"kind": "divergence", "severity": "error"}
    warning = {"kind": "overfitting", "severity": "warning"}
    info = {"kind": "still_improving", "severity": "info"}
    assert health_verdict({"health_verdict": "no_signal", "health": [warning]}) == "no_signal"
    assert health_verdict({"health": [info, warning, error]}) == "divergence"
    assert health_verdict({"health": [info, warning]}) == "overfitting"
    assert health_verdict({"health": [info]}) == "healthy"
    assert health_verdict({"health": []}) == "healthy"
    assert health_verdict({"status": "failed"}) is None


def test_the_job_time_is_added_to_metrics_json_and_nothing_is_made_without_one(tmp_path):
    (tmp_path / "metrics.json").write_text('{"status": "completed", "wall_time_s": 1.5}')
    record_job_time(tmp_path, 4.56789)
    assert json.loads((tmp_path / "metrics.json").read_text()) == {
        "status": "completed",
        "wall_time_s": 1.5,
        "job_wall_time_s": 4.568,
    }
    record_job_time(tmp_path / "empty", 1.0)
    assert not (tmp_path / "empty").exists()


def test_job_labels_name_the_job_number_and_its_swept_overrides():
    from omegaconf import OmegaConf

    from trainer.job_output import job_label

    def config(num, task):
        return OmegaConf.create(
            {"hydra": {"job": {"num": num, "config": {"override_dirname": {
                "exclude_keys": ["trainer.max_epochs"]}}}, "overrides": {"task": task}}}
        )  # fmt: skip

    assert job_label(config(3, ["optimizer.lr=0.01", "trainer.max_epochs=4"])) == (
        "3 optimizer.lr=0.01"
    )
    optuna = ["optimizer.lr=0.012285916427548801", "optimizer.weight_decay=2.6958559022082797e-05"]
    assert job_label(config(0, optuna)) == "0 lr=0.01229 weight_decay=2.696e-05"
    many = [f"model.hidden_sizes=[{n},{n}]" for n in (64, 128)] + ["optimizer.lr=0.1"]
    assert job_label(config(1, many)) == "1 hidden_sizes=[64,64] hidden_sizes=[128,…"
    assert job_label(config(7, ["trainer.seed=1"])) == "7"


LABELLED = """
import os, sys
from trainer.job_output import LabelledOutput
print("before")
out = LabelledOutput("[3 lr=0.1] ")
out.start()
print("one\\ntwo")
sys.stderr.write("err line\\n")
os.write(1, b"from C\\npartial")
out.stop()
print("after")
"""


def test_labelled_output_prefixes_every_line_once_python_and_c_alike():
    result = subprocess.run(
        [sys.executable, "-c", LABELLED], env=cli_env(), capture_output=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        b"before\n[3 lr=0.1] one\n[3 lr=0.1] two\n[3 lr=0.1] from C\n[3 lr=0.1] partial\nafter\n"
    )
    assert result.stderr == b"[3 lr=0.1] err line\n"


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _colorlog_output(stream) -> bytes:
    import logging

    import colorlog

    from trainer.job_output import colours_only_on_terminals

    handler = logging.StreamHandler(stream)
    handler.setFormatter(colorlog.ColoredFormatter("%(log_color)s[%(levelname)s]%(reset)s %(message)s"))  # fmt: skip
    logger = logging.getLogger("test_sweep_summary.colours")
    logger.addHandler(handler)
    try:
        colours_only_on_terminals()
        logger.warning("text")
    finally:
        logger.removeHandler(handler)
    return stream.getvalue().encode()


def test_colorlog_handlers_colour_only_terminals(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    assert _colorlog_output(io.StringIO()) == b"[WARNING] text\n"
    assert _colorlog_output(_Terminal()) == b"\x1b[33m[WARNING]\x1b[0m text\x1b[0m\n"


def test_the_job_time_goes_only_into_a_metrics_json_the_job_wrote(tmp_path):
    from omegaconf import OmegaConf

    from trainer.sweeps import SweepRecorder

    config = OmegaConf.create({"hydra": {"mode": "RUN", "runtime": {"output_dir": str(tmp_path)}}})
    original = b'{"status": "completed"}'
    (tmp_path / "metrics.json").write_bytes(original)
    recorder = SweepRecorder()
    recorder.on_job_start(config)  # e.g. a resume refused, or with nothing left to train
    recorder.on_job_end(config, job_return=None)
    assert (tmp_path / "metrics.json").read_bytes() == original
    recorder.on_job_start(config)
    (tmp_path / "metrics.json").unlink()
    (tmp_path / "metrics.json").write_text('{"status": "stopped_early"}')  # the job's record
    recorder.on_job_end(config, job_return=None)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert list(metrics) == ["status", "job_wall_time_s"]
    assert 0 <= metrics["job_wall_time_s"] < 5


def test_jobs_that_monitor_different_metrics_are_ranked_by_a_shared_one(tmp_path):
    _job(tmp_path, 0, ["trainer.monitor=loss/val"], best=0.1, val={"accuracy/val": 0.7})
    job = _job(tmp_path, 1, ["trainer.monitor=accuracy/val"], best=0.9,
               val={"accuracy/val": 0.9})  # fmt: skip
    metrics = json.loads((job / "metrics.json").read_text())
    (job / "metrics.json").write_text(json.dumps({**metrics, "monitor": "accuracy/val",
                                                  "mode": "max"}))  # fmt: skip
    summary = summarize(tmp_path, show=False)
    assert [r["job"].split("_")[0] for r in summary["runs"]] == ["1", "0"]
    assert summary["ranking_note"] == (
        "ranked by accuracy/val (at each run's best epoch): the jobs monitor different metrics "
        "(accuracy/val, loss/val), so their monitored values are not comparable."
    )
    assert table_rows(summary)[0][3] == "accuracy/val"
    assert title(summary) == "sweep: 2 runs ranked by accuracy/val at each run's best epoch (max)"


def test_runs_with_equal_values_share_a_rank_in_job_order(tmp_path):
    for num, accuracy in enumerate((0.8, 0.9, 0.8, 0.7)):
        _job(tmp_path, num, [f"loss.label_smoothing=0.{num}"], loss=_smoothing(num / 10),
             best=0.5, val={"accuracy/val": accuracy})  # fmt: skip
    summary = summarize(tmp_path, show=False)
    assert [(r["job"][0], r["rank"]) for r in summary["runs"]] == [
        ("1", 1),
        ("0", 2),
        ("2", 2),
        ("3", 4),
    ]
