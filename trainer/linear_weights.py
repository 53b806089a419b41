"""What a linear model learned, in the data's own units. The model trains on standardised features
(and, for regression, standardised targets), so its raw weights answer a different question than
the textbook exercise asks ("what slope did it find?"). Undoing the standardisation:

    y' = w x' + b,  x' = (x - m) / s,  y = sy y' + my
    =>  y = (sy w / s) x + sy (b - sum(w m / s)) + my

For classification there is no target scaling (sy = 1, my = 0): the weights are those of the
logits on the raw features."""

from __future__ import annotations

from typing import Any

import numpy as np

MAX_SHOWN = 6  # features in the one-line equation printed in the summary


def original_units(model, data) -> dict[str, Any]:
    """{"linear_weights": {"features", "outputs", "weight" (outputs x features), "bias"}} for a
    model that is one nn.Linear layer (model=linear); {} for any other model."""
    import torch.nn as nn

    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    others = [m for m in model.modules() if len(list(m.children())) == 0 and m not in layers]
    if len(layers) != 1 or any(not isinstance(m, nn.Flatten) for m in others):
        return {}
    if getattr(data, "feature_scaler", None) is None:
        return {}
    weight = layers[0].weight.detach().double().cpu().numpy()
    bias = layers[0].bias.detach().double().cpu().numpy() if layers[0].bias is not None else 0.0
    mean = np.asarray(data.feature_scaler.mean, dtype=np.float64)
    std = np.asarray(data.feature_scaler.std, dtype=np.float64)
    if weight.shape[1] != len(mean):
        return {}
    slope = weight / std
    intercept = bias - slope @ mean
    if data.target_scaler is not None:  # regression: back to the target's units
        t_mean = np.asarray(data.target_scaler.mean, dtype=np.float64).reshape(-1)
        t_std = np.asarray(data.target_scaler.std, dtype=np.float64).reshape(-1)
        slope, intercept = slope * t_std[:, None], intercept * t_std + t_mean
    spec = data.spec
    outputs = spec.target_names or ["y"]
    if spec.task != "regression":
        outputs = (
            ["logit"]
            if weight.shape[0] == 1
            else [f"logit[{c}]" for c in (spec.class_names or range(weight.shape[0]))]
        )
    return {
        "linear_weights": {
            "features": list(spec.feature_names),
            "outputs": [str(o) for o in outputs],
            "weight": np.round(slope, 6).tolist(),
            "bias": np.round(np.broadcast_to(intercept, (weight.shape[0],)), 6).tolist(),
            "units": "the data's original units (standardisation undone)",
        }
    }


def equation(weights: dict[str, Any]) -> str:
    """The first output as one line: `y = 2.98 x + 1.02` (the rest is in metrics.json)."""
    pairs = list(zip(weights["weight"][0], weights["features"], strict=True))
    text = ""
    for i, (w, name) in enumerate(pairs[:MAX_SHOWN]):
        sign = ("-" if w < 0 else "") if i == 0 else (" - " if w < 0 else " + ")
        text += f"{sign}{abs(w):.4g} {name}"
    if len(pairs) > MAX_SHOWN:
        text += f" + ... ({len(pairs) - MAX_SHOWN} more)"
    bias = weights["bias"][0]
    return f"{weights['outputs'][0]} = {text} {'-' if bias < 0 else '+'} {abs(bias):.4g}"
