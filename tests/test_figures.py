"""The figures, read back as matplotlib objects and as pixels: what a person sees at
TensorBoard's image size (about 400 px wide)."""

import json

import numpy as np
import pytest
import yaml
from PIL import Image

from trainer import curve_figures, figures


def _texts(fig):
    return [t.get_text() for t in fig.legends[0].get_texts()] if fig.legends else []


def _legend(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_confusion_matrix_of_ten_digits_is_readable_in_tensorboards_image_box():
    counts = np.diag(np.arange(20, 30))
    counts[5, 9] = 12
    fig = figures.confusion_matrix(counts, [str(i) for i in range(10)], "confusion matrix")
    assert figures.to_rgb(fig).shape == (290, 488, 3)
    ax = fig.axes[0]
    numbers = [t for t in ax.texts]
    assert len(numbers) == 100
    shrink = min(355 / 488, 186 / 290)  # TensorBoard fits it into its box (TIME SERIES)
    size_px = numbers[0].get_fontsize() * 100 / 72 * shrink
    assert numbers[0].get_fontsize() == pytest.approx(11.085, abs=1e-3)  # 0.7 of a 0.22" cell
    assert size_px == pytest.approx(9.87, abs=0.01)  # on screen: as large as TensorBoard's text
    assert [t.get_rotation() for t in ax.get_xticklabels()] == [0.0] * 10  # one digit: upright
    assert ax.get_xticklabels()[0].get_fontsize() == 10.0
    assert [t.get_text() for t in fig.texts] == ["confusion matrix"]  # beside the matrix


def test_decision_boundary_has_a_legend_for_training_and_validation_points():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2))
    y = np.repeat([0, 1, 2], 20)

    def probabilities(points):
        return np.tile([0.2, 0.3, 0.5], (len(points), 1))

    fig = figures.decision_boundary(
        probabilities, x[:40], y[:40], x[40:], y[40:], ["setosa", "b", "c"], "t", resolution=20
    )
    assert _texts(fig) == [
        "training (40)",
        "validation (20)",
        "class setosa",
        "class b",
        "class c",
    ]
    assert figures.to_rgb(fig).shape == (290, 540, 3)


def test_lr_schedule_one_labelled_line_per_group_and_a_log_axis_past_10x():
    steps = [1, 2, 3, 4]
    fig = figures.lr_schedule(steps, {"default": [0.1, 0.05, 0.01, 0.0], "head": [1e-3] * 4}, 2)
    ax = fig.axes[0]
    assert _legend(ax) == ["default: 0.1 \u2192 0", "head: 0.001 \u2192 0.001"]
    assert [line.get_linestyle() for line in ax.get_lines()] == ["-", "--"]
    assert ax.get_yscale() == "log"
    assert ax.get_ylim() == pytest.approx((0.0005, 0.2))
    flat = figures.lr_schedule(steps, {"default": [0.1, 0.08, 0.05, 0.02]}, 2)
    assert flat.axes[0].get_yscale() == "linear"  # 5x: a linear axis reads better
    assert _legend(flat.axes[0]) == ["default: 0.1 \u2192 0.02"]
    assert figures.to_rgb(flat).shape == (290, 540, 3)


HISTORY = [
    {"epoch": e, "loss/train": 1 / e, "loss/val": v, "accuracy/train": a, "accuracy/val": a - 0.1}
    for e, v, a in [(1, 0.9, 0.5), (2, 0.5, 0.7), (3, 0.4, 0.8), (4, 0.45, 0.85), (5, 0.5, 0.9)]
]


def test_curves_mark_the_best_epoch_and_the_early_stop():
    summary = {"monitor": "loss/val", "best_epoch": 3, "status": "stopped_early"}
    fig = curve_figures.training_curves(HISTORY, summary)
    loss, metric = fig.axes
    assert (loss.get_title(), metric.get_title()) == ("loss", "accuracy")
    assert _texts(fig) == ["train", "val", "best epoch 3", "stopped early, epoch 5"]
    assert [line.get_label() for line in metric.get_lines()] == _texts(fig)
    ring = loss.get_lines()[3]  # train, val, the best-epoch line, then the ring on val
    assert (list(ring.get_xdata()), list(ring.get_ydata())) == ([3], [0.4])
    assert list(loss.get_lines()[1].get_ydata()) == [0.9, 0.5, 0.4, 0.45, 0.5]
    assert figures.to_rgb(fig).shape == (290, 540, 3)  # side by side, for TensorBoard's box
    completed = curve_figures.training_curves(HISTORY, {**summary, "status": "completed"})
    assert _texts(completed) == ["train", "val", "best epoch 3"]


def test_the_main_metric_is_the_monitored_one_or_accuracy_or_r2():
    assert curve_figures.main_metric(HISTORY, "loss/val") == "accuracy"
    regression = [{"epoch": 1, "loss/val": 1, "mae/val": 1, "r2/val": 0.1}]
    assert curve_figures.main_metric(regression, "loss/val") == "r2"
    assert curve_figures.main_metric(regression, "mae/val") == "mae"
    assert curve_figures.main_metric([{"epoch": 1, "loss/val": 1}], "loss/val") is None


def _job(sweep_dir, name, overrides, history, best_epoch):
    job = sweep_dir / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if history is not None:
        metrics = {"history": history, "best_epoch": best_epoch, "monitor": "loss/val"}
        (job / "metrics.json").write_text(json.dumps(metrics))


def test_sweep_figure_one_labelled_line_per_job_with_its_overrides(tmp_path):
    constant = "trainer.max_epochs=5"
    _job(tmp_path, "0_a", ["optimizer.lr=0.1", constant], HISTORY, 3)
    _job(tmp_path, "1_b", ["optimizer.lr=0.01", constant], HISTORY[:3], 2)
    _job(tmp_path, "2_c", ["optimizer.lr=abc", constant], None, None)  # failed: no metrics
    _job(tmp_path, "10_d", ["optimizer.lr=0.001", constant, "+model.dropout=0.1"], HISTORY, 1)
    path = curve_figures.write_sweep_curves(tmp_path)
    assert path == tmp_path / "val_curves.png"
    assert Image.open(path).size == (860, 384)
    jobs = [
        ("0: optimizer.lr=0.1", HISTORY, 3),
        ("1: optimizer.lr=0.01", HISTORY[:3], 2),
        ("10: +model.dropout=0.1 optimizer.lr=0.001", HISTORY, 1),
    ]
    fig = curve_figures.sweep_curves(jobs, "loss/val")
    assert _texts(fig) == [label for label, _, _ in jobs]
    assert [ax.get_title() for ax in fig.axes] == [
        "loss/val (ring: each job's best epoch)",
        "accuracy/val (ring: each job's best epoch)",
    ]
    assert np.array_equal(np.asarray(Image.open(path))[..., :3], figures.to_rgb(fig))


def test_a_sweep_without_any_finished_epoch_draws_nothing(tmp_path):
    _job(tmp_path, "0_a", ["optimizer.lr=abc"], None, None)
    assert curve_figures.write_sweep_curves(tmp_path) is None
    assert not (tmp_path / "figures").exists()
    assert curve_figures.write_sweep_curves(tmp_path / "missing") is None


def test_lr_range_test_figure_at_tensorboard_size():
    rates = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    fig = figures.loss_vs_lr(rates, [1.0, 0.8, 0.5, 0.7, 9.0], [1.0, 0.8, 0.6, 0.7], 0.01)
    ax = fig.axes[0]
    assert _legend(ax) == ["loss (per step)", "smoothed loss", "suggested lr 0.01"]
    assert ax.get_xscale() == "log"
    assert figures.to_rgb(fig).shape == (290, 540, 3)


def test_predicted_vs_true_fits_the_box_with_its_legend():
    y = np.array([1.0, 2.0, 3.0])
    fig = figures.predicted_vs_true(y, y + 0.1, "predicted vs. true (val)", "price")
    ax = fig.axes[0]
    assert _legend(ax) == ["perfect prediction"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("true price", "predicted price")
    assert figures.to_rgb(fig).shape == (290, 380, 3)
