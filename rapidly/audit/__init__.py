"""Audit trail of staff access to contacts: who read which contact when, never what."""
