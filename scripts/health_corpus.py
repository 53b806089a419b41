"""Calibration corpus for the health report: crafted runs whose problem is known, trained with
the real config groups (composed as the command line composes them, in this one process), and a
confusion table of the finding expected against the one reported.

    python scripts/health_corpus.py                 # every set: tuned, held out, held out 2
    python scripts/health_corpus.py --set tuned     # the runs the thresholds were tuned on
    python scripts/health_corpus.py --only lr_high_adamw,healthy_iris_mlp -v
    python scripts/health_corpus.py --list
    python scripts/health_corpus.py --out DIR --rediagnose   # re-read DIR's runs, train nothing

A run is named right when its main finding (`health_verdict`; for a run without a warning, its
first `info` finding other than "ok", else "healthy") is the expected one; a healthy run is
right when its verdict is "healthy" (early stopping catching overfitting is then fine). The
figures printed last are what the README quotes: named right, and warnings on healthy runs,
for the tuned set and for the held-out sets (cases written after tuning, never tuned on).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's trainer package
# No figures, no per-epoch lines, one thread: the runs are small, the machine may be shared.
FAST = ["logger.figures=false", "~callbacks.progress", "trainer.num_threads=1"]

# (name, expected, overrides); "{out}" is the corpus's output folder, where noise_*.csv
# hold features and targets drawn independently (no signal).
TUNED = [
    ("healthy_moons_mlp", "healthy", ""),
    ("healthy_iris_mlp", "healthy", "dataset=iris"),
    ("healthy_wine_mlp", "healthy", "dataset=wine"),
    ("healthy_breast_cancer_linear", "healthy", "dataset=breast_cancer model=linear"),
    ("healthy_diabetes_mlp", "healthy", "dataset=diabetes"),
    ("healthy_blobs_mlp", "healthy", "dataset=blobs"),
    ("healthy_digits_cnn", "healthy", "dataset=digits model=cnn trainer.max_epochs=20"),
    ("healthy_linear_regression", "healthy", "dataset=linear model=linear"),
    ("healthy_circles_sgd_momentum", "healthy", "dataset=circles optimizer=sgd_momentum"),
    ("healthy_quadratic_cosine", "healthy", "dataset=quadratic scheduler=cosine"),
    (
        "divergence_sgd_regression",
        "divergence",
        "dataset=linear optimizer=sgd optimizer.lr=20 trainer.max_epochs=10",
    ),
    (
        "divergence_onecycle",
        "divergence",
        "optimizer=sgd optimizer.lr=200 scheduler=onecycle dataset=diabetes",
    ),
    ("lr_high_adamw", "lr_too_high", "optimizer.lr=0.5 trainer.max_epochs=30"),
    (
        "lr_high_sgd",
        "lr_too_high",
        "dataset=breast_cancer optimizer=sgd optimizer.lr=2 trainer.max_epochs=30",
    ),
    ("lr_low_adamw", "lr_too_low", "optimizer.lr=1e-5 trainer.max_epochs=15"),
    (
        "lr_low_sgd",
        "lr_too_low",
        "dataset=wine optimizer=sgd optimizer.lr=1e-3 trainer.max_epochs=20",
    ),
    (
        "no_signal_binary",
        "no_signal",
        "dataset=csv dataset.path={out}/noise_binary.csv dataset.target=y trainer.max_epochs=30",
    ),
    (
        "no_signal_regression",
        "no_signal",
        "dataset=csv dataset.path={out}/noise_regression.csv dataset.target=y trainer.max_epochs=30",
    ),
    ("underfit_linear_circles", "underfitting", "dataset=circles model=linear"),
    ("underfit_linear_moons", "underfitting", "model=linear optimizer.lr=0.03"),
    (
        "overfit_no_early_stopping",
        "overfitting",
        "dataset.n_samples=120 dataset.noise=0.35 model.hidden_sizes=[256,256] optimizer.lr=0.01 trainer.max_epochs=100 ~callbacks.early_stopping",
    ),
    (
        "overfit_caught",
        "overfitting_caught",
        "dataset.n_samples=120 dataset.noise=0.35 model.hidden_sizes=[256,256] optimizer.lr=0.01 trainer.max_epochs=100",
    ),
    # max_epochs=50 as before the auto default (which now trains iris to convergence)
    (
        "still_improving_iris_linear",
        "still_improving",
        "dataset=iris model=linear trainer.max_epochs=50",
    ),
    ("still_improving_short", "still_improving", "trainer.max_epochs=6"),
    (
        "plateau_no_early_stopping",
        "plateau",
        "dataset=breast_cancer model=linear optimizer.lr=0.03 trainer.max_epochs=60 ~callbacks.early_stopping",
    ),
    (
        "vanishing_deep_sigmoid",
        "vanishing_gradients",
        "model.activation=sigmoid model.hidden_sizes=[32,32,32,32,32,32] optimizer=sgd optimizer.lr=0.05 trainer.max_epochs=15",
    ),
    (
        "exploding_unscaled_inputs",
        "exploding_gradients",
        "dataset=breast_cancer data.standardize=false optimizer=sgd optimizer.lr=0.01 trainer.grad_clip.norm=1.0 trainer.max_epochs=20",
    ),
]

# Written after the thresholds were set, and never tuned on.
HELD_OUT = [
    ("ho_healthy_breast_cancer_mlp", "healthy", "dataset=breast_cancer"),
    ("ho_healthy_digits_mlp", "healthy", "dataset=digits trainer.max_epochs=20"),
    ("ho_healthy_wine_linear", "healthy", "dataset=wine model=linear"),
    ("ho_healthy_classification_adam", "healthy", "dataset=classification optimizer=adam"),
    (
        "ho_divergence_sgd_diabetes",
        "divergence",
        "dataset=diabetes optimizer=sgd optimizer.lr=100",
    ),
    (
        "ho_lr_high_rmsprop",
        "lr_too_high",
        "dataset=wine optimizer=rmsprop optimizer.lr=0.3 trainer.max_epochs=30",
    ),
    (
        "ho_lr_low_sgd_iris",
        "lr_too_low",
        "dataset=iris optimizer=sgd optimizer.lr=1e-4 trainer.max_epochs=20",
    ),
    (
        "ho_no_signal_multiclass",
        "no_signal",
        "dataset=csv dataset.path={out}/noise_multiclass.csv dataset.target=y trainer.max_epochs=30",
    ),
    ("ho_underfit_linear_quadratic", "underfitting", "dataset=quadratic model=linear"),
    (
        "ho_overfit_diabetes",
        "overfitting",
        "dataset=diabetes model.hidden_sizes=[256,256] optimizer.lr=0.01 trainer.max_epochs=80 ~callbacks.early_stopping",
    ),
    ("ho_still_improving_wine", "still_improving", "dataset=wine trainer.max_epochs=4"),
    (
        "ho_vanishing_deep_tanh",
        "vanishing_gradients",
        "dataset=circles model.activation=sigmoid model.hidden_sizes=[16,16,16,16,16] optimizer=sgd optimizer.lr=0.1 trainer.max_epochs=15",
    ),
]


# A second held-out set, written once the rules were final (after the first held-out run had
# been seen), and run once.
HELD_OUT_2 = [
    ("ho2_healthy_moons_sgd_momentum", "healthy", "optimizer=sgd_momentum"),
    ("ho2_healthy_iris_linear", "healthy", "dataset=iris model=linear optimizer.lr=0.03"),
    ("ho2_healthy_classification_dropout", "healthy", "dataset=classification model.dropout=0.2"),
    ("ho2_healthy_diabetes_linear", "healthy", "dataset=diabetes model=linear optimizer.lr=0.03"),
    (
        "ho2_divergence_sgd_quadratic",
        "divergence",
        "dataset=quadratic optimizer=sgd optimizer.lr=30",
    ),
    (
        "ho2_lr_high_adamw_circles",
        "lr_too_high",
        "dataset=circles optimizer.lr=0.3 trainer.max_epochs=30",
    ),
    (
        "ho2_lr_low_adam_diabetes",
        "lr_too_low",
        "dataset=diabetes optimizer=adam optimizer.lr=1e-5 trainer.max_epochs=20",
    ),
    (
        "ho2_no_signal_regression_wide",
        "no_signal",
        "dataset=csv dataset.path={out}/noise_regression.csv dataset.target=y model.hidden_sizes=[128,128]",
    ),
    (
        "ho2_underfit_tiny_mlp",
        "underfitting",
        "dataset=circles model.hidden_sizes=[2] optimizer.lr=0.03",
    ),
    (
        "ho2_overfit_classification_small",
        "overfitting",
        "dataset=classification dataset.n_samples=150 model.hidden_sizes=[256,256] optimizer.lr=0.01 trainer.max_epochs=80 ~callbacks.early_stopping",
    ),
    (
        "ho2_overfit_caught_breast_cancer",
        "overfitting_caught",
        "dataset=breast_cancer model.hidden_sizes=[256,256] optimizer.lr=0.01 trainer.max_epochs=100",
    ),
    (
        "ho2_still_improving_digits_linear",
        "still_improving",
        "dataset=digits model=linear trainer.max_epochs=5",
    ),
    (
        "ho2_vanishing_sigmoid_wine",
        "vanishing_gradients",
        "dataset=wine model.activation=sigmoid model.hidden_sizes=[32,32,32,32,32,32,32] optimizer=sgd optimizer.lr=0.05 trainer.max_epochs=15",
    ),
    (
        "ho2_plateau_blobs_linear",
        "plateau",
        "dataset=blobs model=linear optimizer.lr=0.05 trainer.max_epochs=60 ~callbacks.early_stopping",
    ),
]


def write_noise_csvs(out: Path) -> None:
    """CSV files whose target is drawn independently of the features."""
    import numpy as np

    rng = np.random.default_rng(0)
    for kind, target in (
        ("binary", lambda n: rng.integers(0, 2, n)),
        ("multiclass", lambda n: rng.integers(0, 4, n)),
        ("regression", lambda n: rng.normal(size=n)),
    ):
        x = rng.normal(size=(600, 6))
        y = target(600)
        lines = ["a,b,c,d,e,f,y"] + [
            ",".join(f"{v:.5f}" for v in row) + f",{t}" for row, t in zip(x, y)
        ]
        (out / f"noise_{kind}.csv").write_text("\n".join(lines) + "\n")


def run_case(name: str, overrides: list[str], out: Path) -> dict:
    """One run, composed and built as `python -m trainer <overrides>` would; its metrics.json."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from trainer.build import build_trainer
    from trainer.config import register_resolvers, validate
    from trainer.errors import UserError
    from trainer.health import run_facts
    from trainer.paths import config_dir

    run_dir = out / name
    overrides = [*overrides.format(out=out).split(), *FAST]
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(
            "config", overrides=[*overrides, f"hydra.run.dir={run_dir}"], return_hydra_config=True
        )
    HydraConfig.instance().set_config(cfg)  # what the command line's run sees
    choices = dict(cfg.hydra.runtime.choices)
    with open_dict(cfg):
        del cfg["hydra"]
    validate(cfg)
    trainer, data = build_trainer(cfg, run_dir, choices, overrides)
    try:
        trainer.fit(data)
        trainer.test(data)
        summary = trainer.finish()
    except UserError as error:  # a diverged run: finish records it, as the CLI does
        summary = trainer.finish(error=error)
    facts = {**run_facts(trainer), "base_lr": trainer.state.base_lr(), "task": trainer.head.task}
    (run_dir / "health_facts.json").write_text(json.dumps(facts, default=str))
    return summary


def rediagnose(name: str, out: Path) -> dict:
    """A finished run's report again, from its metrics.json and facts (no training): for
    iterating on the rules. The figures to quote come from runs, not from this."""
    from trainer.health import diagnose, verdict

    summary = json.loads((out / name / "metrics.json").read_text())
    facts = json.loads((out / name / "health_facts.json").read_text())
    summary["health"] = diagnose(summary, facts["task"], facts["base_lr"], facts)
    summary["health_verdict"] = verdict(summary["health"])
    return summary


def reported(summary: dict) -> str:
    """The main finding: the verdict, or for a run with nothing to fix its first context line."""
    verdict = summary.get("health_verdict", "healthy")
    if verdict != "healthy":
        return verdict
    infos = [f["kind"] for f in summary.get("health") or [] if f["kind"] not in ("ok",)]
    return infos[0] if infos and infos[0] != "too_short" else "healthy"


def judge(expected: str, summary: dict) -> bool:
    if expected == "healthy":
        return summary.get("health_verdict") == "healthy"
    return reported(summary) == expected


@contextlib.contextmanager
def quiet(log: Path):
    """The run's terminal output into a file (file descriptors 1 and 2, rich included)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "w") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


SHORT = {  # column headings of at most 11 characters
    "exploding_gradients": "exploding",
    "vanishing_gradients": "vanishing",
    "overfitting_caught": "of_caught",
    "overfitting": "overfit",
    "still_improving": "still_impr",
    "underfitting": "underfit",
    "lr_too_high": "lr_too_high",
}


def table(rows: list[tuple[str, str, str, bool]]) -> str:
    """The confusion table: expected (rows) against reported (columns), counts."""
    expected = sorted({r[1] for r in rows})
    got = sorted({r[2] for r in rows} | set(expected))
    counts = Counter((r[1], r[2]) for r in rows)
    width = max(len(k) for k in [*got, "expected \\ reported"])
    head = (
        "expected \\ reported".ljust(width) + " " + " ".join(SHORT.get(g, g).rjust(11) for g in got)
    )
    lines = [head]
    for e in expected:
        cells = " ".join(str(counts[(e, g)] or ".").rjust(11) for g in got)
        lines.append(e.ljust(width) + " " + cells)
    return "\n".join(lines)


def figures(rows) -> str:
    right = sum(r[3] for r in rows)
    healthy = [r for r in rows if r[1] == "healthy"]
    alarms = sum(not r[3] for r in healthy)
    return (
        f"named right {right}/{len(rows)} ({100 * right / max(1, len(rows)):.0f}%); "
        f"warnings on healthy runs {alarms}/{len(healthy)}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=("tuned", "heldout", "heldout2", "all"), default="all")
    parser.add_argument("--only", default="", help="comma-separated case names")
    parser.add_argument("--out", default="", help="folder for the runs (default: a temporary one)")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument(
        "--rediagnose", action="store_true", help="re-read the runs in --out; train nothing"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print each run's findings")
    args = parser.parse_args()
    sets = {
        "tuned": [("tuned", TUNED)],
        "heldout": [("held out", HELD_OUT)],
        "heldout2": [("held out 2", HELD_OUT_2)],
    }
    chosen = sets.get(args.set, [s for v in sets.values() for s in v])
    only = {n for n in args.only.split(",") if n}
    if args.list:
        for label, cases in chosen:
            for name, expected, overrides in cases:
                print(f"{label:9} {name:32} {expected:20} {overrides}")
        return 0
    out = Path(args.out or tempfile.mkdtemp(prefix="health_corpus_"))
    out.mkdir(parents=True, exist_ok=True)
    write_noise_csvs(out)
    results = {}
    for label, cases in chosen:
        rows = []
        for name, expected, overrides in cases:
            if only and name not in only:
                continue
            started = time.perf_counter()
            if args.rediagnose:
                summary = rediagnose(name, out)
            else:
                with quiet(out / f"{name}.log"):
                    summary = run_case(name, overrides, out)
            got, ok = reported(summary), judge(expected, summary)
            rows.append((name, expected, got, ok))
            took = time.perf_counter() - started
            print(
                f"{'ok ' if ok else 'XX '} {name:32} expected {expected:20} got {got:20} {took:5.1f}s"
            )
            if args.verbose or not ok:
                for f in summary.get("health") or []:
                    print(f"      {f['severity']:7} {f['message']}")
                    if f.get("advice"):
                        print(f"              try: {f['advice']}")
            sys.stdout.flush()
        if rows:
            results[label] = rows
            print(f"\n{label}: confusion table (expected rows, reported columns)")
            print(table(rows) + "\n")
    print(f"runs in {out}")
    for label, rows in results.items():
        print(f"{label:10} {figures(rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
