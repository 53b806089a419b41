"""What the report needs to know about a run beyond its metrics.json: the model's shape, the
callbacks that guard it, the config it was composed from and the command that started it.
Gathered once at the end of a run (`run_facts`), from objects the Trainer already holds."""

from __future__ import annotations

from typing import Any

SATURATING = ("Sigmoid", "Tanh")


def run_facts(trainer) -> dict[str, Any]:
    """Facts about a finished (or failed) run of `trainer` for `diagnose`."""
    model = trainer.state.model if trainer.state is not None else trainer.model
    callbacks = trainer.callbacks.values()
    stopping = next((cb for cb in callbacks if type(cb).__name__ == "EarlyStopping"), None)
    return {
        "model": describe_model(model),
        "early_stopping": None
        if stopping is None
        else {"patience": stopping.patience, "restores": bool(stopping.restore_best_weights)},
        "config": dict(trainer.config.resolved or {}),
        "overrides": command_overrides(),
        "loss": type(trainer.loss_fn).__name__,
    }


def describe_model(model) -> dict[str, Any]:
    """The model's class, its weight layers (Linear, Conv), its activations, normalisation."""
    from torch import nn

    modules = list(model.modules())
    layers = [m for m in modules if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))]
    activations = sorted({type(m).__name__ for m in modules if _is_activation(m)})
    widths = [m.out_features for m in layers[:-1] if isinstance(m, nn.Linear)]
    widths += [m.out_channels for m in layers[:-1] if not isinstance(m, nn.Linear)]
    return {
        "class": type(getattr(model, "module", model)).__name__,
        "weight_layers": len(layers),
        "hidden_widths": widths,
        "activations": activations,
        "saturating": [a for a in activations if a in SATURATING],
        "normalised": any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in modules),
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def _is_activation(module) -> bool:
    return type(module).__module__ == "torch.nn.modules.activation"


def command_overrides() -> list[str] | None:
    """The overrides this job was started with (None outside a Hydra run): what an advised
    command repeats. A resume's own path is left out: advice starts a new run."""
    try:
        from hydra.core.hydra_config import HydraConfig

        task = list(HydraConfig.get().overrides.task)
    except (ImportError, ValueError):  # not run by Hydra (the Python API)
        return None
    return [o for o in task if not o.lstrip("+~").startswith("trainer.resume=")]
