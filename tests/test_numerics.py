"""Precision, clipping, accumulation, and what happens when the loss goes NaN."""

import functools
import json
import math

import pytest
import torch
from helpers import make_trainer, moons_data
from torch import nn

from trainer.callbacks import Callback, ModelCheckpoint
from trainer.checkpoints import load_checkpoint
from trainer.errors import NonFiniteError, UserError

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


class DtypeProbe(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(2, 1)
        self.dtypes = set()

    def forward(self, x):
        out = self.layer(x)
        self.dtypes.add(out.dtype)
        return out


def test_bf16_autocast_runs_on_cpu_and_still_learns(tmp_path):
    probe = DtypeProbe()
    trainer, data = make_trainer(
        tmp_path, model=probe, precision="bf16-mixed", max_epochs=5, lr=0.05
    )
    trainer.fit(data)
    assert torch.bfloat16 in probe.dtypes
    assert trainer.record.history[-1]["loss/train"] < trainer.record.history[0]["loss/train"]
    assert probe.layer.weight.dtype == torch.float32  # master weights stay fp32


def test_fp16_on_cpu_is_a_clear_error(tmp_path):
    trainer, data = make_trainer(tmp_path, precision="16-mixed")
    with pytest.raises(UserError, match="bf16-mixed"):
        trainer.fit(data)


class RecordingSGD(torch.optim.SGD):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.norms, self.max_abs = [], []

    def step(self, closure=None):
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        self.norms.append(torch.norm(torch.stack([g.norm() for g in grads])).item())
        self.max_abs.append(max(g.abs().max().item() for g in grads))
        return super().step(closure)


def test_clipping_by_norm_bounds_the_step_and_logs_the_norm_before(tmp_path):
    trainer, data = make_trainer(
        tmp_path,
        optimizer=functools.partial(RecordingSGD, lr=0.1, foreach=True),
        grad_clip={"norm": 0.01},
        max_epochs=1,
    )
    trainer.fit(data)
    assert max(trainer.state.optimizer.norms) <= 0.01 * (1 + 1e-4)
    assert trainer.record.history[-1]["grad_norm"] > 0.01  # measured before clipping
    trainer, data = make_trainer(
        tmp_path / "v",
        optimizer=functools.partial(RecordingSGD, lr=0.1, foreach=True),
        grad_clip={"value": 0.001},
        max_epochs=1,
    )
    trainer.fit(data)
    assert max(trainer.state.optimizer.max_abs) <= 0.001 * (1 + 1e-6)  # float32 of 0.001


def test_accumulating_4_batches_of_b_matches_one_batch_of_4b_for_sgd(tmp_path):
    weights = []
    for batch, accumulate in ((16, 4), (64, 1)):
        trainer, data = make_trainer(
            tmp_path / str(batch),
            data=moons_data(400),
            batch_size=batch,
            accumulate_grad_batches=accumulate,
            max_epochs=3,
            optimizer=functools.partial(torch.optim.SGD, lr=0.3, foreach=True),
        )
        trainer.fit(data)
        assert (
            trainer.state.global_step == 3 * 5
        )  # 280 samples: 4 full steps of 64 and a last one of 24
        weights.append(trainer.state.model.state_dict())
    for name in weights[0]:
        torch.testing.assert_close(weights[0][name], weights[1][name], rtol=1e-5, atol=1e-6)


def test_a_huge_learning_rate_stops_with_the_non_finite_message(tmp_path):
    from trainer.data import DataModule
    from trainer.data.synthetic import linear

    trainer, data = make_trainer(
        tmp_path,
        data=DataModule(linear(n_samples=400)),
        max_epochs=30,
        optimizer=functools.partial(torch.optim.SGD, lr=30.0, foreach=True),
        callbacks={"ckpt": ModelCheckpoint()},
        check_finite_every_n_steps=5,
    )
    with pytest.raises(NonFiniteError) as info:
        trainer.fit(data)
    message = str(info.value)
    assert (
        "non-finite" in message and "learning rate 30" in message and "optimizer steps" in message
    )
    summary = trainer.finish(error=info.value)
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["status"] == "failed" and written["nonfinite"]["lr"] == 30.0
    assert summary["health"][0]["kind"] == "divergence"
    last = tmp_path / "checkpoints" / "last.pt"
    if last.exists():  # whatever was saved is from a good epoch
        state = load_checkpoint(last)
        assert all(torch.isfinite(v).all() for v in state["model"].values())


class NaNEvery(nn.Module):
    """A loss that is NaN for every k-th batch."""

    def __init__(self, k):
        super().__init__()
        self.k, self.calls, self.inner = k, 0, nn.BCEWithLogitsLoss()
        self.tasks, self.kind = ("binary",), "logit"

    def forward(self, out, y):
        loss = self.inner(out, y)
        if torch.is_grad_enabled():  # training batches only
            self.calls += 1
            if self.calls % self.k == 0:
                return loss * float("nan")
        return loss


def test_skip_drops_non_finite_batches_and_counts_them(tmp_path):
    trainer, data = make_trainer(tmp_path, loss=NaNEvery(5), on_nonfinite="skip", max_epochs=2)
    trainer.fit(data)
    assert trainer.record.skipped_steps == (2 * len(trainer.train_batches)) // 5
    assert all(torch.isfinite(p).all() for p in trainer.state.model.parameters())
    assert all(
        math.isfinite(h["loss/train"]) for h in trainer.record.history
    )  # skipped batches not counted
    assert (
        trainer.state.global_step == 2 * len(trainer.train_batches) - trainer.record.skipped_steps
    )


def test_skip_stops_a_run_that_only_skips_as_diverged(tmp_path):
    trainer, data = make_trainer(
        tmp_path, loss=NaNEvery(1), on_nonfinite="skip", max_epochs=5, batch_size=8
    )  # every step non-finite: nothing to train on (35 steps an epoch)
    with pytest.raises(NonFiniteError) as info:
        trainer.fit(data)
    assert info.value.key == "trainer.on_nonfinite"
    assert str(info.value).startswith(
        "trainer.on_nonfinite=skip skipped 35 optimizer steps in a row (up to step 0, epoch 1)"
    )
    summary = trainer.finish(error=info.value)
    assert summary["status"] == "failed" and summary["nonfinite"]["skipped_in_a_row"] == 35
    assert summary["health"][0]["kind"] == "divergence"


def test_stop_is_the_default_for_a_nan_batch(tmp_path):
    trainer, data = make_trainer(tmp_path, loss=NaNEvery(5), max_epochs=2)
    with pytest.raises(NonFiniteError, match="between optimizer steps 0 and"):
        trainer.fit(data)


def test_anomaly_detection_and_deterministic_algorithms_are_switched_on(tmp_path):
    seen = {}

    class Look(Callback):
        def on_train_epoch_start(self, trainer):
            seen["anomaly"] = torch.is_anomaly_enabled()
            seen["deterministic"] = torch.are_deterministic_algorithms_enabled()

    trainer, data = make_trainer(
        tmp_path, callbacks={"look": Look()}, detect_anomaly=True, deterministic=True, max_epochs=1
    )
    trainer.fit(data)
    assert seen == {"anomaly": True, "deterministic": True}
    assert not torch.is_anomaly_enabled()


def test_an_anomaly_found_is_reported_as_the_op_that_made_nan_not_as_a_bug(tmp_path):
    class SqrtOfNegative(torch.nn.Module):  # NaN in the forward pass from the first batch on
        def forward(self, out, y):
            return torch.sqrt(out.mean() - 1e3)

    trainer, data = make_trainer(tmp_path, loss=SqrtOfNegative(), detect_anomaly=True, max_epochs=1)
    with pytest.raises(NonFiniteError) as info:
        trainer.fit(data)
    assert info.value.key == "trainer.detect_anomaly"
    assert str(info.value).startswith(
        "trainer.detect_anomaly: Function 'SqrtBackward0' returned nan values in its 0th output."
        " (batch 1 of the epoch)"
    )


def test_each_job_sets_deterministic_mode_anew_without_needless_imports():
    """A joblib worker reuses its process: a deterministic job must not leak into the next one.
    Setting the mode imports torch._inductor (~2 s), so it is done only when it changes."""
    import subprocess
    import sys

    script = """
import sys
import torch
from omegaconf import OmegaConf
from trainer.run import _reset_process_state

cfg = OmegaConf.create({"trainer": {"deterministic": False, "num_threads": None}})
_reset_process_state(cfg)
assert "torch._inductor" not in sys.modules
cfg.trainer.deterministic = True
_reset_process_state(cfg)
assert torch.are_deterministic_algorithms_enabled()
cfg.trainer.deterministic = False
_reset_process_state(cfg)
assert not torch.are_deterministic_algorithms_enabled()
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


@cuda
def test_fp16_with_grad_scaler_on_cuda(tmp_path):
    trainer, data = make_trainer(
        tmp_path,
        precision="16-mixed",
        device="cuda",
        max_epochs=3,
        lr=0.05,
        grad_clip={"norm": 1.0},
    )
    trainer.fit(data)
    assert trainer.precision.scaler is not None and trainer.precision.scaler.get_scale() > 0
    assert trainer.record.history[-1]["loss/train"] < trainer.record.history[0]["loss/train"]


@cuda
def test_bf16_on_cuda_and_data_stays_on_the_device(tmp_path):
    trainer, data = make_trainer(tmp_path, precision="bf16-mixed", device="cuda", max_epochs=2)
    trainer.fit(data)
    assert trainer.train_batches.x.is_cuda


def test_batch_norm_never_trains_on_one_sample(tmp_path):
    from trainer.models import MLP

    data = moons_data(n_samples=400)  # 280 training samples
    model = MLP((2,), 1, hidden_sizes=[8], batch_norm=True)
    alone, _ = make_trainer(tmp_path, data=data, model=model, batch_size=1)
    with pytest.raises(UserError, match=r"trainer.batch_size=1: the model has BatchNorm layers"):
        alone.fit(data)
    # 280 = 31 x 9 + 1: the last batch of one sample is left out, and the epoch trains
    trainer, _ = make_trainer(tmp_path / "b", data=data, model=model, batch_size=9, max_epochs=1)
    trainer.fit(data)
    assert len(trainer.train_batches) == 31 and trainer.state.global_step == 31


@pytest.mark.parametrize("unused_parameter", [False, True])
def test_measured_gradient_norms_equal_torchs_own_total_and_layer_norms(unused_parameter):
    # One fused measurement gives the total norm (as clip_grad_norm_ computes it) and the
    # first and last weight layers' norms; a parameter without a gradient takes the other path.
    from trainer.precision import Precision
    from trainer.step import TrainStep

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    if unused_parameter:
        model.register_parameter("unused", nn.Parameter(torch.ones(4)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    step = TrainStep(model, nn.CrossEntropyLoss(), optimizer, Precision("32", torch.device("cpu")))
    totals, firsts, lasts = [], [], []
    for _ in range(3):
        x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
        step.zero_grad()
        step.forward_backward(x, y, 0)
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        totals.append(nn.utils.get_total_norm(grads))
        firsts.append(model[0].weight.grad.norm())
        lasts.append(model[4].weight.grad.norm())
        assert step.apply(measure_norm=True)
        assert torch.equal(step.last_norm, totals[-1])  # bitwise: the same ops
    norms = step.epoch_grad_norms()
    assert norms == {
        "grad_norm": pytest.approx(torch.stack(totals).mean().item(), rel=1e-6),
        "grad_norm/first_layer": pytest.approx(torch.stack(firsts).mean().item(), rel=1e-6),
        "grad_norm/last_layer": pytest.approx(torch.stack(lasts).mean().item(), rel=1e-6),
    }
    assert step.epoch_grad_norms() is norms  # read once
