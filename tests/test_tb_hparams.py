"""Which hyper-parameters get a column in TensorBoard's HParams table, from the files Hydra
writes: a sweep shows what it varies, a single run what its command line set."""

import yaml

from trainer.callbacks.hparams import shown, sweep_keys

HPARAMS = {
    "optimizer.lr": 0.01,
    "trainer.max_epochs": 4,
    "optimizer": "adamw",
    "scheduler": "none",
    "model": "mlp",
    "dataset": "moons",
    "loss": "auto",
    "optimizer.weight_decay": 0.01,
}


def _job(sweep_dir, name, mode, task, sweeper_params=None):
    job = sweep_dir / name
    (job / ".hydra").mkdir(parents=True)
    hydra = {"mode": mode, "sweeper": {"params": sweeper_params}, "overrides": {"task": task}}
    (job / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": hydra}))
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(task))
    return job


def _master(sweep_dir, task):
    sweep_dir.mkdir(parents=True, exist_ok=True)
    hydra = {"overrides": {"task": task}}
    (sweep_dir / "multirun.yaml").write_text(yaml.safe_dump({"hydra": hydra}))


def test_a_grid_sweep_shows_only_the_keys_its_command_line_sweeps(tmp_path):
    _master(tmp_path, ["optimizer.lr=1e-3,1e-2", "trainer.max_epochs=4", "dataset=moons"])
    job = _job(
        tmp_path,
        "1_dataset=moons,optimizer.lr=0.01,trainer.max_epochs=4",
        "MULTIRUN",
        ["optimizer.lr=0.01", "trainer.max_epochs=4", "dataset=moons"],
    )
    assert sweep_keys(job) == {"optimizer.lr"}
    assert shown(HPARAMS, {"optimizer.lr", "trainer.max_epochs", "dataset"}, job) == {
        "optimizer.lr": 0.01
    }


def test_sweeper_params_and_group_sweeps_count_as_varied(tmp_path):
    _master(tmp_path, ["optimizer=adamw,sgd", "+model.dropout=range(0,2)"])
    job = _job(
        tmp_path,
        "0_x",
        "MULTIRUN",
        ["optimizer=adamw", "+model.dropout=0", "optimizer.weight_decay=0.01"],
        sweeper_params={"optimizer.weight_decay": "tag(log, interval(1e-6, 1e-1))"},
    )
    assert sweep_keys(job) == {"optimizer", "model.dropout", "optimizer.weight_decay"}
    assert shown(HPARAMS, set(), job) == {"optimizer": "adamw", "optimizer.weight_decay": 0.01}


def test_an_optuna_job_without_multirun_yaml_uses_the_sweeper_params(tmp_path):
    job = _job(
        tmp_path,
        "3",
        "MULTIRUN",
        ["optimizer.lr=0.01", "trainer.max_epochs=4"],
        sweeper_params={"optimizer.lr": "tag(log, interval(1e-4, 1e-1))"},
    )
    assert sweep_keys(job) == {"optimizer.lr"}
    assert shown(HPARAMS, {"optimizer.lr", "trainer.max_epochs"}, job) == {"optimizer.lr": 0.01}


def test_a_single_run_shows_its_own_overrides_only(tmp_path):
    run = _job(tmp_path, "run", "RUN", ["optimizer.lr=0.01", "model=mlp"])
    assert sweep_keys(run) is None
    assert shown(HPARAMS, {"optimizer.lr", "model"}, run) == {"optimizer.lr": 0.01, "model": "mlp"}
    bare = _job(tmp_path, "bare", "RUN", [])
    assert shown(HPARAMS, set(), bare) == {}


def test_without_hydra_files_varied_decides_or_everything_shows(tmp_path):
    assert shown(HPARAMS, {"optimizer.lr"}, tmp_path) == {"optimizer.lr": 0.01}
    assert shown(HPARAMS, set(), tmp_path) == HPARAMS
