"""Erasure: one service removes everything stored about a contact, store by store, and keeps a ledger."""
