"""Your own data through the real CLI: a Dataset in the current directory, arrays, image folders,
the DataLoader path (kill -9 and resume with workers, DDP), and the errors bad data gets."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import cli_env, metrics_of, run_cli, unsaid

pytestmark = pytest.mark.e2e

FAST = ["trainer.max_epochs=2", "logger=none"]

USER_MODULE = '''
import os
import torch
from torch.utils.data import Dataset


class Blobs(Dataset):
    """Three blobs in 2-d; every read is logged to reads_rank<RANK>.txt when log=true."""

    classes = ["left", "right", "up"]

    def __init__(self, n=200, seed=0, log=False):
        g = torch.Generator().manual_seed(seed)
        self.targets = torch.arange(n) % 3
        centers = torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
        self.x = centers[self.targets] + 0.5 * torch.randn(n, 2, generator=g)
        self.log = log

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        if self.log:
            with open(f"reads_rank{os.environ.get('RANK', 0)}.txt", "a") as f:
                f.write(f"{i}\\n")
        return self.x[i], int(self.targets[i])


class Triples(Blobs):
    def __getitem__(self, i):
        return self.x[i], 0, 1
'''


@pytest.fixture
def user_dir(tmp_path):
    (tmp_path / "mypkg.py").write_text(USER_MODULE)
    return tmp_path


def _checkpoint(run_dir, name="last.pt"):
    return torch.load(Path(run_dir) / "checkpoints" / name, weights_only=True)


def test_a_dataset_in_the_current_directory_trains_with_its_class_names(user_dir):
    result = run_cli(
        ["dataset=custom", "dataset.dataset._target_=mypkg.Blobs", "+dataset.dataset.n=120", *FAST],
        user_dir,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    dataset = metrics_of(result.dir)["dataset"]
    assert dataset.pop("baseline")["classes"] == 3  # (the health report's chance level)
    assert dataset == {
        "name": "Blobs",
        "task": "multiclass",
        "sizes": {"train": 84, "val": 18, "test": 18},
        "num_classes": 3,
    }
    assert _checkpoint(result.dir)["data"]["class_names"] == ["left", "right", "up"]
    assert unsaid(result, "loading in memory, batches indexed on the device") == []


def test_the_console_script_imports_the_users_module_too(user_dir):
    script = Path(sys.executable).with_name("trainer")
    run_dir = user_dir / "run"
    result = subprocess.run(
        [str(script), "dataset=custom", "dataset.dataset._target_=mypkg.Blobs", *FAST,
         f"hydra.run.dir={run_dir}"],
        cwd=user_dir, env=cli_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert metrics_of(run_dir)["dataset"]["sizes"] == {"train": 140, "val": 30, "test": 30}


def test_given_val_and_test_datasets_and_the_dataloader_path(user_dir):
    result = run_cli(
        [
            "dataset=custom",
            "dataset.dataset._target_=mypkg.Blobs",
            "+dataset.val._target_=mypkg.Blobs",
            "+dataset.val.n=33",
            "+dataset.val.seed=1",
            "dataset.loader=dataloader",
            *FAST,
        ],
        user_dir,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # the test split is held out of the train dataset: round(200 * 0.15 / 0.85) = 35
    assert metrics_of(result.dir)["dataset"]["sizes"] == {"train": 165, "val": 33, "test": 35}
    assert unsaid(result, "loading torch DataLoader, 0 workers (dataset.loader=dataloader)") == []


def test_items_that_are_not_pairs_are_a_clean_error(user_dir):
    result = run_cli(["dataset=custom", "dataset.dataset._target_=mypkg.Triples", *FAST], user_dir)
    assert result.returncode == 2
    assert unsaid(result, "Triples[0] returned a tuple of 3 items") == []
    assert "Traceback" not in result.stderr


def test_arrays_npz_trains_and_mismatched_npy_lengths_name_both_files(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 4)).astype(np.float32)
    np.savez(tmp_path / "data.npz", x=x, y=(x[:, 0] > 0).astype(np.int64))
    result = run_cli(["dataset=arrays", "dataset.path=data.npz", *FAST], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert metrics_of(result.dir)["dataset"]["sizes"] == {"train": 70, "val": 15, "test": 15}
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.zeros(90, dtype=np.int64))
    bad = run_cli(
        ["dataset=arrays", "dataset.path=x.npy", "dataset.targets_path=y.npy", *FAST],
        tmp_path,
        run_dir=tmp_path / "bad",
    )
    assert bad.returncode == 2
    assert unsaid(bad, "'x.npy' and 'y.npy' differ in length: x has 100 samples, y has 90") == []
    predicted = run_cli(
        ["mode=predict", f"trainer.resume={result.dir}", "predict.input=data.npz"],
        tmp_path,
        run_dir=tmp_path / "predict",
    )
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    lines = (tmp_path / "predict" / "predictions.csv").read_text().splitlines()
    assert lines[0] == "row,prediction,probability_0,probability_1"
    assert [line.split(",")[0] for line in lines[1:]] == [str(i) for i in range(100)]
    assert set(metrics_of(tmp_path / "predict")["score"]) == {"accuracy"}


def _images(root, n=12):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, name in enumerate(["cat", "dog"]):
        (root / name).mkdir(parents=True)
        for i in range(n):
            pixels = (rng.random((10, 12, 3)) * 100 + 120 * c).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / (f"{i}.png" if i % 2 else f"{i}.jpg"))
    return root


IMAGES = ["dataset=image_folder", "dataset.path=images", "dataset.size=[8,8]", "model=cnn"]


def test_image_folder_trains_a_cnn_and_the_second_run_reads_the_decoded_cache(tmp_path):
    _images(tmp_path / "images")
    args = [*IMAGES, f"dataset.cache_dir={tmp_path / 'cache'}", "dataset.flip=true", *FAST]
    first = run_cli(args, tmp_path, run_dir=tmp_path / "first")
    assert first.returncode == 0, first.stderr[-3000:]
    (entry,) = (tmp_path / "cache").glob("*.npy")
    assert unsaid(first, f"decoded 24 files, cached in {entry}", "input 3x8x8") == []
    second = run_cli(args, tmp_path, run_dir=tmp_path / "second")
    assert unsaid(second, f"24 images in 2 classes; decoded cache {entry}") == []
    assert _checkpoint(tmp_path / "second")["data"]["class_names"] == ["cat", "dog"]
    first_weights = _checkpoint(tmp_path / "first")["model"]
    for name, value in _checkpoint(tmp_path / "second")["model"].items():
        assert torch.equal(value, first_weights[name]), name
    predicted = run_cli(
        ["mode=predict", f"trainer.resume={tmp_path / 'second'}", "predict.input=images"],
        tmp_path,
        run_dir=tmp_path / "predict",
    )
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    lines = (tmp_path / "predict" / "predictions.csv").read_text().splitlines()
    assert lines[0] == "file,prediction,probability_cat,probability_dog"
    names = sorted(
        f"{c}/{i}.{'png' if i % 2 else 'jpg'}" for c in ("cat", "dog") for i in range(12)
    )
    assert [line.split(",")[0] for line in lines[1:]] == names
    assert {line.split(",")[1] for line in lines[1:]} <= {"cat", "dog"}
    assert unsaid(predicted, "vs. 'class folder'  accuracy") == []


def test_image_folder_errors_name_the_folder_and_the_file(tmp_path):
    _images(tmp_path / "images", n=3)
    (tmp_path / "images" / "fox").mkdir()
    empty = run_cli([*IMAGES, "dataset.cache=false", *FAST], tmp_path, run_dir=tmp_path / "a")
    assert empty.returncode == 2
    assert unsaid(empty, f"the class folder '{Path('images') / 'fox'}' holds no images") == []
    (tmp_path / "images" / "fox" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    broken = run_cli([*IMAGES, "dataset.cache=false", *FAST], tmp_path, run_dir=tmp_path / "b")
    assert broken.returncode == 2
    assert (
        unsaid(broken, f"the image '{Path('images') / 'fox' / 'broken.jpg'}' cannot be read") == []
    )


WORKERS = [
    *IMAGES,
    "dataset.loader=dataloader",
    "dataset.num_workers=2",
    "dataset.crop_padding=2",
    "dataset.flip=true",
    "dataset.cache=false",
    "model.dropout=0.3",
    "trainer.batch_size=4",
    "logger=none",
]


def test_kill_9_and_resume_with_two_workers_is_bitwise_the_uninterrupted_run(tmp_path):
    _images(tmp_path / "images", n=20)
    whole = run_cli([*WORKERS, "trainer.max_epochs=4"], tmp_path, run_dir=tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert unsaid(whole, "torch DataLoader, 2 workers, prefetch 2") == []

    run_dir = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "trainer", *WORKERS, "trainer.max_epochs=100000",
         "callbacks.model_checkpoint.every_n_seconds=0", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    last = run_dir / "checkpoints" / "last.pt"
    deadline = time.time() + 240
    while time.time() < deadline and not (
        last.exists() and torch.load(last, weights_only=True)["epoch"] >= 2
    ):
        process.stdout.readline()  # one line per epoch: poll the checkpoint after each
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=60)
    killed_at = torch.load(last, weights_only=True)["epoch"]
    assert 2 <= killed_at < 4
    resumed = run_cli(
        [f"trainer.resume={run_dir}", "trainer.max_epochs=4"], tmp_path, run_dir=run_dir
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected, got = _checkpoint(tmp_path / "whole"), _checkpoint(run_dir)
    assert got["epoch"] == expected["epoch"] == 4
    for name, value in expected["model"].items():
        assert torch.equal(got["model"][name], value), name
    history = [h["loss/train"] for h in metrics_of(run_dir)["history"]]
    assert history == [h["loss/train"] for h in metrics_of(tmp_path / "whole")["history"]]


def test_ddp_with_a_custom_dataset_reads_each_ranks_own_shard(user_dir):
    args = [
        "dataset=custom",
        "dataset.dataset._target_=mypkg.Blobs",
        "+dataset.dataset.log=true",
        "dataset.loader=dataloader",
        *FAST,
    ]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "trainer",
        *args,
        f"hydra.run.dir={user_dir / 'ddp'}",
    ]
    ddp = subprocess.run(
        command, cwd=user_dir, env=cli_env(), capture_output=True, text=True, timeout=300
    )  # fmt: skip
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    reads = [(user_dir / f"reads_rank{r}.txt").read_text().split() for r in (0, 1)]
    for file in user_dir.glob("reads_rank*.txt"):
        file.unlink()
    single = run_cli(args, user_dir, run_dir=user_dir / "single")
    assert single.returncode == 0, single.stderr[-3000:]
    alone = (user_dir / "reads_rank0.txt").read_text().split()
    # every process reads sample 0 (the shape), the train split (statistics) once and one batch
    # of 32 (the forward-pass check); the epochs' batches and the evaluations are shared:
    # 2 epochs x (140 train + 30 val) + 30 test
    own = 1 + 140 + 32
    assert len(alone) == own + 2 * (140 + 30) + 30
    assert [len(r) for r in reads] == [own + (2 * (140 + 30) + 30) // 2] * 2
    shared = [r[own:] for r in reads]
    assert sorted(shared[0] + shared[1], key=int) == sorted(alone[own:], key=int)
    single_w, both = (
        _checkpoint(user_dir / "single")["model"],
        _checkpoint(user_dir / "ddp")["model"],
    )
    for name in single_w:
        torch.testing.assert_close(both[name], single_w[name], rtol=1e-4, atol=1e-6)


def test_bench_dataloader_quick_mode_prints_the_table_and_writes_json(tmp_path):
    import json

    script = Path(__file__).resolve().parents[2] / "scripts" / "bench_dataloader.py"
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, str(script), "--quick", "--json", str(out)],
        cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [
        line.split("|")[1].strip() for line in result.stdout.splitlines() if line.startswith("| ")
    ]
    paths = [
        "in memory",
        "dataloader, 0 workers",
        "dataloader, 2 workers",
        "hand DataLoader, 0 workers",
        "hand DataLoader, 2 workers",
    ]
    assert rows == ["path", *paths]
    saved = json.loads(out.read_text())
    assert list(saved["median"]) == paths
    assert [len(saved["samples_per_s"][p]) for p in paths] == [2] * 5
    assert [len(saved["rounds"][p]) for p in paths] == [1] * 5
    table = {line.split("|")[1].strip(): line for line in result.stdout.splitlines() if "|" in line}
    assert table["path"].rstrip(" |").endswith("vs. hand DataLoader (same workers)")
    assert table["in memory"].split("|")[3].strip() == "1.00x"  # vs. in memory
    for workers in (0, 2):  # each hand loop against itself
        assert table[f"hand DataLoader, {workers} workers"].split("|")[4].strip() == "1.00x"
