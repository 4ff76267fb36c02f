"""Committed artefacts that must stay in step with the code: the SDL and the Dockerfile."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from rapidly.schema import schema

ROOT = Path(__file__).resolve().parent.parent


def venv_tool(name: str) -> str:
    """A tool installed with the test extras, next to this interpreter."""
    found = shutil.which(name, path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    assert found, f"{name} is installed with the test extras"
    return found


def tracked_python_files() -> list[str]:
    """What git tracks, so a developer's untracked scratch file does not fail the suite."""
    listed = subprocess.run(["git", "ls-files", "*.py"], capture_output=True, text=True, cwd=ROOT)  # noqa: S607
    files = listed.stdout.split() if listed.returncode == 0 else []
    return files or [str(ROOT)]


def test_committed_schema_graphql_matches_the_code():
    # given
    committed = (ROOT / "schema.graphql").read_text()

    # when
    exported = schema.as_str() + "\n"

    # then
    assert committed == exported, "schema.graphql is stale: run `rapidly schema > schema.graphql` and commit it"


def test_dockerfile_is_clean_under_hadolint():
    # given
    hadolint = venv_tool("hadolint")

    # when
    result = subprocess.run([hadolint, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True)

    # then
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_runs_as_non_root_without_dev_dependencies():
    # given
    dockerfile = (ROOT / "Dockerfile").read_text()

    # then
    assert dockerfile.count("FROM ") == 2
    assert "USER 10001:10001" in dockerfile
    assert "[test]" not in dockerfile


def test_code_is_clean_under_ruff():
    # given
    ruff = venv_tool("ruff")

    # when
    tracked = tracked_python_files()
    lint = subprocess.run([ruff, "check", "--no-cache", *tracked], capture_output=True, text=True, cwd=ROOT)
    formatting = subprocess.run(
        [ruff, "format", "--check", "--no-cache", *tracked], capture_output=True, text=True, cwd=ROOT
    )

    # then
    assert lint.returncode == 0, lint.stdout
    assert formatting.returncode == 0, formatting.stdout


def test_every_file_the_package_reads_is_in_its_package_data():
    # given: the files under rapidly/ that are not Python (templates, stylesheets, the browser code)
    import tomllib

    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["rapidly"]
    package = ROOT / "rapidly"
    data = [
        path.relative_to(package)
        for path in package.rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
    ]

    # then: a wheel (and so the Docker image) carries each of them
    missing = [str(path) for path in data if not any(path.match(pattern) for pattern in patterns)]
    assert data and missing == []
