"""Small value readers more than one parser needs."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_from_unix(seconds: int | None) -> datetime | None:
    """A unix time as an aware UTC datetime; absent or out of range gives None, not an error."""
    if seconds is None:
        return None
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None
