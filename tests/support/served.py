"""`rapidly` commands in processes of their own, as an operator runs them, their output kept."""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil

from tests.conftest import free_port


class Served:
    """`rapidly serve` (or `demo`, with `args`) on a free port, ready once `/readyz` answers 200.

    Standard output and error go to `log_path`; `stop()` sends SIGTERM, as a service manager does.
    """

    def __init__(
        self, env: dict[str, str], log_path: Path, *args: str, timeout: float = 60, host_name: str = "127.0.0.1"
    ) -> None:
        self.port = free_port()
        #: Its address, also its `RAPIDLY_BASE_URL`: `host_name` "localhost" for what browsers allow
        #: only on a domain (passkeys' relying party), listening on 127.0.0.1 all the same.
        self.url = f"http://{host_name}:{self.port}"
        self.log_path = log_path
        command = args or ("serve",)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rapidly", *command, "--port", str(self.port)],
            env={**env, "RAPIDLY_BASE_URL": self.url},
            stdout=log_path.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.http = httpx.Client(base_url=self.url, timeout=30)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.http.get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert self.process.poll() is None and time.monotonic() < deadline, self.log()
            time.sleep(0.1)

    @property
    def pid(self) -> int:
        return self.process.pid

    def gql(self, query: str, variables: dict | None = None, token: str | None = None) -> dict:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers).json()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def rss(self) -> int:
        """Resident memory of the serving process, in bytes."""
        return psutil.Process(self.pid).memory_info().rss

    def open_files(self) -> int:
        """File descriptors the serving process holds (sockets included)."""
        return psutil.Process(self.pid).num_fds()

    def client_connections(self) -> int:
        """Connections from clients the serving process still holds (not its database pool's)."""
        return sum(
            1
            for conn in psutil.Process(self.pid).net_connections("tcp")
            if conn.laddr.port == self.port and conn.status != psutil.CONN_LISTEN
        )

    def metric(self, name: str, token: str) -> float:
        """One unlabelled series of `/metrics` (the sum over its labels when it has some)."""
        # Connection: close, so that the scrape's own connection is not counted as a client's.
        response = self.http.get("/metrics", headers={"Authorization": f"Bearer {token}", "Connection": "close"})
        assert response.status_code == 200, response.status_code
        values = [
            float(line.rsplit(" ", 1)[1])
            for line in response.text.splitlines()
            if line.startswith(name) and line[len(name)] in " {"
        ]
        assert values, f"{name} is not in /metrics"
        return sum(values)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Signal the process (its whole group for SIGINT, as a terminal's Ctrl-C) and wait for its end."""
        self.http.close()
        if self.process.poll() is None:
            if sig == signal.SIGINT:
                os.killpg(self.process.pid, sig)
            else:
                self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)


@contextlib.contextmanager
def without_pauses_of_this_process() -> Iterator[None]:
    """Time a served process's answers without this (the client's) process's garbage collector.

    httpx leaves about a hundred objects in reference cycles per request; late in a full suite run the
    collector, running in the middle of a timed request, stopped the client for 170-420 ms (seen with
    `gc.callbacks`, at the same instants as the slow answers), and that was counted as the server's.
    """
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()
