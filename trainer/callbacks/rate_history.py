"""The learning rate of every optimizer step, kept for the run's schedule figure and its
checkpoints: the current epoch's as lists, the earlier epochs' folded into tensors (a
checkpoint then copies a few tensors, not a list that grows with the run)."""

from __future__ import annotations

import torch


class RateHistory:
    """Steps and, per parameter group, the rate each of those steps trained with."""

    def __init__(self) -> None:
        self._steps: list[int] = []
        self._values: dict[str, list[float]] = {}
        self._folded: dict[str, list] = {"steps": [], "values": []}

    def add(self, step: int, rates: list[tuple[str, float]]) -> None:
        self._steps.append(step)
        for name, rate in rates:
            self._values.setdefault(name, []).append(rate)

    def _fold(self) -> None:
        if self._steps:
            self._folded["steps"].append(torch.tensor(self._steps, dtype=torch.int64))
            self._folded["values"].append(
                {k: torch.tensor(v, dtype=torch.float64) for k, v in self._values.items()}
            )
            self._steps, self._values = [], {}

    def rates(self) -> tuple[list[int], dict[str, list[float]]]:
        """Every step recorded so far, and each group's rates at those steps."""
        self._fold()
        history = self._folded
        if not history["steps"]:
            return [], {}
        names = history["values"][-1].keys()
        values = {
            n: torch.cat([chunk[n] for chunk in history["values"] if n in chunk]).tolist()
            for n in names
        }
        return torch.cat(history["steps"]).tolist(), values

    def state_dict(self) -> dict:
        self._fold()
        history = self._folded
        if len(history["steps"]) > 1:  # keep few chunks: one per checkpoint would grow without end
            names = history["values"][-1].keys()
            history["values"] = [
                {n: torch.cat([c[n] for c in history["values"] if n in c]) for n in names}
            ]
            history["steps"] = [torch.cat(history["steps"])]
        return {
            "lr_steps": history["steps"][0]
            if history["steps"]
            else torch.zeros(0, dtype=torch.int64),
            "lr_values": history["values"][0] if history["values"] else {},
        }

    def load_state_dict(self, state: dict) -> None:
        steps = state.get("lr_steps")
        self._steps, self._values = [], {}
        if steps is not None and len(steps):
            self._folded = {"steps": [steps], "values": [dict(state.get("lr_values", {}))]}


def rates_of(optimizer) -> list[tuple[str, float]]:
    """Each parameter group's name (or index) and learning rate."""
    return [(g.get("name", str(i)), float(g["lr"])) for i, g in enumerate(optimizer.param_groups)]
