"""The executor every operation runs on: Strawberry's, with each subscription event's memo its own.

graphql-core 3.3 (through 3.3.2 at least) runs each subscription event on a shallow copy of the
subscription's executor, and the copy shares the dict that memoises sub-field collection. Its keys
are the `id()` of lists made anew for every event, which the dict keeps alive, so a subscription
kept about 1 KiB per event for as long as it lived: a staff console, all day (issue 25;
docs/upstream.md has the report). graphql-js keys the same memo by the per-event context, which
dies with the event; here each event's executor starts its own.
"""

from __future__ import annotations

from typing import Any

from graphql.execution import Executor
from graphql.pyutils import RefMap
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext


class RapidlyExecutor(StrawberryGraphQLCoreExecutionContext):
    def build_per_event_executor(self, payload: Any) -> Executor:
        executor = super().build_per_event_executor(payload)
        executor._relevant_sub_fields = {}
        executor._stream_usages = RefMap()
        return executor
