"""Staff notifications: stored with IDs only, worded when read."""
