"""The pitfall lab's finding: what the mistake a run made on purpose (metrics.json's `pitfall`)
did to this run's curves, with the run's own numbers. One function per pitfall; the finding's
advice is the same command without the pitfall (the fix for every symptom it caused)."""

from __future__ import annotations

import math
from typing import Any

from .advice import Advisor
from .curves import Curves
from .rules import finding

SLOWER = 1.25  # grad_in_validation: a slowdown below this is within timing noise


def _g(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else "n/a"


def _series(summary: dict[str, Any], key: str) -> list[tuple[int, float]]:
    return [
        (int(h["epoch"]), float(h[key]))
        for h in summary.get("history") or []
        if isinstance(h.get(key), (int, float)) and math.isfinite(h[key])
    ]


def _train_path(summary: dict[str, Any]) -> str:
    """'the training loss went 0.45 (epoch 1) -> 0.31 (best, epoch 3) -> 0.57 (last, epoch 5)'."""
    loss = _series(summary, "loss/train")
    if not loss:
        return "no epoch finished with a finite training loss"
    best = min(loss, key=lambda p: p[1])
    return (
        f"the training loss went {_g(loss[0][1])} (epoch {loss[0][0]}) -> {_g(best[1])} (best, "
        f"epoch {best[0]}) -> {_g(loss[-1][1])} (last, epoch {loss[-1][0]})"
    )


def _metric_text(metrics: dict[str, float] | None, metric: str | None) -> str:
    metrics = metrics or {}
    parts = [f"loss {_g(metrics.get('loss'))}"]
    if metric and metric in metrics:
        parts.append(f"{metric} {_g(metrics[metric])}")
    return ", ".join(parts)


def forget_zero_grad(p, c: Curves, summary) -> str:
    ratios = _series(summary, "pitfall/grad_carried_over")
    carried = (
        f"The gradient each step applied was {_g(ratios[0][1])} times that batch's own gradient "
        f"in epoch {ratios[0][0]} and {_g(ratios[-1][1])} times in epoch {ratios[-1][0]} (the sum "
        "of every earlier batch's gradient steers the weights); "
        if ratios
        else ""
    )
    return f"{carried}{_train_path(summary)}."


def forget_eval_mode(p, c: Curves, summary) -> str:
    wrong = _series(summary, "loss/val")
    right = dict(_series(summary, "pitfall/loss_val_eval_mode"))
    pairs = [(e, v, right[e]) for e, v in wrong if e in right]
    text = ""
    if pairs and not p.get("note"):
        gaps = [v - r for _, v, r in pairs]
        e, v, r = pairs[-1]
        text = (
            f"Validation in train mode reported loss {_g(v)} in the last epoch ({e}) where "
            f"model.eval() gives {_g(r)}; over the run, train mode minus eval mode averaged "
            f"{sum(gaps) / len(gaps):+.4g} (largest {max(gaps, key=abs):+.4g}). "
        )
        right_best = min(pairs, key=lambda t: t[2])[0]
        if summary.get("monitor") == "loss/val" and summary.get("best_epoch") != right_best:
            text += (
                f"The best epoch, chosen on these train-mode numbers, was "
                f"{summary.get('best_epoch')}; with model.eval() it would have been {right_best}. "
            )
    if p.get("test_in_train_mode") is not None:
        text += (
            f"Test in train mode: {_metric_text(p['test_in_train_mode'], c.metric)}; with "
            f"model.eval(): {_metric_text(p.get('test_in_eval_mode'), c.metric)}. "
        )
    if p.get("note"):
        text += f"No visible effect here: {p['note']}."
    elif p.get("layers_that_differ"):
        text += (
            f"Layers that behave differently in train mode: {', '.join(p['layers_that_differ'])}."
        )
    return text.strip()


def grad_in_validation(p, c: Curves, summary) -> str:
    if "val_time_with_grad_s" not in p:
        return "The cost was not measured: the run ended before its test."
    noise = (
        " (no difference beyond timing noise: this model's forward pass is mostly overhead; "
        "the memory is the cost here)"
        if p["slowdown"] < SLOWER
        else ""
    )
    return (
        f"Autograd kept {p['saved_MB_per_validation']:.3g} MB of activations per validation for "
        "a backward pass that never came, and a validation pass took "
        f"{1000 * p['val_time_with_grad_s']:.1f} ms with autograd on against "
        f"{1000 * p['val_time_inference_s']:.1f} ms under inference_mode ({p['slowdown']:.2f}x, "
        f"medians of 5 interleaved passes){noise}; the metrics were the same (largest "
        f"difference {p['max_metric_difference']:.2g})."
    )


def no_shuffle(p, c: Curves, summary) -> str:
    lows = [v for _, v in _series(summary, "pitfall/batch_loss_min")]
    highs = [v for _, v in _series(summary, "pitfall/batch_loss_max")]
    text = f"The batches came {p.get('order', 'in one fixed order')}, the same every epoch. "
    if lows and highs:
        text += (
            f"Within an epoch the batch losses swung between {_g(sum(lows) / len(lows))} and "
            f"{_g(sum(highs) / len(highs))} (means over {len(lows)} epochs): the model chases "
            "whichever targets the current stretch of batches holds. "
        )
    if "val_predicted_as_last_class" in p:
        text += (
            f"After the last epoch, which ended on class {p['last_class']}, "
            f"{100 * p['val_predicted_as_last_class']:.0f}% of the validation predictions were "
            f"that class ({100 * p['val_share_of_last_class']:.0f}% of the validation split is). "
        )
    pairs = [
        (t, v) for t, v in zip(c.train_metric, c.val_metric) if t is not None and v is not None
    ]
    below = sum(t < v for t, v in pairs)
    if c.metric and pairs and below > len(pairs) // 2:
        text += (
            f"The training {c.metric}, measured batch by batch as each epoch went, stayed below "
            f"the validation {c.metric} in {below} of {len(pairs)} epochs (last: {_g(pairs[-1][0])} "
            f"against {_g(pairs[-1][1])}): each stretch of one target undoes part of the last. "
        )
    best = summary.get("best") or {}
    if c.metric and f"{c.metric}/val" in best:
        text += f"Best validation {c.metric}: {_g(best[f'{c.metric}/val'])}."
    return text.strip()


def test_set_peeking(p, c: Curves, summary) -> str:
    if "holdout" not in p:
        return "The run ended before its test: no comparison with the hold-out."
    metric = c.metric if c.metric in (p.get("holdout") or {}) else "loss"
    shown = ["loss"] + ([metric] if metric != "loss" else [])
    peeked = p["test_peeked"]
    text = (
        "The loss/val curves are test-set numbers. The test split picked epoch "
        f"{p.get('best_epoch_by_test')} and scored {_pair(peeked, shown)} there (what the run "
        "reports as its test score). "
    )
    honest, chosen = p.get("test_at_holdout_choice"), p.get("best_epoch_by_holdout")
    if honest is not None and chosen == p.get("best_epoch_by_test"):
        text += (
            "The untouched validation split picked the same epoch, so this time the choice "
            "cost nothing; the reported score is still one chosen by the data it measures. "
        )
    elif honest is not None:
        text += (
            f"An honest choice, by the untouched validation split, is epoch {chosen}, where the "
            f"same test split scores {_pair(honest, shown)}: the peeked score is optimistic by "
            f"{_pair(p['optimism'], shown, signed=True)}. "
        )
    return text + (
        f"The fresh hold-out (the real validation split) scores {_pair(p['holdout'], shown)} "
        "with the chosen weights."
    )


def _pair(metrics: dict[str, float], keys: list[str], signed: bool = False) -> str:
    form = "{:+.4g}" if signed else "{:.4g}"
    return ", ".join(f"{k} {form.format(metrics[k])}" for k in keys if k in metrics)


def lr_far_too_high(p, c: Curves, summary) -> str:
    text = (
        f"The learning rate was {_g(p.get('lr_used'))}, {p.get('factor', 0):g} times the "
        f"{_g(p.get('lr_set'))} set. "
    )
    found = summary.get("nonfinite")
    if found:
        a, b = found["steps"]
        return text + (
            f"The training loss became {found['value']} between optimizer steps {a} and {b} "
            f"(epoch {found['epoch']}) and the run stopped as diverged."
        )
    ups = sum(c.train[i] > c.train[i - 1] for i in range(1, c.n)) if c.n else 0
    text += f"{_train_path(summary)[0].upper()}{_train_path(summary)[1:]}"
    if c.n > 1:
        text += f"; it rose in {ups} of {c.n - 1} epochs"
    if c.chance_loss:
        text += f" (a constant prediction scores {_g(c.chance_loss)})"
    return text + "."


EXPLAIN = {
    "forget_zero_grad": forget_zero_grad,
    "forget_eval_mode": forget_eval_mode,
    "grad_in_validation": grad_in_validation,
    "no_shuffle": no_shuffle,
    "test_set_peeking": test_set_peeking,
    "lr_far_too_high": lr_far_too_high,
}


def pitfall_finding(summary: dict[str, Any], curves: Curves, advisor: Advisor) -> dict[str, Any]:
    """The finding for a pitfall-lab run: what the mistake did, and the command without it."""
    p = summary["pitfall"]
    explain = EXPLAIN.get(p["name"])
    effect = explain(p, curves, summary) if explain is not None else ""
    message = (
        f"pitfall lab: {p['name']}, a demonstration — {p['what']}. {effect}"
        " Fix: do not make the mistake (the same command without +pitfall)."
    )
    found = finding("pitfall", "warning", message.strip(), name=p["name"])
    typed = advisor.facts.get("overrides")
    if p.get("note") and advisor.has("model.dropout"):  # no visible effect: how to see one
        found["message"] = found["message"].replace(
            "Fix: do not make the mistake (the same command without +pitfall).",
            "To see it: the same with dropout (model.dropout=0.3).",
        )
        found["advice"] = advisor.command(["model.dropout=0.3"])
    elif typed is not None:
        from ..report import command_line

        kept = [o for o in typed if o.lstrip("+~").split("=", 1)[0] != "pitfall"]
        found["advice"] = command_line(kept).rstrip()
    return found
