from __future__ import annotations

from rapidly.config import Settings
from rapidly.storage.base import Storage


def storage_for(settings: Settings) -> Storage:
    """The backend `RAPIDLY_STORAGE` names: `local` (under `RAPIDLY_DATA_DIR/media`) or `s3`."""
    if settings.storage == "s3":
        from rapidly.storage.s3 import S3Storage

        return S3Storage(settings)
    from rapidly.storage.local import LocalStorage

    return LocalStorage(settings.data_dir / "media")
