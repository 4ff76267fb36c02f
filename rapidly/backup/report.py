"""What `rapidly check` says about backups: the operator's choice, the key, and the newest backup."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rapidly.backup.service import Backups
from rapidly.config import MAX_BACKUP_RETENTION_DAYS, Settings
from rapidly.storage import storage_for


async def describe(settings: Settings) -> tuple[list[str], bool]:
    """Lines for people, and False when `serve` would refuse to start for want of a key."""
    if not settings.backup_every_hours:
        return [
            "backups: off (RAPIDLY_BACKUP_EVERY_HOURS=0): the database provider's backups are relied on; keep them in",
            f"  the EU/EEA and for {MAX_BACKUP_RETENTION_DAYS} days at most, or erased people come back from them",
        ], True
    lines = [
        f"backups: by serve, every {settings.backup_every_hours} h, each deleted after "
        f"{settings.backup_retention_days} days (RAPIDLY_BACKUP_EVERY_HOURS, RAPIDLY_BACKUP_RETENTION_DAYS)"
    ]
    if settings.backup_passphrase is None:
        lines.append(
            "  FAIL: RAPIDLY_BACKUP_KEY is not set (at least 32 characters): serve refuses to start without it"
        )
        return lines, False
    if settings.backup_key is None:
        lines.append(
            f"  WARNING: the key was generated into {(settings.data_dir / 'backup_key').resolve()}, beside the "
            "backups it opens: copy it off this machine, or set RAPIDLY_BACKUP_KEY"
        )
    storage = storage_for(settings)
    await storage.start()
    try:
        backups = Backups(settings, storage)
        lines.append(f"  where: {backups.store.location}")
        latest = await backups.latest()
    except Exception as exc:
        lines.append(f"  WARNING: the object storage cannot be read ({type(exc).__name__}): backups fail until it can")
        return lines, True
    finally:
        await storage.close()
    if latest is None:
        lines.append(
            "  newest: none yet (serve makes the first within minutes of starting; or `rapidly backup create`)"
        )
        return lines, True
    age = datetime.now(UTC) - latest.created
    lines.append(f"  newest: {latest.id}, {_hours(age)} old, {latest.size} bytes")
    if age > timedelta(hours=settings.backup_every_hours) + timedelta(hours=1):
        lines.append("  WARNING: the newest backup is overdue: see serve's log for why backups fail")
    return lines, True


def _hours(age: timedelta) -> str:
    hours = age.total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"
