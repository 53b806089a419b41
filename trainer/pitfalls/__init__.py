"""The pitfall lab: `+pitfall=<name>` makes one classic training-loop mistake on purpose, inside
the real loop, so that its effect can be seen beside a run without it:

    python -m trainer -m +pitfall=none,forget_zero_grad

Each pitfall chooses one component differently at set-up (prepare.place calls its hooks): the
training step, the evaluation context, the batches' order, the splits, the learning rate. The
loop itself has no pitfall branch, and a run without a pitfall builds exactly what it always
built. As a callback, the pitfall measures what the mistake did (metrics.json's `pitfall`,
`pitfall/*` values in the history and TensorBoard); the health report explains it
(health/pitfalls.py)."""

from __future__ import annotations

from .base import NoPitfall, Pitfall, active_pitfall, with_pitfall
from .evaluating import ForgetEvalMode, GradInValidation, TestSetPeeking
from .training import ForgetZeroGrad, LrFarTooHigh, NoShuffle

PITFALLS = {
    cls.name: cls
    for cls in (
        NoPitfall,
        ForgetZeroGrad,
        ForgetEvalMode,
        GradInValidation,
        NoShuffle,
        TestSetPeeking,
        LrFarTooHigh,
    )
}

__all__ = [
    "PITFALLS",
    "ForgetEvalMode",
    "ForgetZeroGrad",
    "GradInValidation",
    "LrFarTooHigh",
    "NoPitfall",
    "NoShuffle",
    "Pitfall",
    "TestSetPeeking",
    "active_pitfall",
    "with_pitfall",
]
