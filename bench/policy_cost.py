"""What row-level security costs one statement: the same statements with and without the policy.

    .venv/bin/python bench/policy_cost.py [--statements 4000] [--rounds 5] [--database-url URL]

A migrated database with one tenant and 1,000 contacts (bulk-loaded with SQL). One connection at a
time runs `--statements` statements in a closed loop, each kind in turn for `--rounds` rounds (so
that the machine's drift hits every kind alike), and the mean time per statement is printed, as
seen by the client (the round trip included):

- **owner, no policy**: as the database owner (a superuser here: row-level security does not apply);
- **app role, policy**: as the app's role, the tenant set once for the session: the policy's cost;
- **app role, BEGIN + setting + COMMIT**: the tenant set per statement in a transaction of its own,
  as `rapidly.tenancy` does for a statement outside a transaction: the policy and two round trips.

Statements: the save's upsert into `field_value` (a new value each time, so a real write), and a
read of one contact's values (the DataLoader's statement).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import TENANT_SLUG, Bench, table

UPSERT = """
INSERT INTO field_value (id, tenant_id, contact_id, key, value, updated_at)
VALUES (gen_random_uuid(), $1, $2, 'name', $3::jsonb, clock_timestamp())
ON CONFLICT (tenant_id, contact_id, key) DO UPDATE
    SET value = excluded.value, updated_at = excluded.updated_at
    WHERE field_value.value IS DISTINCT FROM excluded.value
RETURNING updated_at
"""
READ = "SELECT key, value, updated_at FROM field_value WHERE tenant_id = $1 AND contact_id = ANY($2::uuid[])"
CONTACTS = 1000


async def run(args: argparse.Namespace, bench: Bench) -> dict[str, dict[str, list[float]]]:
    owner = bench.owner
    app = bench.app_credentials()
    setup = await owner.connect()
    try:
        tenant = await setup.fetchval("SELECT id FROM tenant WHERE slug = $1", TENANT_SLUG)
        await setup.execute(
            "INSERT INTO contact (id, tenant_id, locale, created_at, updated_at, first_saved_at) "
            "SELECT gen_random_uuid(), $1, 'fi', now(), now(), now() FROM generate_series(1, $2)",
            tenant,
            CONTACTS,
        )
        contacts = [r["id"] for r in await setup.fetch("SELECT id FROM contact WHERE tenant_id = $1", tenant)]
    finally:
        await setup.close()
    kinds = {
        "owner, no policy": (owner, None, False),
        "app role, policy": (app, str(tenant), False),
        "app role, BEGIN + setting + COMMIT": (app, None, True),
    }
    results: dict[str, dict[str, list[float]]] = {k: {"upsert": [], "read": []} for k in kinds}
    counter = 0
    for _ in range(args.rounds):
        for kind, (credentials, session_tenant, per_statement) in kinds.items():
            settings = {"rapidly.tenant": session_tenant} if session_tenant else {}
            conn = await asyncpg.connect(**credentials.connect_kwargs(), server_settings=settings)
            try:
                for statement in ("upsert", "read"):
                    started = time.perf_counter()
                    for i in range(args.statements):
                        counter += 1
                        contact = contacts[i % len(contacts)]
                        if per_statement:
                            await conn.execute(f"BEGIN; SELECT set_config('rapidly.tenant', '{tenant}', true)")
                        if statement == "upsert":
                            await conn.fetchrow(UPSERT, tenant, contact, json.dumps(f"Name {counter}"))
                        else:
                            await conn.fetch(READ, tenant, [contact])
                        if per_statement:
                            await conn.execute("COMMIT")
                    results[kind][statement].append((time.perf_counter() - started) / args.statements * 1e6)
            finally:
                await conn.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--statements", type=int, default=4000, help="statements per kind and round (4000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds over the kinds (5)")
    parser.add_argument("--database-url", help="a scratch database rapidly_bench* on your server instead")
    args = parser.parse_args()
    with Bench(args.database_url) as bench:
        bench.setup_database()
        bench.prepare()
        print(f"database: {bench.describe_database()}; {args.rounds} rounds of {args.statements} statements")
        results = asyncio.run(run(args, bench))
        base = results["owner, no policy"]
        rows = [("", "upsert µs", "vs owner", "read µs", "vs owner")]
        for kind, measured in results.items():
            up, rd = statistics.median(measured["upsert"]), statistics.median(measured["read"])
            rows.append(
                (
                    kind,
                    f"{up:.1f}",
                    f"{up - statistics.median(base['upsert']):+.1f}",
                    f"{rd:.1f}",
                    f"{rd - statistics.median(base['read']):+.1f}",
                )
            )
        print(table(rows))
        print("(medians over the rounds of the mean time per statement, round trip included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
