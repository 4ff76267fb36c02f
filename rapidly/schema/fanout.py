"""Live events executed once per group of subscribers, the same text written to each (issue 28).

A subscription whose every selected field is declared shared (`rapidly.schema.permissions.shared()` in its metadata:
its value is the same for everyone who may see the event) does not run per subscriber. Subscribers
with the same document, operation and variables and the same scope (the tenant; and the contact,
for a contact's own stream) form a `Group`: it takes each event from the hub once, executes the
selection set once with no viewer's context at all, encodes the result once, and hands the same
text to each member's `Outbox` with only the operation's ID spliced in. A document that selects any
other field (`contact`, read and audited per viewer) runs per subscriber on Strawberry's path, and
so does every subscription that is refused: its errors are Strawberry's, unchanged.

Per-subscriber checks stay, in memory, not per event: a member's credentials are checked again when
the database announces that they changed (`EventHub.watch_credentials`: a session or token deleted,
the tenant's origins changed, or a reconnect that may have missed one) and when its session ends.
A member that fails the check gets the error a per-subscriber stream gives and is completed.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import uuid
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    execute,
    get_named_type,
)
from graphql.execution.values import get_variable_values
from strawberry.execution import optimized_is_awaitable
from strawberry.http import process_result
from strawberry.utils.await_maybe import await_maybe

from rapidly import metrics
from rapidly.errors import DomainError
from rapidly.realtime import EventKind, SubscriptionOverflow
from rapidly.schema import RapidlySchema, operation_of, public_error
from rapidly.schema.http import Documents
from rapidly.schema.permissions import CONTACT, OVERFLOW, SESSION_ENDED, SHARED, TENANT

if TYPE_CHECKING:
    from rapidly.realtime import ContactEvent, EventHub
    from rapidly.schema.context import Context

log = logging.getLogger(__name__)

#: A contact's token is deleted when the contact is erased, and that deletion is announced at the
#: erasure's commit, before its DELETED event: the event must still reach the contact's own stream
#: and end it. A failed check of a contact's credentials therefore ends its stream this long after,
#: unless the event has ended it first (a token deleted otherwise, once it expired, is no hurry).
CONTACT_GRACE_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Plan:
    """A subscription that a group can run: its document, the root field's scope, and its group key
    (without the scope, which is known once the subscriber's credentials are)."""

    document: DocumentNode
    operation_name: str | None
    variables: dict[str, Any] | None
    scope: str
    key: Hashable


def _shared_scope(schema: GraphQLSchema, document: DocumentNode, operation_name: str | None) -> str | None:
    """The scope of the operation's root field when every field it selects is declared shared."""
    operation = operation_of(document, operation_name)
    if operation is None or operation.operation is not OperationType.SUBSCRIPTION:
        return None
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    scopes: list[str] = []

    def all_shared(parent: GraphQLObjectType, selections: SelectionSetNode | None, seen: frozenset[str]) -> bool:
        for selection in selections.selections if selections else ():
            if isinstance(selection, FieldNode):
                name = selection.name.value
                if name == "__typename":
                    continue
                definition = parent.fields.get(name)
                strawberry_field = definition.extensions.get("strawberry-definition") if definition else None
                scope = (getattr(strawberry_field, "metadata", None) or {}).get(SHARED)
                if scope is None:
                    return False
                if parent is schema.subscription_type:
                    scopes.append(scope)
                child = get_named_type(definition.type)  # type: ignore[union-attr]
                if selection.selection_set and not (
                    isinstance(child, GraphQLObjectType) and all_shared(child, selection.selection_set, seen)
                ):
                    return False
            elif isinstance(selection, InlineFragmentNode):
                if selection.type_condition and selection.type_condition.name.value != parent.name:
                    return False  # interfaces and unions are not shared: none is, yet
                if not all_shared(parent, selection.selection_set, seen):
                    return False
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = fragments.get(name)
                if fragment is None or name in seen or fragment.type_condition.name.value != parent.name:
                    return False
                if not all_shared(parent, fragment.selection_set, seen | {name}):
                    return False
        return True

    root = schema.subscription_type
    if root is None or not all_shared(root, operation.selection_set, frozenset()):
        return None
    return scopes[0] if len(scopes) == 1 and scopes[0] in (TENANT, CONTACT) else None


def _runs(schema: GraphQLSchema, document: DocumentNode, operation_name: str | None, variables: Any) -> bool:
    """The operation to run is known and its variables coerce (else Strawberry's path refuses it)."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is None and len(operations) != 1:
        return False
    operation = operation_of(document, operation_name)
    if operation is None or not isinstance(variables, dict | None):
        return False
    coerced = get_variable_values(schema, operation.variable_definitions or (), variables or {}, max_errors=1)
    return not isinstance(coerced, list)


class Outbox:
    """The frames waiting for one WebSocket, written in order by one task of its own: whoever queues
    a frame never waits for the socket. A client that lets `limit` frames pile up is cut off (close
    code 1013, try again later) without holding anyone else up."""

    CLOSE_CODE = 1013

    def __init__(self, send_text: Callable[[str], Any], close: Callable[[int, str], Any], limit: int) -> None:
        self._send_text = send_text
        self._close = close
        self.limit = limit
        self._frames: list[str] = []
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._cutting: asyncio.Task[None] | None = None
        self.closed = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._write(), name="rapidly-ws-outbox")

    async def stop(self) -> None:
        """Stop writing (the connection is over): what is queued is dropped."""
        self.closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def put(self, frame: str) -> bool:
        """Queue a frame; False if the connection is closed or has just been cut off."""
        if self.closed:
            return False
        if len(self._frames) >= self.limit:
            self.closed = True
            self._frames.clear()
            metrics.SUBSCRIBERS_CUT_OFF.inc()
            self._cutting = asyncio.get_running_loop().create_task(self._cut_off())
            return False
        self._frames.append(frame)
        self._ready.set()
        return True

    async def flushed(self) -> None:
        """Wait until everything queued has been written (or the connection is gone)."""
        while self._frames and not self.closed and self._task is not None and not self._task.done():
            await asyncio.sleep(0.001)

    async def _cut_off(self) -> None:
        with contextlib.suppress(Exception):
            await self._close(self.CLOSE_CODE, OVERFLOW)

    async def _write(self) -> None:
        while not self.closed:
            await self._ready.wait()
            self._ready.clear()
            frames, self._frames = self._frames, []
            for frame in frames:
                if self.closed:
                    return
                try:
                    await self._send_text(frame)
                except Exception:  # the client is gone: its handler sees the disconnect and ends
                    self.closed = True
                    return


@dataclass(eq=False, slots=True)
class Member:
    """One operation of one WebSocket in a group."""

    group: Group
    outbox: Outbox
    context: Context
    operation_id: str
    #: `{"id":"<operation>","type":"next","payload":` : each frame is this, the payload and `}`.
    prefix: str
    #: Set when the member is done: with the error message to end on, or None to complete.
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    error: str | None = None
    watch: Watch | None = None
    #: While its credentials are checked again, its frames wait here (None: not being checked).
    held: list[str] | None = None

    def end(self, error: str | None = None) -> None:
        if not self.ended.is_set():
            self.error = error
            self.ended.set()


@dataclass(eq=False, slots=True)
class Watch:
    """A live stream's credentials, checked again when the database announces that they changed
    (`keys`: `staff:<id>` or `contact:<id>`, and `tenant:<id>`) or when they run out: `on_check`
    as a check begins, then `on_pass`, or `on_fail` with the error to end the stream on."""

    context: Context
    keys: tuple[str, ...]
    on_fail: Callable[[str], None]
    on_check: Callable[[], None] | None = None
    on_pass: Callable[[], None] | None = None
    expiry: asyncio.TimerHandle | None = None
    checking: bool = False
    #: A change was announced while a check ran (which may have read the credentials before it).
    again: bool = False
    #: Seconds between a failed check and `on_fail` (see `CONTACT_GRACE_SECONDS`).
    grace: float = 0.0
    #: The stream's own context variables (its tenant among them): its checks run in them.
    variables: contextvars.Context = field(default_factory=contextvars.copy_context)


class Group:
    """The subscribers of one document, variables and scope: each event executed once for all."""

    def __init__(self, fanout: Fanout, key: Hashable, plan: Plan, tenant_id: uuid.UUID, contact_id: uuid.UUID | None):
        self.fanout = fanout
        self.key = key
        self.plan = plan
        self.tenant_id = tenant_id
        self.contact_id = contact_id
        self.members: dict[Member, None] = {}
        self.task: asyncio.Task[None] | None = None
        self.executions = 0

    async def run(self, ready: asyncio.Future[None]) -> None:
        hub = self.fanout.hub
        try:
            async with hub.subscribe(self.tenant_id, self.contact_id) as events:
                if not ready.done():  # the first joiner may have been cancelled meanwhile
                    ready.set_result(None)
                async for event in events:
                    self.deliver(event, await self.execute(event))
                    if self.fanout.groups.get(self.key) is not self:
                        return  # its last member left while it delivered (cut off, or gone)
                    if self.contact_id is not None and event.kind == EventKind.DELETED:
                        break  # the contact's own erasure: the last event there is
        except SubscriptionOverflow:
            self.end_all(OVERFLOW)
            return
        except Exception as exc:
            log.error("live group failed (%s)", type(exc).__name__)
            self.end_all("Unexpected error.")
            return
        finally:
            if not ready.done():
                ready.set_result(None)
        self.end_all(None)

    async def execute(self, event: ContactEvent) -> str:
        """The event's payload, executed with no context (shared fields need none) and encoded once."""
        from rapidly.schema.contacts import ContactEvent as ContactEventType

        self.executions += 1
        schema = self.fanout.schema
        result = await await_maybe(
            execute(
                schema._schema,
                self.plan.document,
                root_value=ContactEventType.of(event),
                context_value=None,
                variable_values=self.plan.variables,
                operation_name=self.plan.operation_name,
                is_awaitable=optimized_is_awaitable,
                executor_class=schema.execution_context_class,
            )
        )
        if result.errors:
            schema.process_errors(result.errors)
            result.errors = [public_error(error) for error in result.errors]
        return json.dumps(process_result(result), separators=(",", ":"))

    def deliver(self, event: ContactEvent, payload: str) -> None:
        for member in list(self.members):
            frame = member.prefix + payload + "}"
            if member.held is not None:  # its credentials are being checked: nothing reaches it until they pass
                if len(member.held) < member.outbox.limit:
                    member.held.append(frame)
                else:
                    member.end(OVERFLOW)
                    self.leave(member)
            elif member.outbox.put(frame):
                metrics.EVENTS_DELIVERED.inc()
            else:
                self.leave(member)

    def release(self, member: Member) -> None:
        """Deliver what was held for the member while its credentials were checked."""
        held, member.held = member.held or [], None
        for frame in held:
            if not member.outbox.put(frame):
                self.leave(member)
                return
            metrics.EVENTS_DELIVERED.inc()

    def end_all(self, error: str | None) -> None:
        for member in list(self.members):
            member.end(error)
            self.leave(member)
        if self.fanout.groups.get(self.key) is self:  # ended before anyone joined: none may join it now
            del self.fanout.groups[self.key]

    def leave(self, member: Member) -> None:
        if self.members.pop(member, 0) is None and member.watch is not None:
            self.fanout.unwatch(member.watch)
        if not self.members and self.fanout.groups.get(self.key) is self:
            del self.fanout.groups[self.key]
            if self.task is not None and self.task is not asyncio.current_task():
                self.task.cancel()


class Fanout:
    """The groups of one process's live subscribers (see the module's docstring)."""

    def __init__(self, schema: RapidlySchema, hub: EventHub) -> None:
        self.schema = schema
        self.hub = hub
        self.documents = Documents(schema)
        self.groups: dict[Hashable, Group] = {}
        #: Live streams' credentials by the announcements that concern them (`staff:<id>`, `tenant:<id>`, …).
        self._watching: dict[str, set[Watch]] = {}
        self._watches: set[Watch] = set()
        self._checks: set[asyncio.Task[None]] = set()
        hub.watch_credentials(self._credentials_changed)  # for the process's life, as the hub's

    def plan(self, query: str, variables: dict[str, Any] | None, operation_name: str | None) -> Plan | None:
        """The plan of a subscription that groups can run, or None: run it per subscriber."""
        document = self.documents.get(query)
        if document is None:
            return None
        scope = _shared_scope(self.schema._schema, document, operation_name)
        if scope is None or not _runs(self.schema._schema, document, operation_name, variables):
            return None
        try:
            key = (query, operation_name, json.dumps(variables, sort_keys=True, separators=(",", ":")))
        except (TypeError, ValueError):
            return None
        return Plan(document, operation_name, variables, scope, key)

    async def join(self, plan: Plan, context: Context, outbox: Outbox, operation_id: str) -> Member | None:
        """The subscriber as a member of its group; None when its credentials do not give it the
        plan's scope (Strawberry's path then answers as it always has)."""
        try:
            if plan.scope == TENANT:
                staff = await context.staff()
                if staff is None:
                    return None
                tenant_id, contact_id = staff.tenant_id, None
            else:
                contact = await context.contact()
                if contact is None:
                    return None
                tenant_id, contact_id = contact.tenant_id, contact.id
            until = await context.signed_in_until()
        except Exception:  # refused, or the database away: Strawberry's path answers it as it always has
            return None
        if until is None:
            return None
        key = (plan.key, tenant_id, contact_id)
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = Group(self, key, plan, tenant_id, contact_id)
            ready = asyncio.get_running_loop().create_future()
            group.task = asyncio.create_task(group.run(ready), name="rapidly-live-group")
            await ready  # subscribed to the hub: nothing published from here on is missed
            if self.groups.get(key) is not group:  # ended meanwhile (the hub stopped)
                return None
        prefix = '{"id":' + json.dumps(operation_id) + ',"type":"next","payload":'
        member = Member(group, outbox, context, operation_id, prefix)
        group.members[member] = None

        def fail(error: str) -> None:
            member.held = None
            member.end(error)
            group.leave(member)

        def hold() -> None:
            member.held = []

        if plan.scope == TENANT:
            member.watch = self._watch(context, until, fail, hold, lambda: group.release(member))
        else:  # nothing is held back from a contact: its own erasure's event must reach it (see the grace)
            member.watch = self._watch(context, until, fail)
        return member

    async def watch(
        self,
        context: Context,
        on_fail: Callable[[str], None],
        on_check: Callable[[], None] | None = None,
        on_pass: Callable[[], None] | None = None,
    ) -> Watch | None:
        """Watch a stream's credentials (one that runs per subscriber): `on_check` as a check begins
        (hold its events), `on_pass` when they still hold, `on_fail` with the error to end it on once
        they do not. None (nothing watched) if they do not hold now."""
        try:
            until = await context.signed_in_until()
        except DomainError:
            return None
        return None if until is None else self._watch(context, until, on_fail, on_check, on_pass)

    def unwatch(self, watch: Watch) -> None:
        if watch.expiry is not None:
            watch.expiry.cancel()
        self._watches.discard(watch)
        for key in watch.keys:
            watches = self._watching.get(key)
            if watches is not None:
                watches.discard(watch)
                if not watches:
                    del self._watching[key]

    def leave(self, member: Member) -> None:
        member.group.leave(member)

    def subscriber_count(self) -> int:
        """Live subscriptions open in this process: the groups' members and the streams of their own
        (a group is one subscriber of the hub's, for all of its members)."""
        members = sum(len(group.members) for group in self.groups.values())
        return self.hub.subscriber_count() - len(self.groups) + members

    def _watch(
        self,
        context: Context,
        until: datetime,
        on_fail: Callable[[str], None],
        on_check: Callable[[], None] | None = None,
        on_pass: Callable[[], None] | None = None,
    ) -> Watch:
        """Watch credentials that hold until `until` (`signed_in_until()` has just said so)."""
        staff, contact = context.signed_in_as()
        if staff is not None:
            keys = (f"staff:{staff.id}", f"tenant:{staff.tenant_id}")
        else:
            keys = (f"contact:{contact.id}", f"tenant:{contact.tenant_id}")  # type: ignore[union-attr]
        watch = Watch(context, keys, on_fail, on_check, on_pass, grace=0.0 if staff else CONTACT_GRACE_SECONDS)
        self._watches.add(watch)
        for key in keys:
            self._watching.setdefault(key, set()).add(watch)
        self._expire_at(watch, until)
        return watch

    def _expire_at(self, watch: Watch, until: datetime) -> None:
        if watch.expiry is not None:
            watch.expiry.cancel()
            watch.expiry = None
        seconds = (until - datetime.now(UTC)).total_seconds()
        if seconds < 30 * 86400:  # call_later's clock is fine for days; a contact's `max` needs no timer
            watch.expiry = asyncio.get_running_loop().call_later(max(0.0, seconds), self._check, watch)

    def _credentials_changed(self, announced: str | None) -> None:
        watches = list(self._watches) if announced is None else list(self._watching.get(announced, ()))
        for watch in watches:
            self._check(watch)

    def _fail(self, watch: Watch, error: str) -> None:
        if watch in self._watches:  # not ended meanwhile
            self.unwatch(watch)
            watch.on_fail(error)

    def _check(self, watch: Watch) -> None:
        """Check the credentials again (`on_check` first): the stream goes on or is ended."""
        if watch not in self._watches:
            return
        if watch.checking:
            watch.again = True
            return
        watch.checking = True
        if watch.on_check is not None:
            watch.on_check()
        self._start_check(watch)

    def _start_check(self, watch: Watch) -> None:

        async def check() -> None:
            try:
                until = await watch.context.signed_in_until()
            except DomainError as exc:
                until, error = None, exc.message
            except Exception as exc:  # the database is unreachable: end it, the client subscribes again
                log.warning("live subscriber's check failed (%s)", type(exc).__name__)
                until, error = None, SESSION_ENDED
            else:
                error = SESSION_ENDED
            if watch not in self._watches:
                watch.checking = False
                return
            if until is not None and watch.again:  # it may have read them before that change: again
                watch.again = False
                self._start_check(watch)
                return
            watch.checking = watch.again = False
            if until is None:
                asyncio.get_running_loop().call_later(watch.grace, self._fail, watch, error)
            else:
                self._expire_at(watch, until)
                if watch.on_pass is not None:
                    watch.on_pass()

        task = asyncio.get_running_loop().create_task(check(), context=watch.variables)
        self._checks.add(task)  # a task nothing refers to may be collected before it is done
        task.add_done_callback(self._checks.discard)
