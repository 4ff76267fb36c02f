"""Keys: the one home of the key hierarchy that makes contact data unreadable without the service.

    root key (RAPIDLY_ROOT_KEY, or a KMS through the `key_provider` hook; never in the database)
      └─ wraps each tenant's key (table tenant_key)
           └─ wraps each contact's data key (table contact_key)
                └─ seals what the contact typed, sent or uploaded

Everything sealed carries associated data naming its tenant, contact and place, so ciphertext moved
to another row, contact or tenant does not open. Erasing a contact deletes its data key: every copy of
its ciphertext anywhere is then unreadable. See docs/encryption.md.
"""

from rapidly.keys.sealing import Unreadable, open_sealed, place, seal

__all__ = ["Unreadable", "open_sealed", "place", "seal"]
