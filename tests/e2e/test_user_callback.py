"""The README's own callback example, run as the README says: a user callback by `_target_`."""

import re
import shlex

import pytest
from helpers import ROOT, metrics_of, run_cli

from trainer.checkpoints import load_checkpoint

pytestmark = pytest.mark.e2e


def _readme_example() -> tuple[str, list[str]]:
    """(the module's code, the command's arguments), as the README shows them."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Callbacks") : text.index("### Early stopping")]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    command = re.search(
        r"```bash\npython -m trainer ('\+callbacks\.stop_at.*?)\n```", section
    ).group(1)
    return code, shlex.split(command)


def test_the_readme_callback_stops_the_run_and_keeps_its_state(tmp_path):
    code, args = _readme_example()
    (tmp_path / "mycallbacks.py").write_text(code)
    run_cli([*args, "logger=none", "trainer.max_epochs=30"], tmp_path, check=True)
    summary = metrics_of(tmp_path / "run")
    reached = next(h["epoch"] for h in summary["history"] if h["accuracy/val"] >= 0.9)
    assert summary["status"] == "stopped_early"
    assert summary["epochs_run"] == reached < 30
    assert summary["stop_reason"].startswith("accuracy/val reached 0.9")
    last = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert last["callbacks"]["stop_at"] == {"reached_at": reached}
