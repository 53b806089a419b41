"""mode=predict: predict the rows of a CSV file (or the images of a folder, or the rows of a
.npz / .npy array) with a trained model and the preprocessing saved in its checkpoint.

Columns are matched by name (never by position); extra columns are copied to the output.
Categories match whatever their case and surrounding spaces; one not seen in training is an
error, or with predict.unknown_category=missing a missing value, counted in metrics.json. The
output never replaces the input, and replaces another file only with predict.overwrite=true.
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from . import report
from .build import build_model_and_loss, load_stored_run, stored_choices
from .errors import UserError
from .files import write_json

log = logging.getLogger("trainer")
UNKNOWN_CATEGORY = ("error", "missing")


def _check_settings(settings) -> Path | None:
    """The output path, after refusing settings that would fail late or overwrite a file."""
    from .data.fixes import quoted

    if not settings.input:
        raise UserError(
            "mode=predict needs predict.input=<file>: the rows to predict (a CSV file for "
            "tables, a folder of images for image models, a .npz / .npy file for arrays).",
            key="predict.input",
        )
    if settings.unknown_category not in UNKNOWN_CATEGORY:
        raise UserError(
            f"predict.unknown_category={quoted(settings.unknown_category)} is not one of: "
            f"{', '.join(UNKNOWN_CATEGORY)} (error: stop and name the values; missing: predict "
            "them as missing values and count them).",
            key="predict.unknown_category",
        )
    if not settings.output:
        return None
    output = Path(settings.output).expanduser()
    if output.is_dir() or str(settings.output).endswith(("/", os.sep)):
        raise UserError(
            f"predict.output='{settings.output}' names a directory; name the file to write, e.g. "
            f"predict.output={output / 'predictions.csv'}",
            key="predict.output",
        )
    source = Path(settings.input).expanduser()
    if output.resolve() == source.resolve() or (
        output.exists() and source.exists() and os.path.samefile(output, source)
    ):
        raise UserError(
            f"predict.output='{settings.output}' is the input file; the input is never "
            "overwritten (not even with predict.overwrite=true). Name another file, e.g. "
            f"predict.output={output.with_name(output.stem + '_predictions.csv')}",
            key="predict.output",
        )
    if output.exists() and not settings.overwrite:
        raise UserError(
            f"predict.output='{settings.output}' exists; name another file, or replace it with "
            "predict.overwrite=true.",
            key="predict.output",
        )
    return output


def _used_columns(data_state: dict) -> tuple[list[str], set[str]]:
    """(the columns the model needs, every column its training file had)."""
    from .data.encoding import feature_columns

    columns = data_state.get("columns") or []
    targets = set(data_state.get("target_names") or [])
    if not columns:  # a built-in data set: its feature names are the columns
        return list(data_state["feature_names"]), {*data_state["feature_names"], *targets}
    return [c["name"] for c in feature_columns(columns)], {c["name"] for c in columns} | targets


def _match_columns(header: list[str], needed: list[str], known: set[str], source: str) -> None:
    """One error naming every needed column the input lacks (with likely renames); a notice for
    columns the model never saw."""
    from .data.fixes import closest, quoted, quoted_list

    missing = [name for name in needed if name not in header]
    unknown = [name for name in header if name not in known]
    if missing:
        named = []
        for name in missing:
            guess = closest(name, unknown)
            named.append(quoted(name, 60) + (f" (renamed {quoted(guess, 60)}?)" if guess else ""))
        raise UserError(
            f"predict.input: {source} lacks {len(missing)} of the {len(needed)} columns the "
            f"model was trained on: {', '.join(named[:20])}{' ...' if len(named) > 20 else ''}. "
            "Columns are matched by name, not by position: give the file's columns those names. "
            f"Its columns: {quoted_list(header, 30)}.",
            key="predict.input",
        )
    if unknown:
        log.warning(
            "predict.input: columns the model was not trained on are copied to the output "
            f"unchanged: {quoted_list(unknown, 10)}."
        )


def _features(table, data_state: dict, settings, source: str):
    """(raw feature matrix, {column: {unseen value: count}}) of the input's rows."""
    from .data.encoding import encode_table

    needed, known = _used_columns(data_state)
    _match_columns(table.header, needed, known, source)
    columns = data_state.get("columns") or [
        {"name": name, "kind": "numeric", "treatment": "numeric"} for name in needed
    ]
    encoded = encode_table(
        columns, table.header, table.rows, source, table.lines, settings.unknown_category
    )
    return encoded.features, encoded.unknown


def predict_csv(cfg: DictConfig, run_dir: Path, settings, overrides: list[str]) -> None:
    """Predict every row of predict.input; write the rows with their predictions."""
    from .data.module import DataSpec, Preprocessing
    from .devices import resolve_device
    from .evaluation import model_outputs

    # the run before the settings: without a model to use, nothing else matters
    path, state, saved = load_stored_run(cfg, "predict", overrides)
    out_path = _check_settings(settings) or run_dir / "predictions.csv"
    dataset = saved.get("dataset") or {}
    data_state = state["data"]
    source = Path(settings.input).expanduser()
    images = source.is_dir() and len(data_state["input_shape"]) == 3  # (a table model: CSV)
    if images or source.suffix.lower() in (".npz", ".npy"):
        from .data.inputs import read_inputs

        table = read_inputs(source, data_state, dataset)  # images or arrays: rows named
        raw, unknown, truth = table.features, {}, table.truth
    else:
        table = _read_csv(settings, dataset)
        raw, unknown = _features(table, data_state, settings, f"'{settings.input}'")
        truth = None
    preprocessing = Preprocessing(data_state)
    x = preprocessing.features(raw)

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
    if spec.task == "regression":
        predictions = preprocessing.targets_to_original(outputs.cpu().numpy())
        added_header, added = _regression_columns(predictions, spec.target_names or ["y"])
    elif spec.task == "multilabel":  # 0/1 and the probability, per label
        probabilities = head.probabilities(outputs).cpu().numpy()
        predictions = head.predict(outputs).cpu().numpy()
        added_header = [
            f"{kind}_{name}" for kind in ("prediction", "probability") for name in spec.class_names
        ]
        added = [
            [str(v) for v in bits] + [f"{v:.6f}" for v in p]
            for bits, p in zip(predictions, probabilities)
        ]
    else:
        probabilities = head.probabilities(outputs).cpu().numpy()
        predictions = probabilities.argmax(1)
        classes = spec.class_names
        added_header = ["prediction"] + [f"probability_{c}" for c in classes]
        added = [[classes[k]] + [f"{v:.6f}" for v in p] for k, p in zip(predictions, probabilities)]
    _write_rows(out_path, table.header + added_header, [r + a for r, a in zip(table.rows, added)])

    result_rows = [
        ("checkpoint", f"{path} (epoch {state['epoch']})"),
        ("input", f"{settings.input}: {len(table.rows)} rows"),
        ("written", str(out_path)),
    ]
    result = {
        "mode": "predict",
        "status": "completed",
        "checkpoint": str(path),
        "input": str(settings.input),
        "output": str(out_path),
        "rows": len(table.rows),
    }
    if unknown:
        result["unknown_categories"] = unknown
        result_rows.append(("unseen categories", _unknown_text(unknown)))
        log.warning(
            f"predict.input: categories not seen in training, predicted as missing values "
            f"(predict.unknown_category=missing): {_unknown_text(unknown)}."
        )
    target = (spec.target_names or ["target"])[0]  # the column that may hold the answers
    if spec.task == "multilabel" and truth is None and set(spec.target_names) <= set(table.header):
        score = _label_score(table, predictions, spec.class_names)  # the file has the answers
        if score:
            result["score"] = score
            shown = ", ".join(f"{k} {v:.4g}" for k, v in score.items() if "/" not in k)
            result_rows.append(("vs. the labels", shown))
    else:
        if truth is not None:  # an image's class folder, a y array
            target = "class folder" if source.is_dir() else "y"
        elif target in table.header:
            truth = table.column(target)
        score = _score(truth, predictions, spec) if truth is not None else None
        if score:  # the input has the answers: say how good the predictions are
            result["score"] = score
            scores = ", ".join(f"{k} {v:.4g}" for k, v in score.items())
            result_rows.append((f"vs. '{target}'", scores))
    write_json(result, run_dir / "metrics.json")
    report.key_values("predict", result_rows)


def _read_csv(settings, dataset):
    from .data.table import read_table

    table = read_table(
        settings.input,
        dataset.get("delimiter", ","),
        key="predict.input",
        encoding=dataset.get("encoding", "utf-8"),
    )
    if not table.rows:
        raise UserError(f"predict.input: '{settings.input}' has no data rows.", key="predict.input")
    return table


def _regression_columns(
    values: np.ndarray, targets: list[str]
) -> tuple[list[str], list[list[str]]]:
    """`prediction` (one target) or `prediction_<target>` per target, and each row's values."""
    names = ["prediction"] if len(targets) == 1 else [f"prediction_{n}" for n in targets]
    rows = [[f"{v:.6g}" for v in np.atleast_1d(row)] for row in values]
    return names, rows


def _write_rows(path: Path, header: list[str], rows: list[list[str]]) -> None:
    """Write the CSV whole or not at all (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    os.replace(partial, path)


def _unknown_text(unknown: dict[str, dict[str, int]]) -> str:
    from .data.fixes import quoted

    return "; ".join(
        f"{quoted(column, 60)}: " + ", ".join(f"{quoted(v)} x{n}" for v, n in values.items())
        for column, values in unknown.items()
    )


def _label_score(table, predictions: np.ndarray, labels: list[str]) -> dict[str, float]:
    """Multi-label metrics over the rows whose every label is given as 0/1."""
    from .data.multilabel import as_bit, label_counts
    from .metrics import classification_metrics

    bits = [[as_bit(cell) for cell in table.column(name)] for name in labels]
    given = [i for i in range(len(table.rows)) if all(b[i] is not None for b in bits)]
    if not given:
        return {}
    truth = np.array([[b[i] for b in bits] for i in given], dtype=np.int64)
    counts = label_counts(truth, predictions[given])
    return classification_metrics(counts, len(given), True, labels)


def _score(truth: list[str], predictions: np.ndarray, spec) -> dict[str, float]:
    """Accuracy, or MAE and RMSE, over the rows whose answer is given (not missing)."""
    from .data.columns import fold, markers_of

    markers = markers_of()
    given = [i for i, cell in enumerate(truth) if cell.lower() not in markers]
    if spec.task != "regression":
        if not given:
            return {}
        names = [fold(spec.class_names[k]) for k in predictions]
        return {"accuracy": float(np.mean([names[i] == fold(truth[i]) for i in given]))}
    values = []
    for i in given:
        try:
            values.append((i, float(truth[i])))
        except ValueError:
            continue
    if not values:
        return {}
    index, y = zip(*values)
    err = np.asarray(predictions).reshape(len(truth), -1)[list(index), 0] - np.asarray(y)
    return {"mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err**2)))}
