"""Ctrl-C in a terminal (issue 26): the terminal sends SIGINT to every process of the command. It must
end with no traceback, the embedded PostgreSQL stopped and no process left; a second Ctrl-C during
the shutdown ends it at once; and nothing is left half-done (migrations, backups).

Each command runs in a pseudo-terminal of its own (`tests/support/terminal.py`), and Ctrl-C is typed
into it, as someone at the terminal would.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rapidly import db
from tests.conftest import free_port, run_cli
from tests.support.databases import run_sql, scratch_database
from tests.support.terminal import Terminal

ROOT = Path(__file__).resolve().parent.parent
READY = "Application startup complete."
#: What may never appear in a terminal after Ctrl-C.
TRACEBACK_SIGNS = ("Traceback", "KeyboardInterrupt", "CancelledError", "Exception ignored")


@pytest.fixture
def demo_env(env, tmp_path) -> dict[str, str]:
    """The demo's environment: its own data directory (and so its own embedded PostgreSQL)."""
    kept = {k: v for k, v in env.items() if not k.startswith("RAPIDLY_")}
    return {**kept, "RAPIDLY_DATA_DIR": str(tmp_path / "demo")}


@pytest.fixture
def embedded_env(env, tmp_path) -> dict[str, str]:
    """`rapidly serve` out of the box: the embedded PostgreSQL in a data directory of its own."""
    kept = {k: v for k, v in env.items() if not k.startswith("RAPIDLY_")}
    return {
        **kept,
        "RAPIDLY_DATA_DIR": str(tmp_path / "data"),
        "RAPIDLY_DATABASE_COUNTRY": "FI",
        "RAPIDLY_STORAGE_COUNTRY": "FI",
    }


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    opened: list[Terminal] = []
    yield opened
    for terminal in opened:
        terminal.close()


def postgres_running(data_dir: Path) -> bool:
    """The embedded PostgreSQL of this data directory is up (pg_ctl removes the pid file on stop)."""
    return (data_dir / "pg" / "postmaster.pid").exists()


def ended_cleanly(terminal: Terminal, data_dir: Path | None, *, within: float = 30) -> str:
    code = terminal.wait(timeout=within)
    shown = terminal.output()
    assert not any(sign in shown for sign in TRACEBACK_SIGNS), shown[-4000:]
    assert code in (0, 130), (code, shown[-2000:])
    assert terminal.family() == [], [p.name() for p in terminal.family()]
    if data_dir is not None:
        assert not postgres_running(data_dir), "the embedded PostgreSQL is still running"
    return shown


def a_request_under_way(port: int) -> socket.socket:
    """A POST whose body has not all arrived: a graceful stop waits for it."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        b"POST /graphql HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{"
    )
    return sock


@pytest.mark.slow
def test_ctrl_c_ends_the_readme_demo_command_cleanly(demo_env, tmp_path, terminals):
    # given: the README's first command, running
    port = free_port()
    terminal = Terminal([sys.executable, "dev.py", "run", "--port", str(port), "--site-port", str(free_port())],
                        demo_env, cwd=ROOT)  # fmt: skip
    terminals.append(terminal)
    terminal.wait_for(READY, timeout=180)
    assert postgres_running(tmp_path / "demo")

    # when
    terminal.ctrl_c()

    # then
    ended_cleanly(terminal, tmp_path / "demo")


def serving(env: dict[str, str], port: int, workers: int, terminals: list[Terminal]) -> Terminal:
    """`rapidly serve` in a terminal, once each of its processes is ready."""
    terminal = Terminal([sys.executable, "-m", "rapidly", "serve", "--port", str(port), "--workers", str(workers)], env)
    terminals.append(terminal)
    deadline = time.monotonic() + 120
    while terminal.output().count(READY) < workers:
        assert terminal.process.poll() is None and time.monotonic() < deadline, terminal.output()[-3000:]
        time.sleep(0.1)
    return terminal


@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_ends_serve_cleanly(embedded_env, tmp_path, terminals, workers):
    # given
    terminal = serving(embedded_env, free_port(), workers, terminals)

    # when
    terminal.ctrl_c()

    # then
    shown = ended_cleanly(terminal, tmp_path / "data")
    assert shown.count("Application shutdown complete.") == workers


def test_ctrl_c_while_the_processes_of_serve_start_ends_them_cleanly(embedded_env, tmp_path, terminals):
    # given: the supervisor has started its processes, which are still importing and starting
    terminal = Terminal([sys.executable, "-m", "rapidly", "serve", "--port", str(free_port()), "--workers", "2"],
                        embedded_env)  # fmt: skip
    terminals.append(terminal)
    terminal.wait_for("Started parent process", timeout=120)

    # when
    terminal.ctrl_c()

    # then: not one of them prints a traceback
    ended_cleanly(terminal, tmp_path / "data")


def test_ctrl_c_while_serve_starts_lets_the_start_finish_then_stops(embedded_env, tmp_path, terminals):
    """The start (migrations, the erasure journal's replay) is never cut off half-way: Ctrl-C during it
    stops the server once it is done."""
    # given: serve starting
    terminal = Terminal([sys.executable, "-m", "rapidly", "serve", "--port", str(free_port())], embedded_env)
    terminals.append(terminal)
    terminal.wait_for("starting embedded PostgreSQL", timeout=120)

    # when
    terminal.ctrl_c()

    # then
    shown = ended_cleanly(terminal, tmp_path / "data")
    assert shown.index(" ready\n") < shown.index("Shutting down")


@pytest.mark.parametrize("workers", [1, 2])
def test_a_second_ctrl_c_during_the_shutdown_ends_at_once(embedded_env, tmp_path, terminals, workers):
    # given: a request under way, which a graceful stop waits for
    port = free_port()
    terminal = serving(embedded_env, port, workers, terminals)
    held = a_request_under_way(port)

    # when: Ctrl-C, the shutdown waits; Ctrl-C again
    terminal.ctrl_c()
    terminal.wait_for("Shutting down")
    time.sleep(1)
    assert terminal.process.poll() is None, "the first Ctrl-C did not wait for the request under way"
    again = time.monotonic()
    terminal.ctrl_c()

    # then: over at once, as cleanly
    ended_cleanly(terminal, tmp_path / "data", within=10)
    assert time.monotonic() - again < 5
    held.close()


async def test_ctrl_c_during_migrations_lets_them_finish_then_stops(env, database_url, terminals):
    # given: an empty database being migrated, held in the middle (its record of applied migrations
    # locked by another session), so that Ctrl-C surely comes while migrations are under way
    async with scratch_database(database_url, "rapidly_ctrlc") as url:
        holder = await db.Credentials.from_url(url).connect()
        try:
            terminal = Terminal([sys.executable, "-m", "rapidly", "migrate"], {**env, "RAPIDLY_DATABASE_URL": url})
            terminals.append(terminal)
            await asyncio.to_thread(terminal.wait_for, "applied rapidly.")
            transaction = holder.transaction()
            await transaction.start()
            await holder.execute("LOCK TABLE tortoise_migrations IN ACCESS EXCLUSIVE MODE")

            # when
            terminal.ctrl_c()
            await asyncio.sleep(1)
            assert terminal.process.poll() is None, "Ctrl-C cut the migrations short"
            await transaction.rollback()  # the migrations go on

            # then: they finish, it says it stopped after them, and the database is migrated whole
            shown = await asyncio.to_thread(ended_cleanly, terminal, None, within=120)
            assert "stopped after the migrations and checks that were under way" in shown
            assert terminal.process.returncode == 130
            listed = await asyncio.to_thread(run_cli, {**env, "RAPIDLY_DATABASE_URL": url}, "tenant", "list")
            assert listed.returncode == 0, listed.stderr  # refused while any migration is pending
        finally:
            await holder.close()


async def test_ctrl_c_during_a_backup_leaves_no_backup_half_written(env, database_url, tmp_path, terminals):
    # given: a database big enough that its backup (read at 5 MiB/s at most) takes a few seconds
    async with scratch_database(database_url, "rapidly_ctrlc") as url:
        data = tmp_path / "data"
        backup_env = {
            **env,
            "RAPIDLY_DATABASE_URL": url,
            "RAPIDLY_DATA_DIR": str(data),
            "RAPIDLY_BACKUP_KEY": "a backup passphrase, " + "k" * 20,
        }
        assert (await asyncio.to_thread(run_cli, backup_env, "migrate")).returncode == 0
        await run_sql(
            url,
            "CREATE TABLE filler AS SELECT string_agg(md5(random()::text), '') AS noise "
            "FROM generate_series(1, 400000) GROUP BY (generate_series / 100)",
        )
        terminal = Terminal([sys.executable, "-m", "rapidly", "backup", "create"], backup_env)
        terminals.append(terminal)
        deadline = time.monotonic() + 60
        while not list((data / "backups").glob(".*")):  # its draft: the dump is being written
            assert terminal.process.poll() is None and time.monotonic() < deadline, terminal.output()
            await asyncio.sleep(0.05)

        # when
        terminal.ctrl_c()
        await asyncio.to_thread(terminal.wait, 60)

        # then: no traceback, no backup, and nothing half-written left behind
        shown = terminal.output()
        assert not any(sign in shown for sign in TRACEBACK_SIGNS), shown[-3000:]
        assert "made backup" not in shown
        listed = await asyncio.to_thread(run_cli, backup_env, "backup", "list")
        assert listed.returncode == 0 and listed.stdout.strip() == "", listed.stdout + listed.stderr
        left = [p.name for p in data.rglob("*") if p.is_file() and "backups" in p.parts]
        assert left in ([], ["manifest.json"]), left
