"""Contacts: end users and everything they enter."""
