"""Epoch metrics accumulated on the device: no host synchronisation until `compute()`.

Classification: loss, accuracy, and macro precision, recall and F1 (the mean over the classes
that occur in the targets or the predictions, as scikit-learn's `average="macro"`).
Multi-label: loss; `accuracy`, the mean of the per-label accuracies; `exact_match`, the share
of samples with every label right (scikit-learn's subset accuracy); macro precision, recall
and F1 over every label; and each label's own `accuracy/<label>` and `f1/<label>`.
Regression: loss (standardised units), and MAE, RMSE and R^2 in the target's own units.
Every metric is sample-weighted over the whole epoch; a zero denominator counts as 0, as in
scikit-learn.

Classification and multi-label keep the same sums: the loss, the sample count, the samples
right (all labels right), then per class or label the true positives, the predicted positives
and the actual positives, from which every metric above follows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

from .errors import UserError, choices_text
from .tasks import Head

log = logging.getLogger("trainer")

FLUSH_EVERY = 32  # batches buffered before their sums are folded in (bounds memory)
MATRIX_MAX_CLASSES = 32  # up to this many classes, counted as a confusion matrix (k * k values)


CLASSIFICATION = ["loss", "accuracy", "precision_macro", "recall_macro", "f1_macro"]
MULTILABEL = ["loss", "accuracy", "exact_match", "precision_macro", "recall_macro", "f1_macro"]
PER_LABEL = ("accuracy", "f1")  # multi-label: `accuracy/<label>`, `f1/<label>`


def metric_names(task: str, labels: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The metrics of a task (multi-label: with each label's own, given the label names)."""
    if task == "regression":
        return ["loss", "mae", "rmse", "r2"]
    if task == "multilabel":
        return MULTILABEL + [f"{m}/{label}" for label in labels for m in PER_LABEL]
    return list(CLASSIFICATION)


def check_monitor(monitor: str, task: str, labels: list[str] | tuple[str, ...] = ()) -> None:
    """trainer.monitor must be one of this task's metrics on the train or val split."""
    available = [
        f"{name}/{split}" for name in metric_names(task, labels) for split in ("train", "val")
    ]
    if monitor not in available:
        raise UserError(
            f"trainer.monitor='{monitor}' is not a metric of this run; valid: "
            f"{choices_text(available)}.",
            key="trainer.monitor",
        )


class MetricAccumulator:
    """Sums of the loss and task statistics over an epoch, on the device. Single-label
    classification counts a confusion matrix (one `index_put_` per flush: exact, deterministic,
    no host synchronisation), from which the per-class counts follow when the sums are read; the
    sample count is kept on the host."""

    def __init__(
        self, head: Head, device: torch.device, target_std: torch.Tensor | None = None
    ) -> None:
        self.head = head
        self.device = device
        dtype = torch.float32 if device.type == "mps" else torch.float64
        self._confusion = None  # counts of (actual class * classes + predicted class)
        if head.task == "regression":
            width = 2 + 4 * head.num_outputs
        else:  # classes (two for one logit) or labels
            self.classes = 2 if head.kind == "logit" else head.num_outputs
            width = 3 + 3 * self.classes
            if head.kind != "labels" and self.classes <= MATRIX_MAX_CLASSES:
                self._confusion = torch.zeros(self.classes**2, dtype=dtype, device=device)
                self._one = torch.ones((), dtype=dtype, device=device)
        self.sums = torch.zeros(width, dtype=dtype, device=device)
        self.target_std = None if target_std is None else target_std.to(device, dtype).reshape(-1)
        self._buffer: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self._count = 0  # samples flushed into the sums (not yet in sums[1])
        self.samples = 0.0  # counted by the last `compute()`

    def update(self, loss: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Record one batch (all detached). Cheap: the arithmetic runs every FLUSH_EVERY batches."""
        self._buffer.append((loss, outputs, targets))
        if len(self._buffer) >= FLUSH_EVERY:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        losses, outputs, targets = zip(*self._buffer)
        self._buffer = []
        sizes = [len(t) for t in targets]
        self._count += sum(sizes)
        losses, dtype = torch.stack(losses), self.sums.dtype
        outputs, targets = _joined(outputs), _joined(targets)
        if len(set(sizes)) == 1:  # equal batches (the usual case): one op fewer
            loss_sum = losses.sum(dtype=dtype) * sizes[0]
        else:
            weights = torch.tensor(sizes, dtype=dtype, device=self.device)
            loss_sum = torch.dot(losses.to(dtype), weights)
        if self._confusion is not None:  # single-label classification, few classes
            self._count_pairs(outputs, targets)
            self.sums[0].add_(loss_sum)
            return
        if self.head.task != "regression":  # multi-label, or many classes
            counts = self._counts(self.head.predict(outputs), self.head.class_indices(targets))
            self.sums += torch.cat([loss_sum[None], loss_sum.new_zeros(1), counts.to(dtype)])
            return
        outputs, targets = outputs.to(dtype), targets.to(dtype)
        scale = self.target_std if self.target_std is not None else 1.0
        y = targets * scale  # original units, up to a shift that cancels in every metric
        err = (outputs - targets) * scale
        update = [
            loss_sum[None],
            loss_sum.new_zeros(1),
            err.abs().sum(0),
            (err**2).sum(0),
            y.sum(0),
            (y**2).sum(0),
        ]
        self.sums += torch.cat(update)

    def _count_pairs(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Add each sample's (actual, predicted) class pair to the confusion matrix."""
        if self.head.kind == "logit":  # (n, 1) logits and 0/1 targets: no column selected
            pairs = ((targets > 0.5) * 2 + (outputs > 0)).view(-1)
        else:
            pairs = targets * self.classes + outputs.argmax(dim=1)
        self._confusion.index_put_((pairs,), self._one, accumulate=True)

    def _counts(self, predicted: torch.Tensor, actual: torch.Tensor) -> torch.Tensor:
        """[samples right, true positives (k), predicted positives (k), actual positives (k)]:
        element-wise comparisons and sums, exact and deterministic on every device."""
        if self.head.kind == "labels":  # (n, k) of 0/1
            right = (predicted == actual).all(dim=1).sum()
            hit = predicted * actual
            return torch.cat([right[None], hit.sum(0), predicted.sum(0), actual.sum(0)])
        classes = torch.arange(self.classes, device=predicted.device)
        is_predicted = predicted[:, None] == classes
        is_actual = actual[:, None] == classes
        right = (predicted == actual).sum()
        hit = (is_predicted & is_actual).sum(0)
        return torch.cat([right[None], hit, is_predicted.sum(0), is_actual.sum(0)])

    def _totals(self, all_reduce: Callable[[torch.Tensor], torch.Tensor] | None = None) -> list:
        """The sums in the layout of this module's docstring, read to the host (the one host
        synchronisation of an epoch): the device's sums with the host's sample count and, where
        kept, the confusion matrix's per-class counts; across processes with `all_reduce`."""
        self._flush()
        if self._confusion is not None:
            sums = torch.cat([self.sums, self._confusion])
        else:
            sums = self.sums.clone()
        count = self._count
        if all_reduce is not None:  # (the count too: every process's)
            sums[1:2].add_(count)
            sums, count = all_reduce(sums), 0
        values = sums.tolist()
        values[1] += count
        return self._read(values)

    def _read(self, sums: list[float]) -> list[float]:
        """The confusion matrix after the sums (if kept) added to their per-class counts
        (samples right, true positives, predicted and actual positives)."""
        if self._confusion is None:
            return sums
        k = self.classes
        values, confusion = sums[: 3 + 3 * k], sums[3 + 3 * k :]
        rows = [confusion[i * k : (i + 1) * k] for i in range(k)]  # actual i, predicted j
        hit = [rows[i][i] for i in range(k)]
        predicted = [sum(row[j] for row in rows) for j in range(k)]
        actual = [sum(row) for row in rows]
        counts = [sum(hit), *hit, *predicted, *actual]
        return values[:2] + [a + b for a, b in zip(values[2:], counts)]

    def state_dict(self) -> dict:
        return {"sums": torch.tensor(self._totals(), dtype=self.sums.dtype)}

    def load_state_dict(self, state: dict) -> None:
        sums = state["sums"].to(self.sums.device, self.sums.dtype)
        self._buffer, self._count = [], 0
        if self._confusion is not None:
            self._confusion.zero_()
        if len(sums) != len(self.sums):  # a checkpoint from before precision/recall/F1
            log.warning(
                "the checkpoint's epoch in progress has no per-class counts: this epoch's "
                "precision, recall and F1 cover only the batches after the resume."
            )
            self.sums.zero_()
            self.sums[:3] = sums[:3]
            return
        self.sums.copy_(sums)

    def compute(
        self, all_reduce: Callable[[torch.Tensor], torch.Tensor] | None = None
    ) -> dict[str, float]:
        """Metrics over every batch recorded (across processes when `all_reduce` is given)."""
        values = self._totals(all_reduce)
        n = self.samples = values[1]
        labels = self.head.labels
        if n == 0:
            return {name: float("nan") for name in metric_names(self.head.task, labels)}
        metrics = {"loss": values[0] / n}
        if self.head.task != "regression":
            return metrics | classification_metrics(
                values[2:], n, self.head.task == "multilabel", labels
            )
        k = self.head.num_outputs
        abs_sum, sq_sum, y_sum, y2_sum = (values[2 + i * k : 2 + (i + 1) * k] for i in range(4))
        metrics["mae"] = sum(abs_sum) / (n * k)
        metrics["rmse"] = (sum(sq_sum) / (n * k)) ** 0.5
        r2 = []
        for sse, s, s2 in zip(sq_sum, y_sum, y2_sum):
            sst = s2 - s * s / n
            r2.append(1 - sse / sst if sst > 0 else float("nan"))
        metrics["r2"] = sum(r2) / k
        return metrics


def _joined(tensors: tuple[torch.Tensor, ...]) -> torch.Tensor:
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors)


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else 0.0  # scikit-learn's zero_division default


def classification_metrics(
    counts: list[float], n: float, multilabel: bool, labels: list[str] | tuple[str, ...] = ()
) -> dict[str, float]:
    """Accuracy, macro precision / recall / F1 (and multi-label's per-label metrics) from
    [samples right, true positives (k), predicted positives (k), actual positives (k)]."""
    right, rest = counts[0], counts[1:]
    k = len(rest) // 3
    hit, predicted, actual = rest[:k], rest[k : 2 * k], rest[2 * k :]
    precision = [_ratio(t, p) for t, p in zip(hit, predicted)]
    recall = [_ratio(t, a) for t, a in zip(hit, actual)]
    f1 = [_ratio(2 * t, p + a) for t, p, a in zip(hit, predicted, actual)]
    if multilabel:  # every label counts
        used = list(range(k))
        per_label_accuracy = [
            (n - (p - t) - (a - t)) / n for t, p, a in zip(hit, predicted, actual)
        ]
        metrics = {"accuracy": sum(per_label_accuracy) / k, "exact_match": right / n}
    else:  # the classes present in the targets or the predictions, as scikit-learn
        used = [c for c in range(k) if predicted[c] + actual[c] > 0]
        metrics = {"accuracy": right / n}
    metrics["precision_macro"] = sum(precision[c] for c in used) / len(used)
    metrics["recall_macro"] = sum(recall[c] for c in used) / len(used)
    metrics["f1_macro"] = sum(f1[c] for c in used) / len(used)
    if multilabel:
        names = list(labels) if len(labels) == k else [str(i) for i in range(k)]
        for name, acc, f in zip(names, per_label_accuracy, f1):
            metrics[f"accuracy/{name}"] = acc
            metrics[f"f1/{name}"] = f
    return metrics
