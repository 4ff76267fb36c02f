"""GraphQL over WebSocket (graphql-transport-ws): every malformed message gets the protocol's close
code, never a traceback."""

from __future__ import annotations

from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_transport_ws.types import Message

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
    Strawberry's."""

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
