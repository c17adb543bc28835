"""Where the history is: a SQLite file (the default, or a path) or a PostgreSQL URL."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from fleetaudit.errors import ConfigError

if TYPE_CHECKING:  # SQLAlchemy is imported when a store is used, not by every command
    from sqlalchemy.engine import URL

HISTORY_ENV = "FLEETAUDIT_HISTORY"  # the default --history, when set
DISABLED = "none"  # --history none: neither compare nor record
_FILE = "history.sqlite"


def default_location() -> str:
    """$FLEETAUDIT_HISTORY, else $XDG_DATA_HOME/fleetaudit/history.sqlite (~/.local/share)."""
    configured = os.environ.get(HISTORY_ENV)
    if configured:
        return configured
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "fleetaudit" / _FILE)


def engine_url(location: str) -> URL:
    """The SQLAlchemy URL of a --history value: a postgresql:// URL (driven by psycopg 3),
    a sqlite:/// URL, or a path to a SQLite file."""
    from sqlalchemy.engine import URL, make_url
    from sqlalchemy.exc import ArgumentError

    text = location.strip()
    if not text:
        raise ConfigError("--history is empty: give a file path or a postgresql:// URL")
    if "://" not in text:
        return URL.create("sqlite", database=str(Path(text).expanduser().absolute()))
    try:
        url = make_url(text)
    except ArgumentError as exc:
        raise ConfigError(f"--history is not a database URL: {exc}") from None
    backend = url.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        return url
    raise ConfigError(f"--history supports SQLite and PostgreSQL, not {backend!r}")


def display_url(url: URL) -> str:
    """The store as a message may name it: never its password."""
    if url.get_backend_name() == "sqlite":
        return url.database or ":memory:"
    return url.render_as_string(hide_password=True)
