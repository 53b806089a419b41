"""Weight initialisation for any model, the built-in ones and the user's own: `model.init`.

Every parameter with two or more dimensions (the weights of linear, convolutional, embedding and
recurrent layers) is drawn from the chosen scheme; every parameter named `bias...` becomes zero;
the others (normalisation weights and the like) keep the value their layer gave them.
`default` changes nothing: each layer keeps PyTorch's own initialisation.
"""

from __future__ import annotations

import torch
from torch import nn

from .errors import UserError, did_you_mean
from .settings import INIT_SCHEMES

_SCHEMES = {
    "xavier_uniform": nn.init.xavier_uniform_,
    "xavier_normal": nn.init.xavier_normal_,
    # He et al.: the gain of ReLU (sqrt 2), variance kept over the fan-in
    "kaiming_uniform": lambda w: nn.init.kaiming_uniform_(w, nonlinearity="relu"),
    "kaiming_normal": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
    "orthogonal": nn.init.orthogonal_,
}


@torch.no_grad()
def initialize(model: nn.Module, scheme: str = "default") -> dict[str, list[str]]:
    """Initialise `model` in place; returns the names of the parameters drawn ("weights") and
    zeroed ("biases"). Draws from torch's global generator (seed first for a repeatable run)."""
    if scheme not in INIT_SCHEMES:
        raise UserError(
            f"model.init='{scheme}' is not a known initialisation; valid: "
            f"{', '.join(INIT_SCHEMES)}.{did_you_mean(scheme, INIT_SCHEMES)}",
            key="model.init",
        )
    done: dict[str, list[str]] = {"weights": [], "biases": []}
    if scheme == "default":
        return done
    draw = _SCHEMES[scheme]
    for name, param in model.named_parameters():
        if param.ndim >= 2:
            draw(param)
            done["weights"].append(name)
        elif name.rpartition(".")[2].startswith("bias"):
            param.zero_()
            done["biases"].append(name)
    return done
