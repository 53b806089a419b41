"""Bad input, as a user types it: every case exits 2 with one clear paragraph that names the bad
key or file, no traceback, and every file that existed before is byte-identical after (a failed
start leaves no run directory behind either)."""

import hashlib
import pickle

import pytest
import torch
from helpers import FAST, run_cli, unsaid

pytestmark = pytest.mark.e2e

LONG = "7" * 20_000 + "x"

CONFIG_CASES = [
    (["optimizer.lr=abc"], "optimizer.lr='abc' is not a number"),
    (["optimizer.lr=-0.1"], "optimizer.lr=-0.1 is out of range: it must be > 0"),
    (["optimizer.weight_decay=-1"], "optimizer.weight_decay=-1 is out of range"),
    (["+optimizer.momentun=0.9"], "optimizer.momentun is not an argument of torch.optim.AdamW"),
    (["optimizer.betas=[0.9]"], "AdamW rejected its settings"),
    (["trainer.max_epochs=abc"], "trainer.max_epochs"),
    (["trainer.batch_size=0"], "trainer.batch_size=0 must be a positive whole number"),
    (["trainer.mode=maximum"], "trainer.mode='maximum' is not valid; choose auto, min or max"),
    (["trainer.precision=fp8"], "trainer.precision=fp8 is not valid"),
    (["trainer.device=tpu"], "trainer.device='tpu' is not a device"),
    (["trainer.on_nonfinite=ignore"], "trainer.on_nonfinite='ignore' is not valid"),
    (["trainer.grad_clip.norm=-1"], "trainer.grad_clip.norm must be positive"),
    (["trainer.limit_train_batches=1.5"], "trainer.limit_train_batches must be a whole number"),
    (["trainer.monitor=f1/val"], "trainer.monitor='f1/val' is not a metric of this run"),
    (["trainer.strategy=ddp"], "trainer.strategy=ddp needs several processes started by torchrun"),
    (["trainer.num_threads=0"], "trainer.num_threads=0 must be >= 1"),
    (["trainer.max_epoch=3"], "trainer.max_epoch"),
    (["data.split=[0.5,0.3,0.3]"], "sum to 1"),
    (["data.split=[1.0,0,0]"], "leaves no validation split, and callbacks.early_stopping"),
    (["mode=fit"], "mode='fit' is not valid; choose one of: train, test, predict, lr_find"),
    (["model.dropout=1.5"], "model.dropout=1.5 is out of range"),
    (["model.activation=swish"], "swish"),
    (["dataset.noise=-1"], "dataset.noise=-1 is out of range"),
    (["dataset=nosuch"], "dataset"),
    (["dataset=diabetes", "loss=cross_entropy"], "regression"),
    (["scheduler=onecycle", "scheduler.max_lr=null"], "needs scheduler.max_lr"),
    (["scheduler=cosine", "scheduler.interval=hourly"], "scheduler.interval='hourly'"),
    (["callbacks.early_stopping.patience=-2"], "callbacks.early_stopping.patience=-2"),
    (["callbacks.early_stopping.monitor=accuracy/val"], "differs from trainer.monitor"),
    (["mode=lr_find", "lr_find.min_lr=10"], "lr_find.min_lr=10.0 and lr_find.max_lr=10.0"),
    (["log_level=LOUD"], "log_level='LOUD' is not a level"),
    (["param_groups.module_lr={nosuch: 0.1}"], "param_groups.module_lr names 'nosuch'"),
    ([f"trainer.seed={LONG}"], "(20003 characters)...777777777777777777x'"),
    (["dataset=csv", "dataset.path=missing.csv", "dataset.target=y"], "missing.csv"),
    (["mode=predict", "trainer.resume=nosuch"], "no such run directory or checkpoint file"),
    (["mode=test"], "mode=test needs the run to use: trainer.resume="),
    (
        ["dataset.path=x.csv"],
        "dataset.path is an option of dataset=arrays and dataset=csv and dataset=image_folder: "
        "add dataset=arrays first",
    ),
    (
        ["dataset=csv", "dataset.path=x.csv", "dataset.exclude=[Culmen Length (mm)]"],
        """need quotes, for Hydra (double) and for the shell (single): 'dataset.exclude=["Culmen""",
    ),
]


def _tree(folder):
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _check(result, before, folder, phrase):
    text = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 2, text[-3000:]
    assert "Traceback" not in text and unsaid(result, phrase) == [], text[-3000:]
    assert text.count("trainer: error") + text.count("trainer: config error") == 1, text
    assert _tree(folder) == before  # nothing changed, nothing new (no run directory either)


@pytest.mark.parametrize(
    "args,phrase", CONFIG_CASES, ids=[" ".join(a)[:40] for a, _ in CONFIG_CASES]
)
def test_bad_config_values(tmp_path, args, phrase):
    before = _tree(tmp_path)
    _check(run_cli([*FAST, *args], tmp_path), before, tmp_path, phrase)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("finished")
    run_cli([*FAST, "trainer.max_epochs=1"], tmp, check=True)
    return tmp / "run"


def _checkpoint_cases(folder, run):
    (folder / "random.pt").write_bytes(bytes(range(256)) * 20)

    class RunsCode:
        def __reduce__(self):
            return (print, ("this ran",))

    (folder / "code.pt").write_bytes(pickle.dumps({"model": RunsCode()}, protocol=2))
    torch.save({"code": RunsCode()}, folder / "zipped_code.pt")
    torch.save({"weights": torch.ones(2)}, folder / "foreign.pt")
    (folder / "empty_run" / ".hydra").mkdir(parents=True)
    return [
        (["mode=test", f"trainer.resume={folder / 'random.pt'}"], "is not a checkpoint"),
        (["mode=test", f"trainer.resume={folder / 'code.pt'}"], "refused to load"),
        (["mode=test", f"trainer.resume={folder / 'zipped_code.pt'}"], "refused to load"),
        (["mode=test", f"trainer.resume={folder / 'foreign.pt'}"], "not a checkpoint written by"),
        ([f"trainer.resume={folder / 'empty_run'}"], "holds no checkpoint"),
        (["mode=predict", f"trainer.resume={run}"], "mode=predict needs predict.input"),
        (
            [f"trainer.resume={run}", "model.hidden_sizes=[8]", f"hydra.run.dir={run}"],
            "trained with another model",
        ),
        (["mode=test", f"trainer.resume={run}", "hydra.run.dir=" + str(run)], "already holds"),
    ]


def test_bad_checkpoints_and_run_directories(tmp_path, run_dir):
    cases = _checkpoint_cases(tmp_path, run_dir)
    (tmp_path / "a_file").write_text("x")
    cases.append(([f"hydra.run.dir={tmp_path / 'a_file' / 'run'}"], "cannot be written"))
    cases.append(([f"hydra.run.dir={run_dir}"], "already holds a completed run"))
    assert len(CONFIG_CASES) + len(cases) >= 40
    for args, phrase in cases:
        before, run_before = _tree(tmp_path), _tree(run_dir)
        result = run_cli([*FAST, *args], tmp_path, run_dir=tmp_path / "new")
        _check(result, before, tmp_path, phrase)
        assert _tree(run_dir) == run_before, args  # .hydra/ and the log included
