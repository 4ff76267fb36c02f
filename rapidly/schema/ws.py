"""GraphQL over WebSocket (graphql-transport-ws): every malformed message gets the protocol's close
code, never a traceback."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import Message, SubscribeMessage

from rapidly import metrics
from rapidly.schema import operation_span, root_field
from rapidly.schema.fanout import Member, Outbox

#: Frames one WebSocket may have waiting (as many as a subscriber's queue holds in the hub).
OUTBOX_FRAMES = 1000

#: graphql-transport-ws messages by type: the fields each must have, and their JSON types (None:
#: may be absent or null). Checked before Strawberry's handler reads them.
_WS_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    "connection_init": {"payload": (dict, type(None))},
    "ping": {"payload": (dict, type(None))},
    "pong": {"payload": (dict, type(None))},
    "subscribe": {"id": (str,), "payload": (dict,)},
    "complete": {"id": (str,)},
}
_WS_SUBSCRIBE_PAYLOAD: dict[str, tuple[type, ...]] = {
    "query": (str,),
    "variables": (dict, type(None)),
    "operationName": (str, type(None)),
    "extensions": (dict, type(None)),
}


def ws_message_problem(message: object) -> str | None:
    """Why a graphql-transport-ws message is malformed; None for a well-formed one. Strawberry's
    handler indexes a message as it comes: a list, `null` or a payload that is no object raised
    there, and the socket closed without a code and with a traceback (issue 18)."""
    if not isinstance(message, dict):
        return "A message must be a JSON object."
    kind = message.get("type")
    if not isinstance(kind, str):
        return "A message needs a type."
    fields = _WS_FIELDS.get(kind)
    if fields is None:
        return "Unknown message type."
    for name, types in fields.items():
        if not isinstance(message.get(name), types):
            return f"Invalid {kind} message: {name}."
    if kind == "subscribe":
        for name, types in _WS_SUBSCRIBE_PAYLOAD.items():
            if not isinstance(message["payload"].get(name), types):
                return f"Invalid subscribe message: payload.{name}."
    return None


class StrictGraphQLTransportWS(BaseGraphQLTransportWSHandler):
    """Strawberry's graphql-transport-ws handler, but a malformed message closes the socket with the
    protocol's 4400 before it is read; the protocol's other codes (4429 for a second
    `connection_init`, 4409 for a subscription ID in use, 4401 before `connection_ack`) stay
    Strawberry's.

    Everything it sends goes through the connection's `Outbox`, in order, written by a task of its
    own: no event waits on a slow socket. A subscription that groups can run joins its group
    (`rapidly.schema.fanout`); any other runs on Strawberry's path."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outbox = Outbox(self._send_text, self.websocket.close, OUTBOX_FRAMES)

    async def _send_text(self, text: str) -> None:
        await self.websocket.ws.send_text(text)  # type: ignore[attr-defined]

    async def handle(self) -> None:
        self.outbox.start()
        try:
            await super().handle()
        finally:
            await self.outbox.stop()

    async def send_message(self, message: Message) -> None:
        self.outbox.put(json.dumps(message, separators=(",", ":")))

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        fanout = getattr(self.context, "fanout", None)
        payload = message.get("payload")
        if (
            fanout is not None
            and self.connection_acknowledged
            and message["id"] not in self.operations
            and len(self.operations) < (self.max_subscriptions_per_connection or float("inf"))
            and (plan := fanout.plan(payload["query"], payload.get("variables"), payload.get("operationName")))
            is not None
        ):
            operation = Operation(
                self, message["id"], payload["query"], payload.get("variables"), payload.get("operationName")
            )
            self.operations[message["id"]] = operation  # the ID is taken while the member joins
            try:
                with operation_span(plan.document, plan.operation_name):  # as `RecordOperation` does: its start
                    member = await fanout.join(plan, self.context, self.outbox, message["id"])
            except BaseException:
                if self.operations.get(message["id"]) is operation:  # no task: shutdown() could not clean it up
                    del self.operations[message["id"]]
                raise
            if member is not None and (name := root_field(plan.document, plan.operation_name)) is not None:
                metrics.record_operation(name)
            if self.operations.get(message["id"]) is not operation:  # completed (or closed) meanwhile
                if member is not None:
                    fanout.leave(member)
                return
            if member is not None:
                operation.task = asyncio.create_task(self._shared(operation, member))
                operation.task.add_done_callback(self._task_done)
                # Not in the task's `finally`: a task cancelled before it ran (a `complete` right
                # after the `subscribe`) never runs it.
                operation.task.add_done_callback(lambda _task: fanout.leave(member))
                return
            del self.operations[message["id"]]
        await super().handle_subscribe(message)

    async def _shared(self, operation: Operation, member: Member) -> None:
        """A group's member, from joining until it ends (an error, or `complete`) or is completed."""
        await member.ended.wait()
        if member.error is not None:
            errors = [{"message": member.error}]
            await operation.send_operation_message(
                {"id": operation.id, "type": "next", "payload": {"data": None, "errors": errors}}  # type: ignore[typeddict-item]
            )
        await operation.send_operation_message({"id": operation.id, "type": "complete"})

    async def handle_message(self, message: Message) -> None:
        if (problem := ws_message_problem(message)) is not None:
            await self.handle_invalid_message(problem)
            return
        await super().handle_message(message)

    async def handle_task_exception(self, error: Exception) -> None:
        """A client gone while an event was on its way (it closed, lost its network, or was cut off
        for not reading: `rapidly.serving`) is no error of the server's."""
        if not isinstance(error, WebSocketDisconnected):
            await super().handle_task_exception(error)
