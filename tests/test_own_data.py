"""Your own data: torch Datasets, arrays, image folders, the DataLoader path, augmentation."""

import contextlib
import os
import time

import numpy as np
import pytest
import torch

from trainer.data import DataModule
from trainer.data.array_files import load_arrays
from trainer.data.augment import Augment
from trainer.data.batches import TensorBatches
from trainer.data.custom import from_dataset
from trainer.data.image_folder import image_folder
from trainer.data.loaders import LoaderDataModule
from trainer.data.loading import DatasetData
from trainer.errors import UserError


class Pairs(torch.utils.data.Dataset):
    """n samples of `shape`; class i % k (or a float target with regression=True)."""

    def __init__(self, n=60, shape=(4,), k=3, regression=False, classes=None, offset=0):
        g = torch.Generator().manual_seed(n + offset)
        self.x = torch.randn(n, *shape, generator=g)
        self.y = [float(i) / n for i in range(n)] if regression else [i % k for i in range(n)]
        if classes is not None:
            self.classes = classes

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def test_a_dataset_gives_task_shape_and_class_names_of_its_classes_attribute():
    data = DataModule(from_dataset(Pairs(60, classes=["a", "b", "c"])))
    spec = data.spec
    assert (spec.task, spec.input_shape, spec.num_classes) == ("multiclass", (4,), 3)
    assert spec.class_names == ["a", "b", "c"]
    assert spec.sizes == {"train": 42, "val": 9, "test": 9}
    assert np.bincount(data.arrays["val"][1]).tolist() == [3, 3, 3]  # stratified


def test_two_classes_are_binary_float_targets_regression_and_hw_is_one_channel():
    assert from_dataset(Pairs(40, k=2)).task == "binary"
    regression = from_dataset(Pairs(40, regression=True))
    assert (regression.task, regression.class_names) == ("regression", None)
    images = from_dataset(Pairs(40, shape=(5, 6)))
    assert images.image_shape == (1, 5, 6) and images.features.shape == (40, 30)


def test_task_classes_and_shape_can_be_set():
    data = from_dataset(Pairs(40, k=2), task="multiclass", num_classes=4, input_shape=[2, 2])
    assert (data.task, data.class_names, data.input_shape) == ("multiclass", list("0123"), (2, 2))
    with pytest.raises(UserError, match=r"dataset.input_shape=\[3, 2\] holds 6 values"):
        from_dataset(Pairs(40), input_shape=[3, 2])


def test_given_val_and_test_datasets_are_used_as_they_are():
    data = DataModule(from_dataset(Pairs(50), val=Pairs(12, offset=1), test=Pairs(9, offset=2)))
    assert data.spec.sizes == {"train": 50, "val": 12, "test": 9}
    assert torch.equal(torch.as_tensor(data.raw_features("test")), Pairs(9, offset=2).x)
    only_val = DataModule(from_dataset(Pairs(50), val=Pairs(12, offset=1)))
    assert only_val.spec.sizes == {"train": 41, "val": 12, "test": 9}  # round(50 * 0.15 / 0.85)


class NotPairs(Pairs):
    def __getitem__(self, i):
        return self.x[i], self.y[i], 0


def test_items_that_are_not_pairs_are_refused_with_what_they_are():
    with pytest.raises(UserError, match=r"NotPairs\[0\] returned a tuple of 3 items"):
        from_dataset(NotPairs(20))
    with pytest.raises(UserError, match="dataset.dataset._target_=mypkg.MyDataset"):
        from_dataset(None)


def test_arrays_npz_keys_and_npy_pairs(tmp_path):
    x, y = np.arange(60, dtype=np.float32).reshape(20, 3), np.arange(20) % 2
    np.savez(tmp_path / "d.npz", feats=x, labels=y, classes=np.array(["no", "yes"]))
    data = load_arrays(str(tmp_path / "d.npz"), x_key="feats", y_key="labels")
    assert data.class_names == ["no", "yes"] and np.array_equal(data.features, x)
    with pytest.raises(UserError, match=r"has no array 'x' \(dataset.x_key\); it holds: feats"):
        load_arrays(str(tmp_path / "d.npz"))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y[:15])
    with pytest.raises(UserError, match=r"x has 20 samples, y has 15"):
        load_arrays(str(tmp_path / "x.npy"), targets_path=str(tmp_path / "y.npy"))


def test_a_large_npy_is_memory_mapped_and_read_through_a_dataloader(tmp_path):
    x = np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.arange(40) % 2)
    source = load_arrays(
        str(tmp_path / "x.npy"), targets_path=str(tmp_path / "y.npy"), memory_limit_mb=1e-4
    )
    assert isinstance(source, DatasetData)
    assert isinstance(source.items.x, np.memmap)
    data = LoaderDataModule(source)
    memory = DataModule(load_arrays(str(tmp_path / "x.npy"), targets_path=str(tmp_path / "y.npy")))
    assert data.spec.sizes == memory.spec.sizes
    np.testing.assert_allclose(data.feature_scaler.mean, memory.feature_scaler.mean, rtol=1e-6)
    np.testing.assert_allclose(data.arrays["val"][0], memory.arrays["val"][0], rtol=1e-5)


def test_dataloader_batches_are_the_in_memory_batches_and_a_resume_reads_the_rest():
    source = from_dataset(Pairs(70), loader="dataloader")
    data, memory = LoaderDataModule(source), DataModule(from_dataset(Pairs(70)))
    split = data.splits_on(torch.device("cpu"), torch.as_tensor)["train"]
    loader = split.train_batches(8, seed=3)
    x, y = map(torch.as_tensor, memory.arrays["train"])
    tensor = TensorBatches(x, y, 8, seed=3)
    assert len(loader) == len(tensor) == 7
    for (a, ya), (b, yb) in zip(loader.batches(2), tensor.batches(2)):
        assert torch.equal(ya, yb)
        torch.testing.assert_close(a, b)
    whole = list(loader.batches(2))
    rest = list(loader.batches(2, start=4))
    assert len(rest) == 3 and all(torch.equal(a[0], b[0]) for a, b in zip(whole[4:], rest))
    ranks = [
        [y for _, y in split.train_batches(8, seed=3, rank=r, world_size=2).batches(2)]
        for r in (0, 1)
    ]
    shares = [
        [y.tolist() for _, y in TensorBatches(x, y, 8, seed=3, rank=r, world_size=2).batches(2)]
        for r in (0, 1)
    ]
    assert [[y.tolist() for y in rank] for rank in ranks] == shares  # each rank its own share
    whole_batches = [yb.tolist() for _, yb in tensor.batches(2)][:6]  # (the 1-sample batch: out)
    assert [a.tolist() + b.tolist() for a, b in zip(*ranks)] == whole_batches


def _png_folder(root, classes=("cat", "dog"), n=4, size=(6, 5)):
    from PIL import Image

    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(n):
            pixels = np.full((*size, 3), 40 * c + i, dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_image_folder_names_classes_by_folder_and_caches_the_decoded_images(tmp_path, caplog):
    root = _png_folder(tmp_path / "images")
    first = image_folder(str(root), size=[3, 4], cache_dir=str(tmp_path / "cache"))
    assert (first.class_names, first.image_shape, first.task) == (
        ["cat", "dog"],
        (3, 3, 4),
        "binary",
    )
    assert first.features[5].reshape(3, 3, 4)[:, 0, 0].tolist() == [41.0, 41.0, 41.0]
    (entry,) = (tmp_path / "cache").glob("*.npy")
    caplog.set_level("INFO", logger="trainer")
    second = image_folder(str(root), size=[3, 4], cache_dir=str(tmp_path / "cache"))
    assert f"decoded cache {entry}" in caplog.text
    assert np.array_equal(first.features, second.features)
    gray = image_folder(str(root), size=[3, 4], color="grayscale", cache=False)
    assert gray.image_shape == (1, 3, 4)


def test_image_folder_errors_name_the_folder_or_file(tmp_path):
    root = _png_folder(tmp_path / "images")
    (root / "empty").mkdir()
    with pytest.raises(UserError, match=rf"the class folder '{root / 'empty'}' holds no images"):
        image_folder(str(root), cache=False)
    (root / "empty" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(
        UserError, match=rf"the image '{root / 'empty' / 'broken.png'}' cannot be read"
    ):
        image_folder(str(root), cache=False)


def test_augmentation_is_a_seeded_crop_and_flip_of_each_image():
    x = torch.arange(2 * 1 * 3 * 3, dtype=torch.float32).reshape(2, 9)
    flip = Augment((1, 3, 3), flip=True)
    once, again = flip(x, 0, 1, 5), flip(x, 0, 1, 5)
    assert torch.equal(once, again)
    for a, b in zip(once.reshape(2, 3, 3), x.reshape(2, 3, 3)):
        assert torch.equal(a, b) or torch.equal(a, b.flip(-1))
    crop = Augment((1, 3, 3), crop_padding=1)(x, 0, 1, 5).reshape(2, 3, 3)
    centre = x.reshape(2, 3, 3)[:, 1, 1]
    assert all(c in row.flatten().tolist() for c, row in zip(centre.tolist(), crop))


def test_loader_options_are_checked_and_auto_follows_the_memory_limit():
    from trainer.data.loading import LoaderOptions, choose_loader

    with pytest.raises(UserError, match="dataset.loader='disk' is not one of: auto, memory, da"):
        LoaderOptions("disk")
    with pytest.raises(UserError, match=r"dataset.num_workers=-1 must be a whole number >= 0"):
        LoaderOptions(num_workers=-1)
    assert choose_loader(LoaderOptions(memory_limit_mb=1), 2**20) == "memory"
    assert choose_loader(LoaderOptions(memory_limit_mb=1), 2**20 + 1) == "dataloader"
    assert choose_loader(LoaderOptions("memory", memory_limit_mb=1), 2**30) == "memory"


ORPHAN_SCRIPT = """
import functools, os, sys, time, torch
from trainer.data.custom import from_dataset
from trainer.data.loaders import LoaderDataModule

pairs = [(torch.full((2,), float(i)), i % 2) for i in range(64)]
data = LoaderDataModule(from_dataset(pairs, loader="dataloader", num_workers=2))
split = data.splits_on(torch.device("cpu"), torch.as_tensor)["train"]
loader = split._make_loader()
ours = loader.worker_init_fn


def late_start(worker_id):  # a worker forked just before its parent is killed
    open(os.path.join(sys.argv[1], str(os.getpid())), "w").close()
    time.sleep(3)
    if ours is not None:
        ours(worker_id)


loader.worker_init_fn = late_start
split._loader = loader
split.sampler.lists = [[0, 1, 2, 3]] * 8
print("reading", flush=True)
for _ in loader:
    pass
"""


def test_dataloader_workers_end_when_the_run_is_killed_as_they_start(tmp_path):
    """kill -9 of a run while its DataLoader workers started left them polling forever (torch
    compares os.getppid() with the parent a worker saw at start, and these saw init), holding
    the run's pipes: found by the e2e kill -9 test timing out now and then."""
    import signal
    import subprocess
    import sys

    from helpers import cli_env

    process = subprocess.Popen(
        [sys.executable, "-c", ORPHAN_SCRIPT, str(tmp_path)],
        env=cli_env(), stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    workers: list[int] = []
    try:
        assert process.stdout.readline() == "reading\n"
        deadline = time.time() + 60
        while len(workers) < 2 and time.time() < deadline:
            workers = [int(p.name) for p in tmp_path.iterdir()]
        assert len(workers) == 2
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        deadline = time.time() + 20  # each worker sleeps 3 s before its init function runs
        while time.time() < deadline and any(_alive(pid) for pid in workers):
            time.sleep(0.1)
        assert [pid for pid in workers if _alive(pid)] == []
    finally:
        for pid in workers:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def test_workers_get_the_kernels_signal_only_when_started_from_the_main_thread():
    """PR_SET_PDEATHSIG fires when the thread that started a worker ends: persistent workers
    started from a user's own thread must outlive it."""
    import threading

    from trainer.data.loaders import _watch_parent

    assert _watch_parent()["worker_init_fn"].args == (os.getpid(), True)
    seen = []
    thread = threading.Thread(target=lambda: seen.append(_watch_parent()["worker_init_fn"].args))
    thread.start()
    thread.join()
    assert seen == [(os.getpid(), False)]


def _alive(pid: int) -> bool:
    """A process that has not ended (a zombie has: its parent, init, reaps it soon)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
