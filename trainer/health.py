"""The training health report: plain-language findings about a finished run, each with the
numbers that support it. It reads only the run's history (per-epoch metrics), so it works the
same on a live run and on a metrics.json written long ago."""

from __future__ import annotations

import math
from typing import Any

MIN_EPOCHS = 3


def _finding(kind: str, severity: str, message: str, **evidence: Any) -> dict[str, Any]:
    return {"kind": kind, "severity": severity, "message": message, "evidence": evidence}


def _series(history: list[dict], key: str) -> list[float]:
    return [h[key] for h in history if key in h and h[key] is not None and math.isfinite(h[key])]


def _pct(new: float, old: float) -> float:
    return 100.0 * (new - old) / abs(old) if old else float("inf")


def diagnose(summary: dict[str, Any], task: str, lr: float) -> list[dict[str, Any]]:
    """Findings for a run summary (as in metrics.json): divergence, overfitting, underfitting,
    learning rate too high or too low, plateau; or a single 'ok' finding."""
    findings: list[dict[str, Any]] = []
    history = summary.get("history") or []
    nonfinite = summary.get("nonfinite")
    if nonfinite:
        a, b = nonfinite["steps"]
        findings.append(
            _finding(
                "divergence",
                "error",
                f"divergence: the training loss became {nonfinite['value']} between optimizer steps {a} and {b} "
                f"(epoch {nonfinite['epoch']}) at learning rate {nonfinite['lr']:.3g}. Lower optimizer.lr to "
                f"{nonfinite['lr'] / 10:.3g} or clip gradients (trainer.grad_clip.norm=1.0).",
                step_from=a,
                step_to=b,
                epoch=nonfinite["epoch"],
                lr=nonfinite["lr"],
                value=nonfinite["value"],
            )
        )
    train, val = _series(history, "loss/train"), _series(history, "loss/val")
    n = min(len(train), len(val))
    if n < MIN_EPOCHS:
        if not findings and history:
            findings.append(
                _finding(
                    "too_short",
                    "info",
                    f"only {len(history)} epoch(s) ran; the report needs at least {MIN_EPOCHS}.",
                    epochs=len(history),
                )
            )
        return findings
    train, val = train[:n], val[:n]
    epochs = [h["epoch"] for h in history][:n]

    # Overfitting: validation loss rising well past its minimum while the training loss keeps falling.
    best = min(range(n), key=lambda i: val[i])
    rising = n - 1 - best
    if rising >= 3 and val[-1] > val[best] * 1.10 and train[-1] < train[best]:
        findings.append(
            _finding(
                "overfitting",
                "warning",
                f"overfitting: val loss rose from {val[best]:.4g} (epoch {epochs[best]}) to {val[-1]:.4g} "
                f"(epoch {epochs[-1]}, {rising} epochs later) while train loss fell from {train[best]:.4g} to "
                f"{train[-1]:.4g}; the final gap is {val[-1] - train[-1]:.4g}. Stop earlier (callbacks=default), "
                "regularise (model.dropout, optimizer.weight_decay) or use more data.",
                best_epoch=epochs[best],
                best_val_loss=val[best],
                final_val_loss=val[-1],
                train_loss_at_best=train[best],
                final_train_loss=train[-1],
                epochs_rising=rising,
                gap=val[-1] - train[-1],
            )
        )

    # Learning rate too high: the training loss rises early, ends higher than it began, or keeps
    # jumping up by more than 2% of where it started (small wiggles of a near-zero loss don't count).
    ups = [i for i in range(1, n) if train[i] - train[i - 1] > 0.02 * abs(train[0])]
    early_rise = train[min(2, n - 1)] > train[0] * 1.05
    ended_higher = train[-1] > train[0] * 1.05
    oscillating = len(ups) >= max(3, 0.25 * (n - 1))
    if not nonfinite and (early_rise or ended_higher or oscillating):
        mean_up = sum(_pct(train[i], train[i - 1]) for i in ups) / max(1, len(ups))
        if ended_higher:
            what = (
                f"the training loss ended higher than it began ({train[0]:.4g} -> {train[-1]:.4g})"
            )
        elif early_rise:
            what = f"the training loss rose in the first epochs ({train[0]:.4g} -> {train[min(2, n - 1)]:.4g})"
        else:
            what = f"the training loss jumped up in {len(ups)} of {n - 1} epochs (by {mean_up:.0f}% on average)"
        findings.append(
            _finding(
                "lr_too_high",
                "warning",
                f"learning rate too high? {what} at lr {lr:.3g}. Try optimizer.lr={lr / 10:.3g} or find a "
                "rate with mode=lr_find.",
                first_train_loss=train[0],
                final_train_loss=train[-1],
                epochs_loss_rose=len(ups),
                mean_rise_pct=mean_up,
                lr=lr,
            )
        )

    # Learning rate too low: the training loss barely moves.
    change = _pct(train[-1], train[0])
    acc = _series(history, "accuracy/train")
    solved = (acc and acc[-1] >= 0.99) or train[-1] < 1e-3
    if n >= 5 and abs(change) < 5.0 and not solved:
        findings.append(
            _finding(
                "lr_too_low",
                "warning",
                f"learning rate too low? train loss moved {change:+.1f}% in {n} epochs ({train[0]:.4g} -> "
                f"{train[-1]:.4g}) at lr {lr:.3g}. Try optimizer.lr={lr * 10:.3g} or find a rate with mode=lr_find.",
                first_train_loss=train[0],
                final_train_loss=train[-1],
                change_pct=change,
                epochs=n,
                lr=lr,
            )
        )

    # Underfitting: the training metric is still poor, or the run was still improving when it ended.
    metric = "accuracy/train" if task != "regression" else "r2/train"
    scores = _series(history, metric)
    num_classes = (summary.get("dataset") or {}).get("num_classes") or 2
    poor_below = 0.5 + 0.5 / num_classes if task != "regression" else 0.5
    if scores and scores[-1] < poor_below and not any(f["kind"] == "lr_too_high" for f in findings):
        findings.append(
            _finding(
                "underfitting",
                "warning",
                f"underfitting: the final {metric} is {scores[-1]:.3f}, below {poor_below:.2f}. Train longer, raise "
                "optimizer.lr, or use a larger model (model.hidden_sizes).",
                final=scores[-1],
                threshold=poor_below,
            )
        )
    window = max(3, n // 5)
    if summary.get("status") == "completed" and n > window:
        old, new = val[-window - 1], val[-1]
        if best >= n - 2 and _pct(new, old) < -2.0:
            findings.append(
                _finding(
                    "still_improving",
                    "info",
                    f"still improving: val loss fell from {old:.4g} to {new:.4g} ({_pct(new, old):.1f}%) over the "
                    f"last {window} epochs, its best at epoch {epochs[best]} of {epochs[-1]}; more epochs "
                    "(trainer.max_epochs) would likely help.",
                    window=window,
                    val_loss_before=old,
                    val_loss_final=new,
                )
            )

    # Plateau: the monitored metric has not moved for a while (and nothing above explains it).
    monitor = summary.get("monitor") or "loss/val"
    monitored = _series(history, monitor)
    if len(monitored) > window and not findings and summary.get("status") != "stopped_early":
        recent = monitored[-window:]
        spread = max(recent) - min(recent)
        scale = max(abs(sum(recent) / len(recent)), 1e-12)
        if spread / scale < 0.01:
            findings.append(
                _finding(
                    "plateau",
                    "info",
                    f"plateau: {monitor} stayed within {100 * spread / scale:.2f}% of {recent[-1]:.4g} over the last "
                    f"{window} epochs; a schedule (scheduler=cosine or plateau) or a larger model may help.",
                    window=window,
                    spread=spread,
                    value=recent[-1],
                )
            )

    if not findings:
        gap = val[best] - train[best]
        findings.append(
            _finding(
                "ok",
                "info",
                f"no problems found: val loss reached {val[best]:.4g} at epoch {epochs[best]} with a train/val gap "
                f"of {gap:.4g}.",
                best_epoch=epochs[best],
                best_val_loss=val[best],
                gap=gap,
            )
        )
    return findings
