"""`rapidly worker` as its own process: killed in the middle of a batch, nothing is lost."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

from tortoise import connections

from rapidly import tenancy
from rapidly.messaging import outbox
from rapidly.messaging.models import MessageStatus, OutboundMessage
from rapidly.plugins import Channel, MessageEvent
from tests.conftest import run_cli
from tests.messaging.servers import start_smtp


async def test_a_worker_killed_mid_batch_loses_nothing(world, env):
    # given: 20 staff emails queued, and a slow SMTP relay
    tenant = await world.tenant("kattohuolto")
    staff = await world.staff("kattohuolto", "anna@kattohuolto.example")
    conn = connections.get("default")
    with tenancy.as_tenant(tenant.id):  # the test's own statements, as its tenant (row-level security)
        for _ in range(20):
            await outbox.enqueue(
                conn,
                tenant_id=tenant.id,
                event=MessageEvent.NEW_CONTACT,
                channel=Channel.EMAIL,
                locale="fi",
                contact_id=None,
                staff_id=staff.id,
            )
    controller, mailbox = start_smtp()
    mailbox.delay = 0.3
    worker_env = {**env, "RAPIDLY_SMTP_URL": f"smtp://127.0.0.1:{controller.port}", "RAPIDLY_SMTP_COUNTRY": "FI"}
    try:
        first = subprocess.Popen(
            [sys.executable, "-m", "rapidly", "worker"],
            env=worker_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        for _ in range(300):
            if len(mailbox.messages) >= 3:
                break
            await asyncio.sleep(0.05)

        # when: killed outright mid-batch; its leases run out; another worker takes over
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
        delivered_before = len(mailbox.messages)
        with tenancy.as_tenant(tenant.id):
            unfinished = await OutboundMessage.filter(status=MessageStatus.PENDING).count()
            await conn.execute_query("UPDATE outbound_message SET next_attempt_at = now() WHERE status = 'PENDING'")
        second = subprocess.Popen(
            [sys.executable, "-m", "rapidly", "worker"],
            env=worker_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        for _ in range(400):
            with tenancy.as_tenant(tenant.id):
                pending = await OutboundMessage.filter(status=MessageStatus.PENDING).count()
            if pending == 0:
                break
            await asyncio.sleep(0.05)
        os.killpg(second.pid, signal.SIGTERM)
        second.wait(10)
    finally:
        controller.stop()

    # then
    assert 3 <= delivered_before < 20 and unfinished > 0
    with tenancy.as_tenant(tenant.id):
        rows = await OutboundMessage.all()
    assert {r.status for r in rows} == {MessageStatus.SENT}
    delivered = {m["Message-ID"] for m in mailbox.messages}
    assert delivered == {f"<{r.id.hex}@rapidly.invalid>" for r in rows}  # every one, at least once


async def test_serve_sends_messages_itself_by_default(world, env):
    # given: `rapidly serve` (its own dispatcher on) and an SMTP relay
    from tests.conftest import free_port

    tenant = await world.tenant("kattohuolto")
    staff = await world.staff("kattohuolto", "anna@kattohuolto.example")
    controller, mailbox = start_smtp()
    serve_env = {**env, "RAPIDLY_SMTP_URL": f"smtp://127.0.0.1:{controller.port}", "RAPIDLY_SMTP_COUNTRY": "FI"}
    server = subprocess.Popen(
        [sys.executable, "-m", "rapidly", "serve", "--port", str(free_port())],
        env=serve_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        # when
        with tenancy.as_tenant(tenant.id):  # the test's own statement, as its tenant (row-level security)
            await outbox.enqueue(
                connections.get("default"),
                tenant_id=tenant.id,
                event=MessageEvent.NEW_CONTACT,
                channel=Channel.EMAIL,
                locale="fi",
                staff_id=staff.id,
            )
        for _ in range(400):
            if mailbox.messages:
                break
            await asyncio.sleep(0.05)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(15)
        controller.stop()

    # then
    assert [m["X-Envelope-To"] for m in mailbox.messages] == ["anna@kattohuolto.example"]
    with tenancy.as_tenant(tenant.id):
        row = await OutboundMessage.get()
    assert row.status == MessageStatus.SENT


def test_a_service_managers_stop_ends_the_worker_cleanly(env):
    # given: a worker, waiting for messages
    assert run_cli(env, "migrate").returncode == 0
    worker = subprocess.Popen(
        [sys.executable, "-m", "rapidly", "worker"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert worker.stdout is not None and "sending queued messages" in worker.stdout.readline()
    time.sleep(1)

    # when: SIGTERM, as systemd or a container runtime stops it
    worker.send_signal(signal.SIGTERM)
    _, errors = worker.communicate(timeout=30)

    # then: it stopped as for Ctrl-C: status 0, no traceback
    assert worker.returncode == 0, errors
    assert "Traceback" not in errors
