"""The loops `scripts/benchmark.py` compares `python -m trainer` with, one per process:

    python scripts/bench_contenders.py <hand|dataloader|lightning> <workload> <epochs> <result.json>

Every contender trains the same model on the same data (the trainer's own split and
standardisation, built before the clock starts), with the same loss, optimizer, batch size and
epochs, and validates after every epoch, as the trainer does. Each writes the wall-clock time of
its first training step, the duration of every epoch, its peak memory and its final validation
metric.
"""

from __future__ import annotations

import json
import resource
import sys
import time

import torch
from torch import nn

WORKLOADS = {
    # name: (dataset, model, batch size, trainer overrides)
    "moons_mlp": ("moons", "mlp", 32, []),
    "digits_cnn": ("digits", "cnn", 64, ["dataset=digits", "model=cnn", "trainer.batch_size=64"]),
    "large_mlp": (
        "classification",
        "mlp",
        256,
        [
            "dataset=classification",
            "dataset.n_samples=30000",
            "model.hidden_sizes=[256,256]",
            "trainer.batch_size=256",
        ],
    ),
}
LR, WEIGHT_DECAY = 3e-3, 0.01


def build(workload: str):
    """Data, model and loss exactly as `python -m trainer` builds them for this workload."""
    from trainer import seed_everything
    from trainer.data import DataModule
    from trainer.data.sklearn_sets import digits
    from trainer.data.synthetic import classification, moons
    from trainer.models import CNN, MLP

    seed_everything(42)  # the trainer seeds before building the data and the model
    dataset, model_name, batch, _ = WORKLOADS[workload]
    source = {
        "moons": lambda: moons(n_samples=1000, noise=0.2, seed=0),
        "digits": digits,
        "classification": lambda: classification(n_samples=30000, seed=0),
    }[dataset]()
    data = DataModule(source, seed=0)
    binary = data.spec.task == "binary"
    outputs = 1 if binary else data.spec.num_classes
    hidden = [256, 256] if workload == "large_mlp" else [64, 64]
    model = (
        CNN(data.spec.input_shape, outputs)
        if model_name == "cnn"
        else MLP(data.spec.input_shape, outputs, hidden_sizes=hidden)
    )
    loss = nn.BCEWithLogitsLoss() if binary else nn.CrossEntropyLoss()
    x_train, y_train = (torch.from_numpy(a) for a in data.arrays["train"])
    x_val, y_val = (torch.from_numpy(a) for a in data.arrays["val"])
    if binary:
        y_train, y_val = y_train.float()[:, None], y_val.float()[:, None]
    return model, loss, batch, binary, (x_train, y_train), (x_val, y_val)


def accuracy(model, x, y, binary) -> float:
    with torch.inference_mode():
        out = model(x)
    predicted = (out[:, 0] > 0).long() if binary else out.argmax(1)
    return (predicted == (y[:, 0].long() if binary else y)).float().mean().item()


def hand(workload: str, epochs: int) -> dict:
    """A tight loop written by hand: tensors in memory, a random permutation, index batches."""
    model, loss_fn, batch, binary, (x, y), (x_val, y_val) = build(workload)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY, fused=True)
    ends, first_step = [], None
    for _ in range(epochs):
        model.train()
        if first_step is None:
            first_step = time.time()
            ends.append(time.perf_counter())
        order = torch.randperm(len(x))
        for i in range(0, len(x), batch):
            idx = order[i : i + batch]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
        model.eval()
        metric = accuracy(model, x_val, y_val, binary)
        ends.append(time.perf_counter())
    return _result(first_step, ends, metric)


def dataloader(workload: str, epochs: int) -> dict:
    """The textbook loop: DataLoader(TensorDataset(...), shuffle=True)."""
    from torch.utils.data import DataLoader, TensorDataset

    model, loss_fn, batch, binary, (x, y), (x_val, y_val) = build(workload)
    train = DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=True)
    val = DataLoader(TensorDataset(x_val, y_val), batch_size=1024)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    ends, first_step = [], None
    for _ in range(epochs):
        model.train()
        if first_step is None:
            first_step = time.time()
            ends.append(time.perf_counter())
        for xb, yb in train:
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
        model.eval()
        correct = total = 0
        with torch.no_grad():
            for xb, yb in val:
                out = model(xb)
                predicted = (out[:, 0] > 0).long() if binary else out.argmax(1)
                correct += (predicted == (yb[:, 0].long() if binary else yb)).sum().item()
                total += len(yb)
        metric = correct / total
        ends.append(time.perf_counter())
    return _result(first_step, ends, metric)


def lightning(workload: str, epochs: int) -> dict:
    """PyTorch Lightning with its defaults: progress bar, logger, checkpoints, model summary."""
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    model, loss_fn, batch, binary, (x, y), (x_val, y_val) = build(workload)
    state = {"first_step": None, "ends": [], "metric": None}

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = model

        def training_step(self, batch_data, batch_idx):
            xb, yb = batch_data
            loss = loss_fn(self.model(xb), yb)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch_data, batch_idx):
            xb, yb = batch_data
            out = self.model(xb)
            predicted = (out[:, 0] > 0).long() if binary else out.argmax(1)
            acc = (predicted == (yb[:, 0].long() if binary else yb)).float().mean()
            self.log("val_loss", loss_fn(out, yb))
            self.log("val_acc", acc)

        def configure_optimizers(self):
            return torch.optim.AdamW(
                self.parameters(), lr=LR, weight_decay=WEIGHT_DECAY, fused=True
            )

    class Timer(L.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            if state["first_step"] is None:
                state["first_step"] = time.time()
                state["ends"].append(time.perf_counter())

        def on_train_epoch_end(self, trainer, pl_module):
            state["ends"].append(time.perf_counter())
            state["metric"] = float(trainer.callback_metrics.get("val_acc", float("nan")))

    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        callbacks=[Timer()],
        num_sanity_val_steps=0,
        default_root_dir=sys.argv[4] + ".lightning",
    )
    trainer.fit(
        Module(),
        DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=True),
        DataLoader(TensorDataset(x_val, y_val), batch_size=1024),
    )
    return _result(state["first_step"], state["ends"], state["metric"])


def _result(first_step, ends, metric) -> dict:
    return {
        "first_step": first_step,
        "epoch_times": [b - a for a, b in zip(ends, ends[1:])],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "val_metric": metric,
    }


if __name__ == "__main__":
    contender, workload, epochs, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    result = {"hand": hand, "dataloader": dataloader, "lightning": lightning}[contender](
        workload, epochs
    )
    with open(out, "w") as handle:
        json.dump(result, handle)
