"""Messages to end users and staff: an outbox first, delivered by a dispatcher."""
