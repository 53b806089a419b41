"""Advice that works: each suggestion is a list of overrides whose keys exist in the run's
composed config (or group options that exist in conf/), whose values move the right way from
what the user set, and one command that runs it.

    lower_lr(run)        optimizer.lr (and a schedule's own max_lr) / 10 from the rate set
    raise_lr(run)        likewise x 10
    bigger_model(run)    model=mlp for a linear model, wider layers for mlp / cnn
    regularise(run)      early stopping back on, or dropout, or weight decay
    non_saturating(run)  model.activation=relu (vanishing gradients)
    clip(run)            trainer.grad_clip.norm=1.0
    standardise(run)     data.standardize=true
    longer(run)          trainer.max_epochs x 2
"""

from __future__ import annotations

from typing import Any

# The group options advice may name; tests/test_health.py checks that each exists in conf/.
GROUP_OPTIONS = {"model": ("mlp",), "callbacks": ("default",), "scheduler": ("plateau",)}


def _g(value: float) -> str:
    return f"{value:.3g}"


class Advisor:
    """Advice for one run: `facts` from `run_facts`, the rate the user set, the rates used."""

    def __init__(self, facts: dict[str, Any], base_lr: float, rates: list[float], summary):
        self.facts = facts
        self.config = facts.get("config") or {}
        self.base_lr = float(base_lr)
        self.peak_lr = max([self.base_lr, *rates])
        self.summary = summary

    # -- what the config has
    def has(self, key: str) -> bool:
        """Whether `key` is in the composed config (always, for a run from Python: no config)."""
        if not self.config:
            return True
        node: Any = self.config
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    def get(self, key: str, default: Any = None) -> Any:
        node: Any = self.config
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def model_class(self) -> str:
        target = str(self.get("model._target_", "") or "")
        return target.rsplit(".", 1)[-1] if target else self.facts.get("model", {}).get("class", "")

    # -- the command
    def command(self, overrides: list[str]) -> str:
        """`python -m trainer <this run's overrides, the advised ones replacing theirs>`; for a
        run from Python (no command line), the advised overrides alone."""
        from ..report import command_line

        typed = self.facts.get("overrides")
        if typed is None:
            return " ".join(overrides)
        keys = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
        kept = [o for o in typed if o.split("=", 1)[0].lstrip("+~") not in keys]
        return command_line([*kept, *overrides])

    # -- the templates: (what to do, overrides)
    def lower_lr(self, below: float | None = None) -> tuple[str, list[str]]:
        """Ten times below the rate the user set (and below `below`, a rate that failed)."""
        start = min(self.base_lr, below) if below else self.base_lr
        new = start / 10
        overrides = [f"optimizer.lr={_g(new)}"]
        max_lr = self.get("scheduler.max_lr")
        if isinstance(max_lr, (int, float)) and max_lr != self.base_lr:  # set apart from lr
            peak = min(max_lr, below) if below else max_lr
            overrides.append(f"scheduler.max_lr={_g(peak / 10)}")
        floor = self.get("scheduler.base_lr")
        if isinstance(floor, (int, float)) and floor >= new:  # a cycle's floor above its top
            overrides.append(f"scheduler.base_lr={_g(new / 10)}")
        text = f"lower the learning rate ten-fold from {_g(start)} ({', '.join(overrides)})"
        return text, overrides

    def raise_lr(self) -> tuple[str, list[str]]:
        new = self.base_lr * 10
        overrides = [f"optimizer.lr={_g(new)}"]
        max_lr = self.get("scheduler.max_lr")
        if isinstance(max_lr, (int, float)) and max_lr != self.base_lr:
            overrides.append(f"scheduler.max_lr={_g(max_lr * 10)}")
        text = f"raise the learning rate ten-fold from {_g(self.base_lr)} ({', '.join(overrides)})"
        return text, overrides

    def bigger_model(self) -> tuple[str, list[str]]:
        kind = self.model_class()
        if kind == "Linear":
            return "use a model with hidden layers (model=mlp)", ["model=mlp"]
        if kind == "CNN" or (self.config and self.has("model.channels")):
            channels = [2 * int(c) for c in self.get("model.channels", [16, 32])]
            size = 2 * int(self.get("model.hidden_size", 64))
            overrides = [
                f"model.channels=[{','.join(map(str, channels))}]",
                f"model.hidden_size={size}",
            ]
            return f"use a wider network ({', '.join(overrides)})", overrides
        if not self.has("model.hidden_sizes"):  # a model of one's own: no key to name
            return "use a larger model", []
        widths = self.get("model.hidden_sizes") or self.facts["model"].get("hidden_widths") or [64]
        wider = [max(2 * int(w), 16) for w in widths]
        override = f"model.hidden_sizes=[{','.join(map(str, wider))}]"
        return f"use wider layers ({override})", [override]

    def regularise(self) -> tuple[str, list[str]]:
        stopping = self.facts.get("early_stopping")
        if stopping is None and (not self.config or "callbacks" in self.config):
            return "stop at the best epoch with early stopping (callbacks=default)", [
                "callbacks=default"
            ]
        if stopping is not None and not stopping["restores"]:
            key = "callbacks.early_stopping.restore_best_weights=true"
            return f"end with the best epoch's weights ({key})", [key]
        dropout = self.get("model.dropout")
        if self.has("model.dropout") and self.config and (dropout or 0.0) < 0.5:
            new = min(0.5, round((dropout or 0.0) + 0.2, 2))
            return f"regularise with dropout (model.dropout={new})", [f"model.dropout={new}"]
        if self.has("optimizer.weight_decay"):
            decay = float(self.get("optimizer.weight_decay", 0.0) or 0.0)
            new = _g(decay * 10 if decay > 0 else 0.01)
            return (
                f"regularise with weight decay (optimizer.weight_decay={new})",
                [f"optimizer.weight_decay={new}"],
            )
        return "use more training data", []

    def non_saturating(self) -> tuple[str, list[str]]:
        if self.has("model.activation"):
            return "use a non-saturating activation (model.activation=relu)", [
                "model.activation=relu"
            ]
        if self.has("model.batch_norm"):
            return "normalise each layer (model.batch_norm=true)", ["model.batch_norm=true"]
        return "use a model with non-saturating activations (model=mlp)", ["model=mlp"]

    def clip(self) -> tuple[str, list[str]]:
        return "clip the gradient norm (trainer.grad_clip.norm=1.0)", ["trainer.grad_clip.norm=1.0"]

    def standardise(self) -> tuple[str, list[str]]:
        return "standardise the features (data.standardize=true)", ["data.standardize=true"]

    def longer(self) -> tuple[str, list[str]]:
        epochs = int(self.summary.get("max_epochs") or self.summary.get("epochs_run") or 1)
        override = f"trainer.max_epochs={2 * epochs}"
        return f"train for more epochs ({override})", [override]

    def schedule(self) -> tuple[str, list[str]]:
        if not self.get("scheduler") and self.has("scheduler"):
            return "lower the rate when the metric stalls (scheduler=plateau)", [
                "scheduler=plateau"
            ]
        return self.regularise() if self.facts.get("early_stopping") is None else ("", [])
