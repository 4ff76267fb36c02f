"""Real time: contact events fanned out to every server process through PostgreSQL.

`publish()` writes a row to the `contact_event` log in the writer's transaction; once that has
committed, the process's `announcer` sends `pg_notify('rapidly_events', …)` for it, batched with
whatever else committed meanwhile (`announce.py` says why not inside the transaction).
Each process runs one `EventHub`, which holds one dedicated asyncpg connection that LISTENs on the
channel (pooled connections are reset on release, so they cannot listen), watches it with a
heartbeat and a termination listener, and reconnects with backoff. Because notifications sent while
nobody listened are lost, the hub reads the log after every reconnect and delivers what it missed in
sequence order, once; and because a writer may die between its commit and its announcement, each
heartbeat sweeps the log for events that were logged but never announced. Subscribers
(`hub.subscribe(tenant_id[, contact_id])`) get a bounded queue; one that falls behind is cut off
instead of slowing the others. Rows and payloads carry IDs, a kind, a sequence number and a time
only; `prune()` removes rows older than an hour.
"""

from rapidly.realtime.announce import Announcer, announcer
from rapidly.realtime.events import CHANNEL, ContactEvent, EventKind
from rapidly.realtime.hub import EventHub, Subscription, SubscriptionOverflow
from rapidly.realtime.publish import prune, publish

__all__ = [
    "CHANNEL",
    "Announcer",
    "ContactEvent",
    "EventHub",
    "EventKind",
    "Subscription",
    "SubscriptionOverflow",
    "announcer",
    "prune",
    "publish",
]
