"""The executor keeps nothing per subscription event (issue 25; docs/upstream.md).

graphql-core 3.3 shares one memo between all events of a subscription, keyed by lists made anew per
event: about 1 KiB kept per event for the subscription's life. `RapidlyExecutor` gives each event its
own. These tests fail when the schema runs on graphql-core's executor as it comes.
"""

from __future__ import annotations

import gc
import tracemalloc

from graphql import build_schema, parse, subscribe
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from rapidly.schema import schema
from rapidly.schema.execution import RapidlyExecutor

EVENTS = 5_000
#: What 5,000 events may leave behind: far less than a byte each (graphql-core alone: about 5 MB).
ALLOWED_BYTES = 64 * 1024

STANDALONE = build_schema(
    """
    type Query { noop: String }
    type Event { seq: Int! kind: String! contactId: ID! }
    type Subscription { events: Event! }
    """
)


async def _growth_over_events(executor_class: type) -> int:
    """Bytes still allocated after a subscription delivered `EVENTS` events, the subscription alive
    (once it ends, graphql-core's memo goes with it)."""

    async def source():  # type: ignore[no-untyped-def]
        seq = 0
        while True:
            yield {"events": {"seq": seq, "kind": "FIELD_SAVED", "contactId": "c"}}
            seq += 1

    stream = subscribe(
        STANDALONE,
        parse("subscription { events { seq kind contactId } }"),
        root_value={"events": source()},
        executor_class=executor_class,
    )
    first = await anext(stream)  # type: ignore[arg-type]
    assert first.data == {"events": {"seq": 0, "kind": "FIELD_SAVED", "contactId": "c"}}
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for seq in range(1, EVENTS + 1):
            result = await anext(stream)  # type: ignore[arg-type]
            assert result.data["events"]["seq"] == seq and not result.errors
        del result
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        await stream.aclose()  # type: ignore[union-attr]


def test_the_schema_runs_every_operation_on_rapidlys_executor():
    assert schema.execution_context_class is RapidlyExecutor


async def test_a_long_subscription_keeps_nothing_per_event():
    # given / when
    kept = await _growth_over_events(RapidlyExecutor)

    # then
    assert kept < ALLOWED_BYTES, f"{kept} bytes kept over {EVENTS} events"


async def test_graphql_cores_executor_as_it_comes_keeps_memory_per_event():
    """The upstream defect the workaround exists for; when this fails, graphql-core has fixed it,
    and `RapidlyExecutor.build_per_event_executor` can go (docs/upstream.md)."""
    kept = await _growth_over_events(StrawberryGraphQLCoreExecutionContext)

    assert kept > 100 * EVENTS
