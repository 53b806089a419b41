"""The package as pip installs it: pyproject.toml lists every package under trainer/."""

from pathlib import Path

import tomllib
from helpers import ROOT


def test_pyproject_lists_every_package_of_the_tree():
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    tree = sorted(
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "trainer").rglob("__init__.py")
        if "__pycache__" not in init.parts
    )
    assert sorted(p for p in listed if p != "trainer.conf") == tree
    assert "trainer.conf" in listed  # conf/, shipped inside the package


def test_the_configs_ship_as_package_data():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"] == {"trainer.conf": "conf"}
    assert config["package-data"] == {"trainer.conf": ["*.yaml", "**/*.yaml"]}
    assert Path(ROOT / "conf" / "config.yaml").is_file()
