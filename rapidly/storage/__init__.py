"""Object storage for media: S3 (any S3 API in the EU/EEA) or a local directory.

Keys hold IDs only (`<tenant>/<contact>/<media>`), never names or filenames, and nothing is ever
public: readers get short-lived signed URLs.
"""

from rapidly.storage.base import JOURNAL, Storage, StoredObject, contact_prefix, journal_key, object_key
from rapidly.storage.factory import storage_for

__all__ = ["JOURNAL", "Storage", "StoredObject", "contact_prefix", "journal_key", "object_key", "storage_for"]
