"""How a model's outputs are read for a task: target format for the loss, predictions, probabilities."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Head:
    """The model's output layout.

    kind:
      "logit"  one logit per sample; binary classification (BCE-style losses)
      "logits" one logit per class; classification (cross-entropy-style losses)
      "labels" one logit per label; multi-label classification (each label 0/1 on its own)
      "values" one value per regression target (standardised units)
    """

    task: str
    kind: str
    num_outputs: int
    labels: tuple[str, ...] = ()  # multi-label: the labels' names, in output order

    def targets(self, y: np.ndarray) -> torch.Tensor:
        """Targets in the form the loss expects, converted once per data set, not per step."""
        if self.kind == "logit":
            return torch.as_tensor(y, dtype=torch.float32).reshape(-1, 1)
        if self.kind == "logits":
            return torch.as_tensor(y, dtype=torch.long)
        values = torch.as_tensor(y, dtype=torch.float32)  # (n, k): also an empty split
        return values if values.ndim == 2 else values.reshape(len(y), -1)

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        """Class indices (classification), 0/1 per label (multi-label), or values in
        standardised units (regression)."""
        if self.kind == "logit":
            return (outputs[:, 0] > 0).long()
        if self.kind == "logits":
            return outputs.argmax(dim=1)
        if self.kind == "labels":
            return (outputs > 0).long()
        return outputs

    def probabilities(self, outputs: torch.Tensor) -> torch.Tensor:
        """Per-class probabilities, shape (n, num_classes); multi-label: each label's
        probability of being 1, shape (n, num_labels)."""
        if self.kind == "labels":
            return torch.sigmoid(outputs.float())
        if self.kind == "logit":
            p = torch.sigmoid(outputs.float())
            return torch.cat([1 - p, p], dim=1)
        return torch.softmax(outputs.float(), dim=1)

    def class_indices(self, targets: torch.Tensor) -> torch.Tensor:
        """Targets in loss format back to class indices (multi-label: 0/1 per label)."""
        if self.kind == "logit":
            return (targets[:, 0] > 0.5).long()
        if self.kind == "labels":
            return (targets > 0.5).long()
        return targets
