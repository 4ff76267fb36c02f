"""Encrypted database backups in the object storage, forgotten within 30 days (see `service`)."""
