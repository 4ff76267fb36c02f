"""Fixed-window rate limits kept in an UNLOGGED table: cheap, shared by every process."""
