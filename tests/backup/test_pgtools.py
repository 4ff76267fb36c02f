"""Which `pg_dump`, `pg_restore` and `psql` a backup uses, and what they are given."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from rapidly.backup import pgtools
from rapidly.backup.service import _pass_sql
from rapidly.db import Credentials


def installation(root: Path, major: int) -> Path:
    """A directory of fake client tools that print their version as PostgreSQL's do."""
    directory = root / str(major) / "bin"
    directory.mkdir(parents=True)
    for name in pgtools.NAMES:
        tool = directory / name
        tool.write_text(f"#!/bin/sh\necho '{name} (PostgreSQL) {major}.3'\n")
        tool.chmod(0o755)
    return directory


@pytest.fixture
def machine(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """The wheel's tools (18) and Debian's per-version directories, with nothing on PATH."""
    wheel = installation(tmp_path / "wheel", 18)
    monkeypatch.setattr(pgtools, "_embedded_bin", lambda: wheel)
    monkeypatch.setattr(pgtools, "DEBIAN_TOOLS", tmp_path / "debian")
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    return tmp_path


def test_the_servers_own_version_is_preferred_then_the_newest_that_reads_it(machine):
    # given
    debian_15 = installation(machine / "debian", 15)
    debian_16 = installation(machine / "debian", 16)

    # then
    assert pgtools.find(15).directory == debian_15
    assert pgtools.find(16).directory == debian_16
    assert pgtools.find(17).major == 18  # none of its own: the wheel's can read it
    assert pgtools.find(18).major == 18


def test_a_server_newer_than_every_tool_asks_for_its_own(machine):
    with pytest.raises(
        pgtools.ToolMissing, match=r"PostgreSQL 19's client tools \(e.g. the package postgresql-client-19\)"
    ):
        pgtools.find(19)


def test_a_directory_without_all_three_tools_is_not_used(machine):
    # given: Debian's pg_wrapper directory holds pg_dump alone
    partial = installation(machine / "debian", 15)
    (partial / "psql").unlink()

    # then
    assert pgtools.find(15).major == 18


def test_the_tools_get_the_credentials_by_environment_and_none_of_the_services_secrets(monkeypatch):
    # given
    monkeypatch.setenv("RAPIDLY_BACKUP_KEY", "k" * 40)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws secret")
    monkeypatch.setenv("PGOPTIONS", "-c search_path=elsewhere")
    monkeypatch.setenv("PGSSLCERT", "/etc/client.crt")
    owner = Credentials(database="rapidly", user="owner", host="db.example.fi", password="pw", ssl="verify-full")

    # when
    env = pgtools.environment(owner, 18)
    old = pgtools.environment(owner, 15)

    # then
    assert env["PGPASSWORD"] == "pw" and env["PGHOST"] == "db.example.fi" and env["PGSSLMODE"] == "verify-full"
    assert env["PGSSLCERT"] == "/etc/client.crt" and env["PGSSLROOTCERT"] == "system"
    assert "PGSSLROOTCERT" not in old  # libpq before 16 knows no "system"
    assert not {"RAPIDLY_BACKUP_KEY", "AWS_SECRET_ACCESS_KEY", "PGOPTIONS"} & set(env)


SCRIPT = b"""--
-- PostgreSQL database dump
--
\\restrict abc
SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET transaction_timeout = 0;
SET client_encoding = 'UTF8';
CREATE TABLE public.t (note text);
COPY public.t (note) FROM stdin;
SET transaction_timeout = 0;
\\.
"""


@pytest.mark.parametrize("older", [True, False])
def test_the_script_loses_only_the_preamble_line_an_older_server_refuses(older):
    # given
    sink = io.BytesIO()

    # when
    _pass_sql(io.BytesIO(SCRIPT), sink, for_older_server=older)

    # then: a row that reads like the setting is data, and stays
    expected = SCRIPT.replace(b"SET transaction_timeout = 0;\nSET client", b"SET client") if older else SCRIPT
    assert sink.getvalue() == expected
