"""A command in a pseudo-terminal of its own, as someone runs it in a terminal window: Ctrl-C is the
terminal's, sent to the command's whole foreground process group."""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import subprocess
import termios
import time
from pathlib import Path

import psutil


def _take_the_terminal() -> None:  # in the child, before exec: its session's controlling terminal
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path | None = None) -> None:
        self._master, slave = pty.openpty()
        self.process = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            preexec_fn=_take_the_terminal,
        )
        os.close(slave)
        os.set_blocking(self._master, False)
        self._seen = bytearray()

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        """Everything the command has written to its terminal so far."""
        while True:
            try:
                chunk = os.read(self._master, 65536)
            except (BlockingIOError, OSError):
                break
            if not chunk:
                break
            self._seen += chunk
        return self._seen.decode(errors="replace").replace("\r\n", "\n")

    def wait_for(self, text: str, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while text not in (seen := self.output()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{text!r} did not appear; the terminal shows:\n{seen[-3000:]}")
            time.sleep(0.1)
        return seen

    def ctrl_c(self) -> None:
        """What the terminal does when Ctrl-C is typed (its line discipline turns ^C into SIGINT to
        the foreground process group)."""
        os.write(self._master, b"\x03")

    def family(self) -> list[psutil.Process]:
        """Every process of the command's session still alive (what Ctrl-C must leave none of)."""
        found = []
        for proc in psutil.process_iter(["pid"]):
            try:
                if os.getsid(proc.pid) == self.process.pid and proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
            except (ProcessLookupError, PermissionError, psutil.Error):
                continue
        return found

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self.output()

    def close(self) -> None:
        """Whatever is left, killed (a test that failed half-way)."""
        for proc in self.family():
            with _quiet():
                proc.send_signal(signal.SIGKILL)
        with _quiet():
            self.process.wait(timeout=10)
        os.close(self._master)


class _quiet:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return True
