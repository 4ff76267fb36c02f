"""Chat: one conversation per contact between the end user and the tenant's staff."""
