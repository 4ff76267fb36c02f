"""Backup tests: a database of their own on the session's server (they drop and restore it), and a
versioned bucket of their own on the session's S3 server."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import boto3
import httpx
import pytest

from rapidly import db
from rapidly.config import Settings
from rapidly.storage import Storage, storage_for
from tests.conftest import free_port, with_database

BACKUP_KEY = "backup passphrase of the tests, " + "b" * 16
METRICS_TOKEN = "metrics-token-of-the-tests-" + "m" * 16


def _admin(database_url: str) -> db.Credentials:
    return db.Credentials.from_url(database_url)


async def _run(database_url: str, *statements: str) -> None:
    conn = await _admin(database_url).connect()
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


class Scratch:
    """A database that a test may fill, back up, drop and restore."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.name = f"rapidly_backup_{uuid.uuid4().hex[:10]}"
        self.url = with_database(server_url, self.name)

    async def create(self) -> None:
        await _run(self.server_url, f"CREATE DATABASE \"{self.name}\" TEMPLATE template0 ENCODING 'UTF8'")

    async def drop(self) -> None:
        await _run(self.server_url, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    async def recreate(self) -> None:
        """As after losing the database: an empty one of the same name."""
        await self.drop()
        await self.create()

    async def fetchval(self, sql: str, *args: object) -> object:
        conn = await _admin(self.url).connect()
        try:
            return await conn.fetchval(sql, *args)
        finally:
            await conn.close()


@pytest.fixture
async def scratch(database_url: str) -> AsyncIterator[Scratch]:
    database = Scratch(database_url)
    await database.create()
    yield database
    await database.drop()
    with contextlib.suppress(Exception):
        await _run(database_url, f'DROP ROLE IF EXISTS "{database.name}_app"')


@pytest.fixture
def bucket(s3_endpoint: str) -> Iterator[str]:
    """A versioned bucket in eu-north-1 of this test's own; emptied of every version afterwards."""
    name = f"rapidly-backup-{uuid.uuid4().hex[:10]}"
    client = s3_client(s3_endpoint)
    client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-north-1"})
    client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    yield name
    for version in versions(client, name):
        client.delete_object(Bucket=name, Key=version["Key"], VersionId=version["VersionId"])
    client.delete_bucket(Bucket=name)


def s3_client(endpoint: str):  # type: ignore[no-untyped-def]
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="eu-north-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def versions(client, bucket: str, prefix: str = "") -> list[dict]:  # type: ignore[no-untyped-def]
    """Every object version and delete marker in the bucket under the prefix."""
    listed = client.list_object_versions(Bucket=bucket, Prefix=prefix)
    return [*listed.get("Versions", []), *listed.get("DeleteMarkers", [])]


def scratch_settings(settings: Settings, scratch: Scratch, data_dir: Path, **overrides: object) -> Settings:
    return settings.model_copy(
        update={"database_url": scratch.url, "data_dir": data_dir, "backup_key": BACKUP_KEY, **overrides}
    )


@contextlib.asynccontextmanager
async def opened_storage(settings: Settings) -> AsyncIterator[Storage]:
    """The object storage `settings` name, started, and closed afterwards."""
    storage = storage_for(settings)
    await storage.start()
    try:
        yield storage
    finally:
        await storage.close()


def scratch_env(env: dict[str, str], scratch: Scratch, data_dir: Path, **extra: str) -> dict[str, str]:
    return {
        **env,
        "RAPIDLY_DATABASE_URL": scratch.url,
        "RAPIDLY_DATA_DIR": str(data_dir),
        "RAPIDLY_BACKUP_KEY": BACKUP_KEY,
        **extra,
    }


def s3_env(endpoint: str, bucket: str) -> dict[str, str]:
    return {
        "RAPIDLY_STORAGE": "s3",
        "RAPIDLY_S3_ENDPOINT_URL": endpoint,
        "RAPIDLY_S3_BUCKET": bucket,
        "RAPIDLY_S3_REGION": "eu-north-1",
        "RAPIDLY_S3_ACCESS_KEY_ID": "testing",
        "RAPIDLY_S3_SECRET_ACCESS_KEY": "testing",
    }


class Serving:
    """`rapidly serve` in a process of its own, its output kept for scanning."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        self.process: subprocess.Popen | None = None

    async def start(self) -> Serving:
        out = self.log_path.open("a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rapidly", "serve", "--port", str(self.port)],
            env={**self.env, "RAPIDLY_BASE_URL": self.url},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient() as client:
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(f"{self.url}/readyz")).status_code == 200:
                        return self
                assert self.process.poll() is None, self.log()
                assert time.monotonic() < deadline, "rapidly serve did not become ready"
                await asyncio.sleep(0.1)

    def stop(self) -> None:
        assert self.process is not None
        self.process.terminate()
        assert self.process.wait(timeout=30) == 0, self.log()

    def log(self) -> str:
        return self.log_path.read_text()
