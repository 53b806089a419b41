"""The findings, one function each, in the order the report lists them. Each returns a finding
or None; `diagnose` (in __init__.py) decides which rule rules out which. Thresholds are module
constants, tuned on scripts/health_corpus.py (the README has its figures)."""

from __future__ import annotations

from typing import Any

from .advice import Advisor
from .curves import Curves

UP = 0.02  # an epoch's train loss rose by more than this share of the chance-level loss
REBOUND = 0.10  # the final train loss is this share of the chance loss above its best: too high
WORSE_THAN_CHANCE = 1.05  # train loss this multiple of the chance loss in the run's second half
VANISHING_RATIO = 1e-2  # first weight layer's gradient norm / the last one's, below which ...
STALLED_SKILL = 0.2  # ... and a run that closed less than this share of the gap to perfect
EXPLODING_GROWTH = 100.0  # the gradient norm grew this much from its first epoch, or ...
CLIPPED_BY = 10.0  # ... was typically this many times the clip norm
NO_SIGNAL_R2 = 0.05  # no signal: val r2 at most this (accuracy: 2 standard errors of chance)
POOR_SKILL = (0.8, 0.3)  # underfitting: a final train skill below this (classes, regression)
SMALL_WIDTH = 8  # hidden layers this narrow make a small model
RISE = 0.10  # overfitting: val loss this share above its best ...
RISE_OF_CHANCE = 0.02  # ... and this share of the chance loss
STILL_FALLING = 0.02  # val loss fell by this share of the chance loss over the last window


def finding(kind, severity, message, advisor=None, advice=None, **evidence) -> dict[str, Any]:
    """{kind, severity, message, evidence, advice}: advice is one command (or None)."""
    text, overrides = advice if advice else ("", [])
    if text:
        message = f"{message} Fix: {text}."
    command = advisor.command(overrides) if advisor is not None and overrides else None
    return {
        "kind": kind,
        "severity": severity,
        "message": message,
        "evidence": evidence,
        "advice": command,
    }


def _g(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _chance_text(c: Curves) -> str:
    return f"the chance level {_g(c.chance_loss)}" if c.chance_loss else "its first level"


def divergence(summary, advisor: Advisor) -> dict:
    found = summary["nonfinite"]
    a, b = found["steps"]
    advice = advisor.lower_lr(below=found["lr"])
    if found.get("skipped_in_a_row"):
        what = (
            f"divergence: trainer.on_nonfinite=skip skipped {found['skipped_in_a_row']} optimizer "
            f"steps in a row (up to step {b}, epoch {found['epoch']}) at learning rate "
            f"{found['lr']:.3g}, so the run stopped as diverged."
        )
    else:
        what = (
            f"divergence: the training loss became {found['value']} between optimizer steps {a} "
            f"and {b} (epoch {found['epoch']}) at learning rate {found['lr']:.3g} (set: "
            f"{advisor.base_lr:.3g})."
        )
    return finding(
        "divergence",
        "error",
        what + " Clipping (trainer.grad_clip.norm=1.0) can also help.",
        advisor,
        advice,
        step_from=a,
        step_to=b,
        epoch=found["epoch"],
        lr=found["lr"],
        base_lr=advisor.base_lr,
        value=found["value"],
    )


def lr_too_high(c: Curves, advisor: Advisor) -> dict | None:
    """Oscillation, a loss that ends above its best, or worse than a constant prediction."""
    t, scale, n = c.train, c.scale, c.n
    ups = [i for i in range(1, n) if t[i] - t[i - 1] > UP * scale]
    oscillating = len(ups) >= max(3, 0.25 * (n - 1))
    rebound = (t[-1] - min(t)) / scale
    half = t[n // 2 :]
    late_mean = sum(half) / len(half)
    worse = c.chance_loss is not None and late_mean > WORSE_THAN_CHANCE * c.chance_loss
    worse = worse and c.fraction_down(t) < 0.7
    if not (oscillating or rebound > REBOUND or worse):
        return None
    parts = []
    if worse:
        parts.append(
            f"the training loss averaged {late_mean:.4g} over the second half of the run, worse "
            f"than {_chance_text(c)} (a constant prediction)"
        )
    if oscillating:
        parts.append(f"the training loss rose in {len(ups)} of {n - 1} epochs")
    if rebound > REBOUND:
        best = t.index(min(t))
        parts.append(
            f"it ended at {t[-1]:.4g}, above its best {min(t):.4g} (epoch {c.epochs[best]}) by "
            f"{100 * rebound:.0f}% of {_chance_text(c)}"
        )
    what = "; ".join(parts)
    return finding(
        "lr_too_high",
        "warning",
        f"learning rate too high: {what}, at lr {advisor.base_lr:.3g} (peak {advisor.peak_lr:.3g}).",
        advisor,
        advisor.lower_lr(),
        epochs_loss_rose=len(ups),
        rebound_of_chance=rebound,
        second_half_mean_loss=late_mean,
        chance_loss=c.chance_loss,
        lr=advisor.base_lr,
        peak_lr=advisor.peak_lr,
    )


def _stalled(c: Curves) -> bool:
    skill = c.loss_skill(min(c.train))
    if skill is None:
        skill = c.final_train_skill()
    return skill is not None and skill < STALLED_SKILL


def vanishing(c: Curves, facts: dict, advisor: Advisor) -> dict | None:
    model = facts.get("model") or {}
    ratio = c.mean_layer_ratio()
    deep_saturating = bool(model.get("saturating")) and model.get("weight_layers", 0) >= 4
    if not _stalled(c):
        return None
    if ratio is not None:
        if ratio >= VANISHING_RATIO:
            return None
        what = (
            f"the first layer's gradient norm averaged {ratio:.2g} of the last layer's "
            f"(grad_norm/first_layer vs grad_norm/last_layer)"
        )
    elif deep_saturating and not model.get("normalised"):
        what = "(per-layer gradient norms were not measured: logger=none)"
    else:
        return None
    acts = "/".join(model.get("saturating") or []) or "its activations"
    return finding(
        "vanishing_gradients",
        "warning",
        f"vanishing gradients: the loss stayed near {_chance_text(c)} ({min(c.train):.4g} at best) "
        f"in a {model.get('weight_layers', '?')}-layer network with {acts}; {what}.",
        advisor,
        advisor.non_saturating(),
        layer_ratio=ratio,
        weight_layers=model.get("weight_layers"),
        activations=model.get("activations"),
        best_train_loss=min(c.train),
        chance_loss=c.chance_loss,
    )


def exploding(c: Curves, advisor: Advisor) -> dict | None:
    """The gradient norm (measured before clipping) grew by orders of magnitude, or is so large
    that the clip shrinks every step many times over (the clip, not the gradient, trains)."""
    norms = [g for g in c.grad if g is not None]
    if len(norms) < 3 or norms[0] <= 0:
        return None
    growth = max(norms) / norms[0]
    median = sorted(norms)[len(norms) // 2]
    clip = advisor.get("trainer.grad_clip.norm")
    grew = growth >= EXPLODING_GROWTH and norms[-1] >= 10 * norms[0]
    clipped = isinstance(clip, (int, float)) and clip > 0 and median >= CLIPPED_BY * clip
    if not (grew or clipped):
        return None
    if grew:
        what = (
            f"the gradient norm grew {growth:.0f}-fold, from {norms[0]:.3g} in the first epoch "
            f"to {max(norms):.3g} (last: {norms[-1]:.3g})"
        )
    else:
        what = (
            f"the gradient norm before clipping was {median:.3g} in a typical epoch, "
            f"{median / clip:.0f} times trainer.grad_clip.norm={clip:g}: every step is cut down"
        )
    advice = advisor.clip()
    if advisor.get("data.standardize") is False:
        advice = advisor.standardise()
    elif clipped:
        advice = advisor.lower_lr()
    return finding(
        "exploding_gradients",
        "warning",
        f"exploding gradients: {what}.",
        advisor,
        advice,
        first_grad_norm=norms[0],
        max_grad_norm=max(norms),
        median_grad_norm=median,
        final_grad_norm=norms[-1],
        clip_norm=clip,
    )


def lr_too_low(c: Curves, advisor: Advisor) -> dict | None:
    """The loss falls every epoch, no slower at the end than at the start, and is far from done;
    or it barely moves at all."""
    t, n = c.train, c.n
    v = c.val or t  # (no validation split: the training loss alone)
    if n < 5 or c.fraction_down(t) < 0.8 or v.index(min(v)) < n - 2:
        return None
    k = max(1, n // 3)
    early, late = (t[0] - t[k]) / k, (t[-k - 1] - t[-1]) / k
    moved = (t[0] - t[-1]) / c.scale
    far = c.loss_skill(t[-1])
    far = (far < 0.5) if far is not None else moved < 0.5
    flat = abs(moved) < 0.03
    if not (flat or (late > 0 and late >= 0.5 * early and far)):
        return None
    return finding(
        "lr_too_low",
        "warning",
        f"learning rate too low: the training loss fell steadily but slowly, {t[0]:.4g} -> "
        f"{t[-1]:.4g} in {n} epochs ({100 * moved:.1f}% of {_chance_text(c)}; the last "
        f"{k} epochs {late:.3g} per epoch, the first {k} {early:.3g}), at lr "
        f"{advisor.base_lr:.3g}.",
        advisor,
        advisor.raise_lr(),
        first_train_loss=t[0],
        final_train_loss=t[-1],
        moved_of_chance=moved,
        early_slope=early,
        late_slope=late,
        lr=advisor.base_lr,
    )
