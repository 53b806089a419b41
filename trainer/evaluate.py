"""mode=test: evaluate a checkpoint on the very test split its run used."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from . import report
from .build import build_data, build_model_and_loss, load_stored_run, stored_choices
from .data.splits import require_split
from .files import write_json
from .paths import run_dir_of

log = logging.getLogger("trainer")


def evaluate_checkpoint(cfg: DictConfig, run_dir: Path, overrides: list[str]) -> float | None:
    """The test metrics of a checkpoint, on the very test split its run used."""
    from .loop import Trainer

    path, state, saved = load_stored_run(cfg, "test", overrides)
    data = build_data(saved)  # the saved dataset and split settings give the same test split
    require_split(data.spec.sizes, "test", f"mode=test on {path}", saved.data.split)
    model, loss, _ = build_model_and_loss(
        saved, data.spec, data.class_counts(), stored_choices(saved)
    )
    model.load_state_dict(state["model"])
    trainer = Trainer(
        model,
        loss,
        optimizer=None,
        device=cfg.trainer.device,
        precision=saved.trainer.precision,
        eval_batch_size=cfg.trainer.eval_batch_size,
        monitor=saved.trainer.monitor,
        mode=saved.trainer.mode,
        run_dir=run_dir,
    )
    trainer.setup(data)
    metrics = trainer.evaluate("test")
    source = run_dir_of(path)
    result = {
        "mode": "test",
        "status": "completed",
        "checkpoint": str(path),
        "epoch": state["epoch"],
        "source_run": None if source is None else str(source),
        "test": metrics,
        "dataset": {"name": data.spec.name, "task": data.spec.task, "sizes": data.spec.sizes},
    }
    write_json(result, run_dir / "metrics.json")
    rows = [
        ("checkpoint", f"{path} (epoch {state['epoch']})"),
        ("data", f"{data.spec.name}: test split of {data.spec.sizes['test']} samples"),
        ("test", ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())),
        ("written", str(run_dir / "metrics.json")),
    ]
    report.key_values("test", rows)
    return metrics.get("accuracy", metrics.get("loss"))
