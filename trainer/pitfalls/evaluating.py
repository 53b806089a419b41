"""Pitfalls of evaluation: model.eval() forgotten, autograd left on in validation, and the test
split used to pick the best epoch. Each also measures the right way, for the comparison."""

from __future__ import annotations

import contextlib
import time

import torch

from ..errors import UserError
from ..evaluation import eval_mode
from .base import Pitfall

TIMINGS = 5  # grad_in_validation: evaluations of the validation split each way, interleaved
NORM_AND_DROPOUT = (torch.nn.modules.dropout._DropoutNd, torch.nn.modules.batchnorm._BatchNorm)


def _shown(metrics: dict[str, float], suffix: str) -> dict[str, float]:
    """The loss and the main metric of an evaluation, as `pitfall/<name>_<suffix>` values."""
    keys = [k for k in ("loss", "accuracy", "r2", "exact_match") if k in metrics]
    return {f"pitfall/{k}_{suffix}": float(metrics[k]) for k in keys}


class ForgetEvalMode(Pitfall):
    """`+pitfall=forget_eval_mode`: validation and test run in train mode."""

    name = "forget_eval_mode"
    what = (
        "model.eval() is never called: validation and test run in train mode (dropout stays "
        "on; BatchNorm normalises with each batch's statistics and updates its running "
        "statistics with validation and test data)"
    )

    @contextlib.contextmanager
    def evaluation_mode(self, model):
        was_training = model.training
        model.train()  # the mistake: the model stays in the mode training left it in
        try:
            with torch.no_grad():  # (gradients are off, as they should be)
                yield
        finally:
            model.train(was_training)

    def attach(self, evaluator) -> None:
        super().attach(evaluator)
        modules = evaluator.state.model.modules()
        layers = sorted({type(m).__name__ for m in modules if isinstance(m, NORM_AND_DROPOUT)})
        self.report["layers_that_differ"] = layers
        if not layers:
            self.report["note"] = (
                "this model has no dropout and no BatchNorm, so train mode computes the same "
                "numbers; add model.dropout=0.3 (or model.batch_norm=true) to see the mistake"
            )

    def on_validation_end(self, run, metrics) -> None:
        right = self.evaluator("val", mode=eval_mode)  # what model.eval() would have reported
        self._logs = _shown(right, "val_eval_mode")

    def on_test_end(self, run, metrics) -> None:
        self.report["test_in_train_mode"] = dict(metrics)
        self.report["test_in_eval_mode"] = self.evaluator("test", mode=eval_mode)


class GradInValidation(Pitfall):
    """`+pitfall=grad_in_validation`: validation without no_grad / inference_mode."""

    name = "grad_in_validation"
    what = (
        "validation and test run without torch.no_grad()/inference_mode(): autograd records a "
        "graph and keeps activations for a backward pass that never comes (same numbers, more "
        "time and memory)"
    )

    def __init__(self) -> None:
        super().__init__()
        self._last: tuple[float, int] = (0.0, 0)  # (seconds, bytes saved) of the last evaluation

    @contextlib.contextmanager
    def evaluation_mode(self, model):
        was_training = model.training
        model.eval()
        weights = {p.data_ptr() for p in model.parameters()}
        saved = [0]

        def pack(tensor):  # autograd keeps `tensor` for backward: count the activations
            if tensor.data_ptr() not in weights:
                saved[0] += tensor.numel() * tensor.element_size()
            return tensor

        _synchronize(model)
        started = time.perf_counter()
        try:
            with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, _unpack):
                yield  # the mistake: no torch.no_grad() / torch.inference_mode() here
        finally:
            _synchronize(model)
            self._last = (time.perf_counter() - started, saved[0])
            model.train(was_training)

    def on_validation_end(self, run, metrics) -> None:
        seconds, saved = self._last
        self._logs = {"pitfall/val_time_s": seconds, "pitfall/val_saved_MB": saved / 1e6}

    def on_test_end(self, run, metrics) -> None:
        """The validation split evaluated both ways, alternately, TIMINGS times each (the median
        of each counts): what autograd cost, and that the numbers are the same."""
        timings: dict[str, list[float]] = {"grad": [], "inference": []}
        results = {}
        for _ in range(TIMINGS):
            for way, mode in (("grad", None), ("inference", eval_mode)):
                started = time.perf_counter()
                results[way] = self.evaluator("val", mode=mode)
                timings[way].append(time.perf_counter() - started)
        grad, inference = (sorted(t)[len(t) // 2] for t in timings.values())
        shared = set(results["grad"]) & set(results["inference"])
        self.report |= {
            "val_time_with_grad_s": grad,
            "val_time_inference_s": inference,
            "slowdown": grad / max(inference, 1e-9),
            "saved_MB_per_validation": self._last[1] / 1e6,
            "max_metric_difference": max(
                (abs(results["grad"][k] - results["inference"][k]) for k in shared), default=0.0
            ),
        }


def _unpack(tensor):
    return tensor


def _synchronize(model) -> None:
    """Wait for the GPU (timings of asynchronous work would measure nothing)."""
    device = next((p.device for p in model.parameters()), None)
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def _size(split) -> int:
    return len(split[0]) if isinstance(split, tuple) else len(split)


class TestSetPeeking(Pitfall):
    """`+pitfall=test_set_peeking`: the test split picks the best epoch."""

    name = "test_set_peeking"
    what = (
        "the test split is used as the validation split: it picks the best epoch (early "
        "stopping, best.pt), so the reported test score is optimistic. The real validation "
        "split is kept aside untouched, as a fresh hold-out, to show by how much"
    )
    __test__ = False  # (not a pytest test class, whatever its name)

    def __init__(self) -> None:
        super().__init__()
        self._holdout_best: dict | None = None  # {"epoch", "value"} by the run's monitor

    def splits(self, tensors: dict) -> dict:
        if _size(tensors["test"]) == 0:
            raise UserError(
                "+pitfall=test_set_peeking needs a test split to peek at; this data has none "
                "(data.split). Use a split with a test fraction, e.g. data.split=[0.7,0.15,0.15].",
                key="pitfall",
            )
        return {**tensors, "val": tensors["test"], "holdout": tensors["val"]}

    def on_validation_end(self, run, metrics) -> None:
        holdout = self.evaluator("holdout")
        self._logs = _shown(holdout, "holdout")
        best = run.record.best
        name, _, split = best.monitor.rpartition("/")
        value = holdout.get(name) if split == "val" else None
        if value is not None and best.better(
            value, None if self._holdout_best is None else self._holdout_best["value"]
        ):
            self._holdout_best = {"epoch": run.state.epoch, "value": float(value)}

    def on_test_end(self, run, metrics) -> None:
        holdout = self.evaluator("holdout")  # the same weights the test split just scored
        self.report["test_peeked"] = dict(metrics)
        self.report["holdout"] = holdout
        self.report["gap"] = {k: metrics[k] - holdout[k] for k in metrics if k in holdout}
        self.report["best_epoch_by_test"] = run.record.best.epoch
        self.report["tested_on"] = run.record.tested_on
        if self._holdout_best is None:
            return
        # What an honest run reports on this same test split: the test numbers (this run's
        # "val" history) at the epoch the untouched validation split picks. The difference
        # is the optimism of choosing on the test split, the split difficulty left out.
        epoch = self._holdout_best["epoch"]
        self.report["best_epoch_by_holdout"] = epoch
        logs = next((h for h in run.record.history if h["epoch"] == epoch), None)
        if logs is not None:
            honest = {k[: -len("/val")]: v for k, v in logs.items() if k.endswith("/val")}
            self.report["test_at_holdout_choice"] = honest
            self.report["optimism"] = {k: metrics[k] - honest[k] for k in metrics if k in honest}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "holdout_best": self._holdout_best}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self._holdout_best = state.get("holdout_best")
