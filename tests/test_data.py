"""Data sources, the 70/15/15 split, train-only standardisation, CSV files, batching."""

import numpy as np
import pytest
import torch

from trainer.data import ArrayData, DataModule
from trainer.data.batches import EvalBatches, TensorBatches
from trainer.data.csv_file import load_csv
from trainer.data.splits import Standardizer, split_indices
from trainer.data.synthetic import circles, linear, moons, quadratic
from trainer.errors import UserError


@pytest.mark.parametrize("noise", [None, 0.2])
def test_moons_and_circles_match_scikit_learn_draw_for_draw(noise):
    from sklearn.datasets import make_circles, make_moons

    x, y = make_moons(n_samples=301, noise=noise, random_state=7)
    ours = moons(n_samples=301, noise=noise or 0.0, seed=7)
    np.testing.assert_allclose(ours.features, x.astype(np.float32), rtol=1e-6)
    np.testing.assert_array_equal(ours.targets, y)
    x, y = make_circles(n_samples=300, noise=noise, factor=0.5, random_state=3)
    ours = circles(n_samples=300, noise=noise or 0.0, factor=0.5, seed=3)
    np.testing.assert_allclose(ours.features, x.astype(np.float32), rtol=1e-6)
    np.testing.assert_array_equal(ours.targets, y)


def test_regression_sources_follow_their_formula():
    data = linear(n_samples=2000, noise=0.0, seed=1)
    np.testing.assert_allclose(data.targets, 3 * data.features[:, 0] - 2, atol=1e-5)
    data = quadratic(n_samples=100, noise=0.0)
    np.testing.assert_allclose(data.targets, data.features[:, 0] ** 2, atol=1e-5)
    assert data.task == "regression"


def test_split_is_70_15_15_disjoint_complete_and_seeded():
    train, val, test = split_indices(1000, (0.7, 0.15, 0.15), seed=0)
    assert (len(train), len(val), len(test)) == (700, 150, 150)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(1000))
    again = split_indices(1000, (0.7, 0.15, 0.15), seed=0)
    other = split_indices(1000, (0.7, 0.15, 0.15), seed=1)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again))
    assert not np.array_equal(train, other[0])


def test_stratified_split_keeps_class_proportions():
    labels = np.array([0] * 900 + [1] * 100)
    parts = split_indices(1000, (0.7, 0.15, 0.15), seed=0, stratify=labels)
    assert [len(p) for p in parts] == [700, 150, 150]
    for part in parts:
        assert abs(labels[part].mean() - 0.1) < 0.01


def test_empty_split_is_a_user_error():
    with pytest.raises(UserError, match="data.split"):
        split_indices(12, (0.9, 0.05, 0.05), seed=0)


def test_standardisation_uses_train_statistics_only():
    x = np.arange(100, dtype=np.float32)[:, None] * [1.0, 0.0]  # second column constant
    y = (np.arange(100) % 2).astype(np.int64)
    data = DataModule(ArrayData(x, y, task="binary", name="t", feature_names=["a", "b"]), seed=0)
    train_x = x[data.indices["train"]]
    np.testing.assert_allclose(data.feature_scaler.mean, train_x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(data.arrays["train"][0][:, 0].mean(), 0.0, atol=1e-5)
    np.testing.assert_allclose(data.arrays["train"][0][:, 0].std(), 1.0, atol=1e-4)
    assert np.all(data.arrays["val"][0][:, 1] == 0.0)  # constant column: std 1, maps to 0
    # the validation split is standardised with the train split's statistics, not its own
    val_x = x[data.indices["val"], 0]
    mean, std = train_x[:, 0].mean(), train_x[:, 0].std()
    np.testing.assert_allclose(data.arrays["val"][0][:, 0], (val_x - mean) / std, rtol=1e-5)
    assert abs((val_x.mean() - mean) / std) > 1e-3  # own statistics would have given mean 0


def test_regression_targets_standardised_and_invertible():
    data = DataModule(linear(n_samples=300))
    y_train = data.arrays["train"][1]
    assert abs(float(y_train.mean())) < 1e-5
    original = data.target_scaler.inverse(y_train)[:, 0]
    np.testing.assert_allclose(
        original, data.source.targets[data.indices["train"]], rtol=1e-4, atol=1e-4
    )


def test_missing_values_filled_with_train_mean():
    x = np.array([[1.0], [np.nan], [3.0]] * 10, dtype=np.float32)
    scaler = Standardizer.fit(x[:20])
    assert np.isfinite(scaler.transform(x)).all()
    assert scaler.transform(np.array([[np.nan]]))[0, 0] == pytest.approx(0.0)


def _write(path, text):
    path.write_text(text)
    return str(path)


def test_csv_infers_task_encodes_text_and_reports_bad_columns(tmp_path):
    rows = "\n".join(
        f"{i},{i % 7 * 0.5},{'red' if i % 2 else 'blue'},{'yes' if i % 3 else 'no'}"
        for i in range(60)
    )
    path = _write(tmp_path / "d.csv", "id,size,colour,label\n" + rows + "\n")
    data = load_csv(path, target="label", exclude=["id"])
    assert data.task == "binary" and data.class_names == ["no", "yes"]
    assert data.feature_names == ["size", "colour=blue", "colour=red"]
    assert data.features.shape == (60, 3)
    regression = load_csv(path, target="size")
    assert regression.task == "regression"  # 7 values, but in steps of 0.5: not class labels
    with pytest.raises(UserError, match="Did you mean 'label'"):
        load_csv(path, target="lable")
    with pytest.raises(UserError, match="no such file"):
        load_csv(str(tmp_path / "missing.csv"), target="label")
    with pytest.raises(UserError, match="dataset.path"):
        load_csv(None, target="label")


def test_csv_task_inference_rules(tmp_path):
    many = "\n".join(f"{i * 0.37:.2f},{i * 1.5:.1f}" for i in range(50))
    assert load_csv(_write(tmp_path / "r.csv", "x,y\n" + many), target="y").task == "regression"
    classes = "\n".join(f"{i},{i % 3}" for i in range(50))
    assert load_csv(_write(tmp_path / "c.csv", "x,y\n" + classes), target="y").task == "multiclass"
    with pytest.raises(UserError, match="empty in 1 rows"):
        load_csv(_write(tmp_path / "e.csv", "x,y\n1,2\n3,\n"), target="y")


def test_tensor_batches_cover_an_epoch_once_and_shuffle_by_epoch():
    x = torch.arange(10.0)[:, None]
    batches = TensorBatches(x, torch.arange(10), batch_size=4, seed=1)
    seen = torch.cat([b[1] for b in batches.batches(epoch=1)])
    assert sorted(seen.tolist()) == list(range(10)) and len(batches) == 3
    again = torch.cat([b[1] for b in batches.batches(epoch=1)])
    assert torch.equal(seen, again)
    assert not torch.equal(seen, torch.cat([b[1] for b in batches.batches(epoch=2)]))
    resumed = torch.cat([b[1] for b in batches.batches(epoch=1, start=1)])
    assert torch.equal(resumed, seen[4:])


def test_ddp_shards_split_every_global_batch_between_ranks():
    x = torch.arange(20.0)[:, None]
    y = torch.arange(20)
    single = [b[1] for b in TensorBatches(x, y, 8, seed=0).batches(1)]
    ranks = [list(TensorBatches(x, y, 8, seed=0, rank=r, world_size=2).batches(1)) for r in (0, 1)]
    for i, whole in enumerate(single):
        assert torch.equal(torch.cat([ranks[0][i][1], ranks[1][i][1]]), whole)
    assert TensorBatches(x, y, 8, world_size=2).global_sizes() == [8, 8, 4]
    # a last global batch smaller than the number of ranks would leave a rank empty: dropped
    assert TensorBatches(torch.zeros(17, 1), torch.zeros(17), 8, world_size=2).num_batches == 2
    shards = [EvalBatches(x, y, 3, rank=r, world_size=3) for r in range(3)]
    assert sorted(torch.cat([b[1] for s in shards for b in s.batches()]).tolist()) == list(
        range(20)
    )


def test_images_are_standardised_per_channel_with_train_statistics():
    from trainer.data.sklearn_sets import digits

    data = DataModule(digits())
    raw_train = data.raw_features("train")
    mean, std = data.feature_scaler.mean, data.feature_scaler.std
    assert np.all(mean == mean[0]) and np.all(std == std[0])  # one channel: one mean, one std
    np.testing.assert_allclose(mean[0], raw_train.mean(), rtol=1e-5)
    np.testing.assert_allclose(std[0], raw_train.std(), rtol=1e-5)
    assert float(np.abs(data.arrays["test"][0]).max()) < 5.0  # no pixel far outside training
