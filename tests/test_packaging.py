"""pyproject.toml and environment.yml list the same packages; the package layout installs as designed."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PINS = {"torch==2.13.0", "triton==3.7.1"}  # installed first so a CPU machine never pulls CUDA torch


def normalise(requirement: str) -> str:
    return re.sub(r"\s+", "", requirement).lower()


def test_environment_yml_lists_the_same_packages_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = {normalise(r) for r in project["dependencies"] + extras["dev"] + extras["test"] + extras["distributed"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {normalise(r) for r in pip_section} - PINS
    assert listed == wanted, f"only in environment.yml: {listed - wanted}; only in pyproject: {wanted - listed}"


def test_kernels_install_as_workbench_kernels_not_top_level():
    import workbench.kernels

    assert Path(workbench.kernels.__file__).resolve().parent == ROOT / "kernels"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "kernels" not in project["tool"]["setuptools"]["packages"]
    assert project["tool"]["setuptools"]["package-dir"]["workbench.kernels"] == "kernels"
