"""Findings about how well the model fit: no signal, underfitting, overfitting (hurt or
caught), still improving, plateau, and the healthy verdict's own line."""

from __future__ import annotations

import math

from .advice import Advisor
from .curves import Curves
from .rules import (
    NO_SIGNAL_R2,
    POOR_SKILL,
    RISE,
    RISE_OF_CHANCE,
    SMALL_WIDTH,
    STILL_FALLING,
    _chance_text,
    _g,
    finding,
)


def _metric_text(c: Curves, value: float | None) -> str:
    if value is None or c.metric is None:
        return ""
    if c.metric == "r2":
        return f"val r2 {value:.3f} (chance 0)"
    return f"val accuracy {value:.3f} (chance {c.chance.get('accuracy', float('nan')):.3f})"


def no_signal(c: Curves, summary: dict, advisor: Advisor) -> dict | None:
    """Val stayed at chance (its mean over the run within two standard errors of the
    majority-class rate; r2 within 2/sqrt(n) of 0) although training itself worked (the train
    loss reached the chance level): the features do not predict the target."""
    values = [v for v in c.val_metric if v is not None]
    n_val = ((summary.get("dataset") or {}).get("sizes") or {}).get("val") or 0
    if not values or n_val < 10:
        return None
    mean, best = sum(values) / len(values), max(values)
    if c.metric == "r2":  # a model unrelated to the target scores r2 <= about 1/n
        chance, margin, best_margin = 0.0, NO_SIGNAL_R2, NO_SIGNAL_R2
    else:
        chance = c.chance.get("accuracy")
        if chance is None:
            return None
        error = math.sqrt(chance * (1.0 - chance) / n_val)  # of an accuracy on n_val samples
        margin, best_margin = 2.0 * error, 3.5 * error  # the best epoch is picked: more room
    if mean > chance + margin or best > chance + best_margin:
        return None
    if c.chance_loss is not None and min(c.train) > 1.02 * c.chance_loss:
        return None  # training did not even reach the chance level: not the data's fault
    return finding(
        "no_signal",
        "warning",
        f"no learnable signal: val {c.metric} averaged {mean:.3f} over the run (best "
        f"{best:.3f}), within what {n_val} val samples can tell from {chance:.3f}, the score "
        f"of predicting the most common answer (the mean), while the train loss reached "
        f"{min(c.train):.4g} (chance level {_g(c.chance_loss)}). Check that the target is the "
        "column you mean and that the features carry information about it.",
        mean_val_metric=mean,
        chance_metric=chance,
        best_val_metric=best,
        margin=margin,
        val_samples=n_val,
        best_train_loss=min(c.train),
        chance_loss=c.chance_loss,
    )


def underfitting(c: Curves, facts: dict, advisor: Advisor) -> dict | None:
    """A small model whose train loss has flattened at a poor fit, with val as good as train."""
    model = facts.get("model") or {}
    widths = model.get("hidden_widths") or []
    small = model.get("class") == "Linear" or (widths and max(widths) <= SMALL_WIDTH)
    small = small or model.get("weight_layers", 2) <= 1
    train_skill, val_skill = c.final_train_skill(), c.best_val_skill()
    if not small or train_skill is None or val_skill is None:
        return None
    poor = POOR_SKILL[c.metric == "r2"]
    if train_skill >= poor or val_skill < train_skill - 0.1:
        return None
    window = max(3, c.n // 5)
    if c.n > window and (c.train[-window - 1] - c.train[-1]) / c.scale > STILL_FALLING:
        return None  # still learning: more epochs first (still_improving)
    metric = f"{c.metric}/train"
    return finding(
        "underfitting",
        "warning",
        f"underfitting: the model is too small for the data: {metric} ended at "
        f"{c.train_metric[-1]:.3f}, {100 * train_skill:.0f}% of the way from chance to "
        f"perfect, and val is no worse ({100 * val_skill:.0f}%), so it cannot even fit the "
        "training data.",
        advisor,
        advisor.bigger_model(),
        final_train_metric=c.train_metric[-1],
        train_skill=train_skill,
        best_val_skill=val_skill,
        hidden_widths=widths,
    )


def overfitting(c: Curves, summary: dict, advisor: Advisor) -> dict | None:
    """Val loss rose well past its best while the train loss kept falling. `warning` when the
    run ends with those weights; `info` (overfitting_caught) when early stopping restored them."""
    t, v, n = c.train, c.val, c.n
    best = v.index(min(v))
    after = n - 1 - best
    rise = v[-1] - v[best]
    if after < 3 or rise <= RISE * v[best] or rise <= RISE_OF_CHANCE * c.scale:
        return None
    if not t[-1] < t[best]:
        return None
    evidence = dict(
        best_epoch=c.epochs[best],
        best_val_loss=v[best],
        final_val_loss=v[-1],
        train_loss_at_best=t[best],
        final_train_loss=t[-1],
        epochs_rising=after,
        gap=v[-1] - t[-1],
    )
    turned = (
        f"val loss rose from {v[best]:.4g} (epoch {c.epochs[best]}) to {v[-1]:.4g} (epoch "
        f"{c.epochs[-1]}, {after} epochs later) while train loss fell from {t[best]:.4g} to "
        f"{t[-1]:.4g}"
    )
    if summary.get("restored"):
        return finding(
            "overfitting_caught",
            "info",
            f"early stopping caught overfitting: {turned}; it restored epoch "
            f"{summary.get('best_epoch')}, so the final weights are the best ones.",
            **evidence,
        )
    tested = summary.get("tested_on") or ""
    kept = (
        f" The test used {tested}."
        if tested.startswith("checkpoints/best.pt")
        else " The run ends with the overfit weights."
    )
    return finding(
        "overfitting",
        "warning",
        f"overfitting: {turned}; the final gap is {v[-1] - t[-1]:.4g}.{kept}",
        advisor,
        advisor.regularise(),
        **evidence,
    )


def still_improving(c: Curves, summary: dict, advisor: Advisor) -> dict | None:
    """The run reached max_epochs with val loss at its best and still falling."""
    n = c.n
    window = max(3, n // 5)
    if summary.get("status") != "completed" or n <= window:
        return None
    best = c.val.index(min(c.val))
    old, new = c.val[-window - 1], c.val[-1]
    fell = (old - new) / c.scale
    if best < n - 2 or fell <= STILL_FALLING:
        return None
    return finding(
        "still_improving",
        "warning",
        f"stopped while still improving: the run ended at trainer.max_epochs="
        f"{summary.get('max_epochs')} with val loss still falling, {old:.4g} -> {new:.4g} over "
        f"its last {window} epochs (best at the last epochs); a longer run would do better.",
        advisor,
        advisor.longer(),
        window=window,
        val_loss_before=old,
        val_loss_final=new,
        fell_of_chance=fell,
    )


def plateau(c: Curves, summary: dict, advisor: Advisor) -> dict | None:
    """The run went on long after val loss stopped improving (nothing was lost, time was)."""
    n = c.n
    window = max(5, n // 4)
    best = c.val.index(min(c.val))
    if summary.get("status") != "completed" or n - 1 - best < window:
        return None
    recent = c.val[-window:]
    spread = (max(recent) - min(recent)) / c.scale
    if spread > 0.05:
        return None
    text, overrides = advisor.schedule()
    return finding(
        "plateau",
        "info",
        f"plateau: val loss has not improved since epoch {c.epochs[best]} ({_g(c.val[best])}); "
        f"the last {n - 1 - best} epochs stayed within {100 * spread:.1f}% of "
        f"{_chance_text(c)}.",
        advisor,
        (text, overrides) if text else None,
        best_epoch=c.epochs[best],
        epochs_after_best=n - 1 - best,
        spread_of_chance=spread,
        window=window,
    )


def healthy(c: Curves, summary: dict) -> dict:
    best = c.val.index(min(c.val))
    gap = c.val[best] - c.train[best]
    skill = c.best_val_skill()
    metric = max((v for v in c.val_metric if v is not None), default=None)
    versus = _metric_text(c, metric)
    stop = f"; {summary['stop_reason']}" if summary.get("stop_reason") else ""
    return finding(
        "ok",
        "info",
        f"healthy: val loss reached {c.val[best]:.4g} at epoch {c.epochs[best]}"
        + (f" against the chance level {c.chance_loss:.4g}" if c.chance_loss else "")
        + (f", best {versus}" if versus else "")
        + f", train/val gap "
        f"{gap:.4g}{stop}.",
        best_epoch=c.epochs[best],
        best_val_loss=c.val[best],
        chance_loss=c.chance_loss,
        best_val_skill=skill,
        gap=gap,
    )


def no_validation(c: Curves) -> dict:
    """A run without a validation split: what the report could not judge, and the training
    curve it did."""
    reached = f"; the training loss reached {min(c.train):.4g}" if c.train else ""
    return finding(
        "no_validation",
        "info",
        "no validation split (data.split validation fraction 0): overfitting cannot be seen, "
        "nor a plateau or a run stopped too early; the report judged the training curve only "
        f"(learning rate, gradients){reached}"
        + (f" against the chance level {c.chance_loss:.4g}." if c.chance_loss else "."),
        best_train_loss=min(c.train) if c.train else None,
        chance_loss=c.chance_loss,
    )
