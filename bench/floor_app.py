"""The floor for bench/save_field.py: the smallest reasonable FastAPI + asyncpg endpoint doing the same
upsert into `field_value` as Rapidly's `saveField` (the `saved` step of `rapidly.contacts.service._SAVE`).

No GraphQL, no ORM, no authentication, no validation, no transaction around it, no contact touch and
no event: one pooled connection, one statement. Served by uvicorn in its own process, one worker:

    FLOOR_PG_HOST=... FLOOR_TENANT_ID=... FLOOR_CONTACT_ID=... \
        python -m uvicorn floor_app:app --app-dir bench --workers 1 --no-access-log

POST /save  {"key": "name", "value": "Maija"}  (optionally "contact": "<uuid>", an existing contact of
the tenant; the benchmark gives each client its own, as each Rapidly client has its own contact token.)

It deliberately imports nothing from `rapidly`, so its RSS is that of FastAPI + asyncpg alone. Its
statement is the upsert step of Rapidly's save, without the contact lock and touch around it.

Under row-level security (migration 0008) it names its tenant once per connection, as a session
setting given when it connects: the least the policy can cost, no round trip at all. (Rapidly sets
it per transaction instead, so that a pooled connection never carries a tenant.) A database without
the policy ignores the setting.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import FastAPI
from pydantic import BaseModel

#: The `saved` step of `rapidly.contacts.service._SAVE`, on its own.
UPSERT = """
INSERT INTO field_value (id, tenant_id, contact_id, key, value, updated_at)
VALUES ($1, $2, $3, $4, $5::jsonb, clock_timestamp())
ON CONFLICT (tenant_id, contact_id, key) DO UPDATE
    SET value = excluded.value, updated_at = excluded.updated_at
    WHERE field_value.value IS DISTINCT FROM excluded.value
RETURNING updated_at
"""

TENANT_ID = uuid.UUID(os.environ.get("FLOOR_TENANT_ID", "00000000-0000-0000-0000-000000000000"))
CONTACT_ID = uuid.UUID(os.environ.get("FLOOR_CONTACT_ID", "00000000-0000-0000-0000-000000000000"))


class Save(BaseModel):
    key: str
    value: Any = None
    contact: uuid.UUID | None = None


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    size = int(os.environ.get("FLOOR_POOL_SIZE", "20"))
    app.state.pool = await asyncpg.create_pool(
        host=os.environ.get("FLOOR_PG_HOST") or None,
        port=int(os.environ.get("FLOOR_PG_PORT", "5432")),
        user=os.environ.get("FLOOR_PG_USER", "postgres"),
        password=os.environ.get("FLOOR_PG_PASSWORD") or None,
        database=os.environ.get("FLOOR_PG_DATABASE", "postgres"),
        min_size=1,
        max_size=size,
        server_settings={"rapidly.tenant": str(TENANT_ID)},
    )
    try:
        yield
    finally:
        await app.state.pool.close()


app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)


@app.post("/save")
async def save(body: Save) -> dict[str, Any]:
    async with app.state.pool.acquire() as conn:
        row = await conn.fetchrow(
            UPSERT,
            uuid.uuid4(),
            TENANT_ID,
            body.contact or CONTACT_ID,
            body.key,
            json.dumps(body.value, ensure_ascii=False),
        )
    return {"key": body.key, "updatedAt": row["updated_at"].isoformat() if row else None}


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    async with app.state.pool.acquire() as conn:
        await conn.fetchval("SELECT 1")
    return {"status": "ok"}
