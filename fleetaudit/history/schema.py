"""The store's tables, as SQLAlchemy Core sees them (the migrations create them).

One row per run, per host of a run, per port of a host, per listening process of a
port and per active finding. Children are keyed by the run id and deleted with it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect

SCHEMA_REVISION = "0001"


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC in and out on both backends (SQLite stores no zone: it is put back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

runs = Table(
    "runs", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("inventory", Text, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    Column("tool_version", Text, nullable=False),
    Column("policy", Text),
    Column("exit_status", Integer),
    Column("report_dir", Text),  # the run's folder: its evidence (nmap XML, reports) is there
    Column("hosts_total", Integer, nullable=False),
    Column("hosts_compliant", Integer, nullable=False),
    Column("findings_active", Integer, nullable=False),
    Index("ix_runs_inventory_started", "inventory", "started_at"),
)

hosts = Table(
    "hosts", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("name", Text, primary_key=True),
    Column("address", Text, nullable=False),
    Column("status", String(32), nullable=False),
    Column("reached", Boolean, nullable=False),
    Column("outside", Boolean, nullable=False),
    Column("inside", Boolean, nullable=False),
    Column("scanned", Text, nullable=False),
    Column("compliant", Boolean),
    ForeignKeyConstraint(["run_id"], ["runs.run_id"], ondelete="CASCADE"),
)

ports = Table(
    "ports", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("host", Text, primary_key=True),
    Column("proto", String(8), primary_key=True),
    Column("port", Integer, primary_key=True),
    Column("outside", Text),  # nmap's state; NULL: not listed
    Column("service", Text),
    Column("addresses", Text, nullable=False),  # space-separated; empty: no listener
    Column("verdicts", Text, nullable=False),  # space-separated verdict kinds
    ForeignKeyConstraint(["run_id", "host"], ["hosts.run_id", "hosts.name"], ondelete="CASCADE"),
    Index("ix_ports_host_port", "host", "port"),
)

listeners = Table(
    "listeners", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("host", Text, primary_key=True),
    Column("proto", String(8), primary_key=True),
    Column("port", Integer, primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("exe", Text),
    Column("sha256", String(64)),
    Column("package", Text),
    Column("version", Text),
    Column("user_name", Text),
    Column("unit", Text),
    Column("deleted", Boolean, nullable=False),
    Column("pids", Text, nullable=False),  # space-separated: shown, never compared
    ForeignKeyConstraint(["run_id", "host", "proto", "port"],
                         ["ports.run_id", "ports.host", "ports.proto", "ports.port"],
                         ondelete="CASCADE"),
)

findings = Table(
    "findings", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("host", Text, primary_key=True),
    Column("finding_id", String(64), primary_key=True),
    Column("rule", Text, nullable=False),
    Column("severity", String(16), nullable=False),
    Column("proto", String(8)),
    Column("port", Integer),
    Column("message", Text, nullable=False),
    ForeignKeyConstraint(["run_id", "host"], ["hosts.run_id", "hosts.name"], ondelete="CASCADE"),
)

# Children first: the order rows are deleted in (no reliance on SQLite's foreign_keys pragma).
CHILDREN_FIRST = (findings, listeners, ports, hosts, runs)
