"""The training health report: plain-language findings about a finished run, each with the
numbers that support it and, where there is a fix, one command that applies it.

It reads the run's history (per-epoch losses and metrics, the learning rates used, gradient
norms, per-layer too when measured), the task's chance level recorded at set-up
(`baselines.py`), and what ended the run (early stopping, what it restored); no extra training.

    severity  error    the run diverged (NaN/inf)
              warning  a problem that hurt this run's result and has a fix
              info     what the run handled itself, or context
    verdict   "healthy" when no finding is a warning or an error, else the first one's kind

A run of the pitfall lab (metrics.json's `pitfall`) gets a finding of its own first (kind
`pitfall`, a warning: the verdict never calls it healthy), saying what the mistake did; the
other findings describe its symptoms, without fixes of their own (the fix is the pitfall's).

Modules: `baselines` (chance levels), `curves` (the history as series), `facts` (what the run
was: model, callbacks, config, command), `advice` (suggestions that exist in the config),
`rules` and `fitting` (one function per finding), `pitfalls` (the pitfall lab's finding).
"""

from __future__ import annotations

from typing import Any

from . import fitting, rules
from .advice import Advisor
from .baselines import chance_level
from .curves import Curves
from .facts import run_facts
from .pitfalls import pitfall_finding

__all__ = ["KINDS", "chance_level", "diagnose", "diagnose_run", "run_facts", "verdict"]

MIN_EPOCHS = 3
SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}
KINDS = (
    "pitfall",
    "divergence",
    "lr_too_high",
    "exploding_gradients",
    "vanishing_gradients",
    "lr_too_low",
    "no_signal",
    "underfitting",
    "overfitting",
    "still_improving",
    "overfitting_caught",
    "plateau",
    "too_short",
    "no_validation",
    "ok",
)


def verdict(findings: list[dict[str, Any]] | None) -> str:
    """'healthy' when no finding is a warning or an error; else the most severe finding's kind
    (the first of those). Works on the "health" list of any metrics.json."""
    serious = [f for f in findings or [] if f.get("severity") in ("error", "warning")]
    if not serious:
        return "healthy"
    return min(serious, key=lambda f: SEVERITY_ORDER[f["severity"]])["kind"]


def diagnose_run(trainer, summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The findings for a Trainer's run (its summary): `diagnose` with the rate the user set
    and the facts `run_facts` gathers."""
    lr = (summary.get("pitfall") or {}).get("lr_set", trainer.state.base_lr())  # (the lab's x)
    return diagnose(summary, trainer.head.task, lr, run_facts(trainer))


def diagnose(
    summary: dict[str, Any], task: str, lr: float, facts: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Findings for a run summary (as in metrics.json), the most severe first. `lr` is the rate
    the user set (optimizer.lr, before any schedule); `facts` (from `run_facts`) add the model,
    the callbacks, the config the advice must fit and the command it repeats."""
    facts = dict(facts or {})
    curves = Curves.of(summary, task)
    advisor = Advisor(facts, lr, curves.rates(), summary)
    found: list[dict[str, Any]] = []
    if summary.get("nonfinite"):
        found.append(rules.divergence(summary, advisor))
    if summary.get("pitfall"):
        return _with_pitfall(found, curves, summary, facts, advisor)
    if curves.n < MIN_EPOCHS:
        if not found and summary.get("history"):
            found.append(
                rules.finding(
                    "too_short",
                    "info",
                    f"only {len(summary['history'])} epoch(s) ran; the report needs at least "
                    f"{MIN_EPOCHS}.",
                    epochs=len(summary["history"]),
                )
            )
        return _ordered(found, curves, summary)
    if not found:
        found += _diagnose_curves(curves, summary, facts, advisor)
    if not curves.has_val:
        found.append(fitting.no_validation(curves))
    return _ordered(found, curves, summary)


def _with_pitfall(found, curves: Curves, summary, facts, advisor) -> list[dict[str, Any]]:
    """A pitfall-lab run: the pitfall's finding first, then the symptoms the other rules see,
    their fixes left out (each would repeat the mistake: the command keeps the pitfall)."""
    if curves.n >= MIN_EPOCHS and not found:
        found += _diagnose_curves(curves, summary, facts, advisor)
    for symptom in found:
        symptom["message"] = symptom["message"].split(" Fix: ")[0]
        symptom["advice"] = None
    lab = pitfall_finding(summary, curves, advisor)
    return [lab, *sorted(found, key=lambda f: SEVERITY_ORDER[f["severity"]])]


def _diagnose_curves(c: Curves, summary, facts, advisor) -> list[dict[str, Any]]:
    """The rules in order; a cause found first rules out what it explains."""
    found = []
    high = rules.lr_too_high(c, advisor)
    found.append(high)
    found.append(rules.exploding(c, advisor))
    vanish = None if high else rules.vanishing(c, facts, advisor)
    found.append(vanish)
    cause = high or vanish
    low = None if cause else rules.lr_too_low(c, advisor)
    found.append(low)
    cause = cause or low
    small = None if cause else fitting.underfitting(c, facts, advisor)
    found.append(small)
    empty = None if cause or small else fitting.no_signal(c, summary, advisor)
    found.append(empty)
    cause = cause or empty
    if not c.has_val:  # overfitting, still improving, a plateau: seen on validation only
        return [f for f in found if f]
    if not cause:
        found.append(fitting.overfitting(c, summary, advisor))
        if not small:
            found.append(fitting.still_improving(c, summary, advisor))
    if not any(f for f in found if f and f["kind"] != "overfitting_caught"):
        found.append(fitting.plateau(c, summary, advisor))
    return [f for f in found if f]


def _ordered(found, curves: Curves, summary) -> list[dict[str, Any]]:
    """Errors, then warnings, then (when nothing needs doing) the healthy line, then context."""
    found = sorted(found, key=lambda f: SEVERITY_ORDER[f["severity"]])
    if verdict(found) == "healthy" and curves.n >= MIN_EPOCHS and curves.has_val:
        found.insert(0, fitting.healthy(curves, summary))
    return found
