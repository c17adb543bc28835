"""The history's one error."""

from __future__ import annotations

from fleetaudit.errors import FleetAuditError


class HistoryError(FleetAuditError):
    """The history store cannot be opened, read or written; the message names the store
    (never its password) and what was being done."""
