"""mode=predict: predict the rows of a CSV file with a trained model and the preprocessing saved
in its checkpoint."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from . import report
from .build import build_model_and_loss, load_stored_run, stored_choices
from .errors import UserError, did_you_mean
from .files import write_json


def _features_from_table(
    header: list[str], rows: list[list[str]], data_state: dict, source: str
) -> np.ndarray:
    from .data.csv_file import _as_float, encode_features

    if data_state["columns"]:  # trained on a CSV: encode the raw columns exactly as in training
        return encode_features(data_state["columns"], header, rows, source)
    names = data_state["feature_names"]
    if all(name in header for name in names):
        picked = [header.index(name) for name in names]
    elif len(header) == len(names):
        picked = list(range(len(names)))  # no names in common but the right width: by position
    else:
        missing = [n for n in names if n not in header]
        raise UserError(
            f"{source} lacks the feature columns the model was trained on: {', '.join(missing[:10])}"
            f"{' ...' if len(missing) > 10 else ''}. Its columns: {', '.join(header)}."
            f"{did_you_mean(missing[0], header)}",
            key="predict.input",
        )
    columns = []
    for i in picked:
        values = _as_float([row[i] for row in rows])
        if values is None:
            raise UserError(
                f"{source}: column '{header[i]}' should be numeric.", key="predict.input"
            )
        columns.append(values)
    return np.stack(columns, axis=1)


def predict_csv(cfg: DictConfig, run_dir: Path, settings, overrides: list[str]) -> None:
    """Predict every row of predict.input; write the rows with their predictions."""
    from .data.csv_file import _as_float, read_table
    from .data.module import Preprocessing
    from .devices import resolve_device
    from .evaluation import model_outputs

    if not settings.input:
        raise UserError(
            "mode=predict needs predict.input=<file.csv>: the rows to predict.", key="predict.input"
        )
    path, state, saved = load_stored_run(cfg, "predict", overrides)
    header, rows = read_table(settings.input, key="predict.input")
    if not rows:
        raise UserError(f"predict.input: '{settings.input}' has no data rows.", key="predict.input")
    data_state = state["data"]
    preprocessing = Preprocessing(data_state)
    x = preprocessing.features(
        _features_from_table(header, rows, data_state, f"'{settings.input}'")
    )

    from .data.module import DataSpec

    spec = DataSpec(
        name=data_state["name"],
        task=data_state["task"],
        input_shape=tuple(data_state["input_shape"]),
        num_classes=data_state["num_classes"],
        num_targets=data_state["num_targets"],
        feature_names=data_state["feature_names"],
        class_names=data_state["class_names"],
        target_names=data_state["target_names"],
    )
    counts = (
        None if data_state.get("class_counts") is None else np.asarray(data_state["class_counts"])
    )
    model, _, head = build_model_and_loss(saved, spec, counts, stored_choices(saved))
    model.load_state_dict(state["model"])
    device = resolve_device(cfg.trainer.device)
    outputs = model_outputs(model.to(device), x, device, cfg.trainer.eval_batch_size)
    out_path = Path(settings.output) if settings.output else run_dir / "predictions.csv"
    target = (spec.target_names or ["target"])[0]  # the column that may hold the answers
    out_header = list(header)
    extra: list[list[str]] = [[] for _ in rows]
    if spec.task == "regression":
        values = preprocessing.targets_to_original(outputs.cpu().numpy())
        names = [f"predicted_{n}" for n in (spec.target_names or ["y"])]
        out_header += names
        for i, row_values in enumerate(values):
            extra[i] = [f"{v:.6g}" for v in np.atleast_1d(row_values)]
        predictions = values
    else:
        probabilities = head.probabilities(outputs).cpu().numpy()
        predictions = probabilities.argmax(1)
        classes = spec.class_names
        out_header += ["prediction"] + [f"probability_{c}" for c in classes]
        for i, (k, p) in enumerate(zip(predictions, probabilities)):
            extra[i] = [classes[k]] + [f"{v:.6f}" for v in p]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with out_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(out_header)
        for row, added in zip(rows, extra):
            writer.writerow(row + added)

    result_rows = [
        ("checkpoint", f"{path} (epoch {state['epoch']})"),
        ("input", f"{settings.input}: {len(rows)} rows"),
        ("written", str(out_path)),
    ]
    result = {
        "mode": "predict",
        "status": "completed",
        "checkpoint": str(path),
        "input": str(settings.input),
        "output": str(out_path),
        "rows": len(rows),
    }
    if target in header:  # the file has the answers: say how good the predictions are
        truth = [row[header.index(target)] for row in rows]
        if spec.task == "regression":
            y = _as_float(truth)
            err = np.asarray(predictions).reshape(len(rows), -1)[:, 0] - y
            score = {
                "mae": float(np.nanmean(np.abs(err))),
                "rmse": float(np.sqrt(np.nanmean(err**2))),
            }
        else:
            score = {
                "accuracy": float(
                    np.mean([spec.class_names[k] == t for k, t in zip(predictions, truth)])
                )
            }
        result["score"] = score
        result_rows.append((f"vs. '{target}'", ", ".join(f"{k} {v:.4g}" for k, v in score.items())))
    write_json(result, run_dir / "metrics.json")
    report.key_values("predict", result_rows)
