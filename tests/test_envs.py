"""envs/*.yaml must name the same packages and version ranges as pyproject.toml."""

import tomllib

import pytest
import yaml
from conftest import REPO
from packaging.requirements import Requirement

ENV_FILES = sorted((REPO / "envs").glob("*.yaml"))


def normalise(spec: str) -> tuple[str, str]:
    req = Requirement(spec)
    return req.name.lower().replace("_", "-"), str(req.specifier)


def test_there_are_env_files():
    assert ENV_FILES


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_file_is_a_conda_environment_matching_pyproject(path):
    env = yaml.safe_load(path.read_text())
    assert set(env) <= {"name", "channels", "dependencies"} and env["dependencies"]
    assert all(isinstance(c, str) for c in env["channels"])
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict)]
    assert any(d.split("=")[0].split(">")[0] == "python" for d in conda)
    assert "pip" in conda and len(pip_sections) == 1
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = dict(normalise(s) for s in project["dependencies"])
    listed = dict(normalise(s) for s in pip_sections[0])
    assert listed == wanted
