"""A checkpoint is data, never code: a `_target_` read from a file is built only if it is this
tool's own, torch's, or one the user trusts on the command line."""

import hashlib
import textwrap

import pytest
import torch
from helpers import FAST, metrics_of, run_cli

pytestmark = pytest.mark.e2e

ATTACK = "pathlib.Path.touch"  # allowed by Hydra's own blocklist; creates the file it is given


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trained")
    run_cli([*FAST, "trainer.max_epochs=1"], tmp, check=True)
    rows = "x1,x2\n0.5,0.25\n-1.0,0.75\n"
    (tmp / "rows.csv").write_text(rows)
    return tmp


def _tampered(trained, tmp_path, place: str, marker) -> str:
    """A copy of the run's best.pt whose saved config names ATTACK at `place` (a key path)."""
    state = torch.load(trained / "run" / "checkpoints" / "best.pt", weights_only=True)
    node = state["config"]
    *parents, last = place.split(".")
    for key in parents:
        node = node[key]
    node[last] = {"_target_": ATTACK, "_args_": [str(marker)]}
    path = tmp_path / f"tampered-{place}.pt"
    torch.save(state, path)
    return str(path)


def _files(folder):
    return {
        p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize(
    "place,mode",
    [
        ("dataset", "test"),
        ("model", "test"),
        ("loss", "test"),
        ("optimizer", "test"),
        ("scheduler", "test"),
        ("model.block", "test"),
        ("callbacks.early_stopping", "test"),
        ("dataset", "predict"),
        ("loss", "predict"),
        ("model.block", "predict"),
    ],
)
def test_a_tampered_checkpoint_is_refused_before_anything_is_built(trained, tmp_path, place, mode):
    marker = tmp_path / "pwned"
    checkpoint = _tampered(trained, tmp_path, place, marker)
    before = _files(trained)
    extra = [f"predict.input={trained / 'rows.csv'}"] if mode == "predict" else []
    result = run_cli([f"mode={mode}", f"trainer.resume={checkpoint}", *extra], tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    assert f"{place}._target_='{ATTACK}'" in " ".join(output.split())
    assert "trainer.trust_checkpoint_code=true" in " ".join(output.split())
    assert not marker.exists()
    assert _files(trained) == before  # nothing that existed changed


USER_MODULE = """
    import torch
    from torch import nn


    class Net(nn.Module):
        def __init__(self, input_shape, num_outputs, width=8):
            super().__init__()
            self.layers = nn.Sequential(
                nn.Linear(input_shape[0], width), nn.ReLU(), nn.Linear(width, num_outputs)
            )

        def forward(self, x):
            return self.layers(x)
"""


def test_a_users_own_model_needs_trust_to_be_rebuilt(tmp_path):
    (tmp_path / "mymodels.py").write_text(textwrap.dedent(USER_MODULE))
    drop = ["~model.hidden_sizes", "~model.activation", "~model.dropout", "~model.batch_norm"]
    run_cli(
        [*FAST, "trainer.max_epochs=1", "model._target_=mymodels.Net", *drop], tmp_path, check=True
    )
    run_dir = tmp_path / "run"
    refused = run_cli(["mode=test", f"trainer.resume={run_dir}"], tmp_path, run_dir=tmp_path / "t1")
    text = " ".join((refused.stdout + refused.stderr).split())
    assert refused.returncode == 2 and "Traceback" not in text
    assert "model._target_='mymodels.Net'" in text and "model._target_=mymodels.Net" in text

    typed = run_cli(
        ["mode=test", f"trainer.resume={run_dir}", "model._target_=mymodels.Net"],
        tmp_path,
        run_dir=tmp_path / "t2",
        check=True,
    )
    flag = run_cli(
        ["mode=test", f"trainer.resume={run_dir}", "trainer.trust_checkpoint_code=true"],
        tmp_path,
        run_dir=tmp_path / "t3",
        check=True,
    )
    assert metrics_of(tmp_path / "t2")["test"] == metrics_of(tmp_path / "t3")["test"]
    assert metrics_of(tmp_path / "t2")["test"] == metrics_of(run_dir)["test"]
    assert typed.returncode == flag.returncode == 0


def test_a_resume_refuses_targets_its_saved_overrides_bring_in(trained, tmp_path):
    import shutil

    run_dir = tmp_path / "copy"
    shutil.copytree(trained / "run", run_dir)
    overrides = run_dir / ".hydra" / "overrides.yaml"
    marker = tmp_path / "pwned"
    overrides.write_text(
        overrides.read_text()
        + f"- +callbacks.evil._target_={ATTACK}\n- +callbacks.evil._args_=[{marker}]\n"
    )
    before = _files(run_dir)
    result = run_cli(
        ["trainer.resume=" + str(run_dir), "trainer.max_epochs=2"], tmp_path, run_dir=run_dir
    )
    text = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 2 and "Traceback" not in text
    assert f"callbacks.evil._target_='{ATTACK}'" in text
    assert not marker.exists()

    assert _files(run_dir) == before  # .hydra/ and the log included


def test_a_pickled_checkpoint_is_refused_without_running_it(trained, tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "pickled.pt"
    torch.save({"model": Payload(), "format": 2}, path)
    result = run_cli(["mode=test", f"trainer.resume={path}"], tmp_path)
    text = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 2 and "Traceback" not in text
    assert "refused to load" in text and not marker.exists()
