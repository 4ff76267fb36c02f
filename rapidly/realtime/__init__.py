"""Real time: contact events fanned out to every server process through PostgreSQL.

`publish()` writes a row to the `contact_event` log and queues a `pg_notify('rapidly_events', …)` in
the same statement, so the notification goes out exactly when the caller's transaction commits.
Each process runs one `EventHub`, which holds one dedicated asyncpg connection that LISTENs on the
channel (pooled connections are reset on release, so they cannot listen), watches it with a
heartbeat and a termination listener, and reconnects with backoff. Because notifications sent while
nobody listened are lost, the hub reads the log after every reconnect and delivers what it missed in
sequence order, once. Subscribers (`hub.subscribe(tenant_id[, contact_id])`) get a bounded queue;
one that falls behind is cut off instead of slowing the others. Rows and payloads carry IDs, a kind,
a sequence number and a time only; `prune()` removes rows older than an hour.
"""

from rapidly.realtime.events import CHANNEL, ContactEvent, EventKind
from rapidly.realtime.hub import EventHub, Subscription, SubscriptionOverflow
from rapidly.realtime.publish import prune, publish

__all__ = [
    "CHANNEL",
    "ContactEvent",
    "EventHub",
    "EventKind",
    "Subscription",
    "SubscriptionOverflow",
    "prune",
    "publish",
]
