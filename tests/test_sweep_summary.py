"""What a sweep summary calls varying: the settings its jobs do not share."""

from trainer.sweeps import _varying


def test_a_setting_only_some_jobs_have_varies():
    jobs = [["optimizer.lr=0.1", "+loss.label_smoothing=0.1"], ["optimizer.lr=0.1"]]
    assert _varying(jobs) == {"+loss.label_smoothing"}


def test_values_that_differ_vary_and_shared_ones_do_not():
    jobs = [["optimizer.lr=0.1", "model=mlp"], ["optimizer.lr=0.01", "model=mlp"]]
    assert _varying(jobs) == {"optimizer.lr"}
    assert _varying([["model=mlp"], ["model=mlp"]]) == {"model"}  # nothing varies: show all
