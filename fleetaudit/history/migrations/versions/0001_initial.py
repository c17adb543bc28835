"""The first schema: runs, hosts, ports, listeners, findings.

Written out here rather than taken from schema.py, so this migration keeps creating
what it created when later revisions change the tables.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from fleetaudit.history.schema import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("inventory", sa.Text, nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("finished_at", UTCDateTime, nullable=False),
        sa.Column("recorded_at", UTCDateTime, nullable=False),
        sa.Column("tool_version", sa.Text, nullable=False),
        sa.Column("policy", sa.Text),
        sa.Column("exit_status", sa.Integer),
        sa.Column("report_dir", sa.Text),
        sa.Column("hosts_total", sa.Integer, nullable=False),
        sa.Column("hosts_compliant", sa.Integer, nullable=False),
        sa.Column("findings_active", sa.Integer, nullable=False),
    )
    op.create_index("ix_runs_inventory_started", "runs", ["inventory", "started_at"])
    op.create_table(
        "hosts",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("address", sa.Text, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("reached", sa.Boolean, nullable=False),
        sa.Column("outside", sa.Boolean, nullable=False),
        sa.Column("inside", sa.Boolean, nullable=False),
        sa.Column("scanned", sa.Text, nullable=False),
        sa.Column("compliant", sa.Boolean),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], ondelete="CASCADE"),
    )
    op.create_table(
        "ports",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("host", sa.Text, primary_key=True),
        sa.Column("proto", sa.String(8), primary_key=True),
        sa.Column("port", sa.Integer, primary_key=True),
        sa.Column("outside", sa.Text),
        sa.Column("service", sa.Text),
        sa.Column("addresses", sa.Text, nullable=False),
        sa.Column("verdicts", sa.Text, nullable=False),
        sa.ForeignKeyConstraint(["run_id", "host"], ["hosts.run_id", "hosts.name"],
                                ondelete="CASCADE"),
    )
    op.create_index("ix_ports_host_port", "ports", ["host", "port"])
    op.create_table(
        "listeners",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("host", sa.Text, primary_key=True),
        sa.Column("proto", sa.String(8), primary_key=True),
        sa.Column("port", sa.Integer, primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("exe", sa.Text),
        sa.Column("sha256", sa.String(64)),
        sa.Column("package", sa.Text),
        sa.Column("version", sa.Text),
        sa.Column("user_name", sa.Text),
        sa.Column("unit", sa.Text),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("pids", sa.Text, nullable=False),
        sa.ForeignKeyConstraint(["run_id", "host", "proto", "port"],
                                ["ports.run_id", "ports.host", "ports.proto", "ports.port"],
                                ondelete="CASCADE"),
    )
    op.create_table(
        "findings",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("host", sa.Text, primary_key=True),
        sa.Column("finding_id", sa.String(64), primary_key=True),
        sa.Column("rule", sa.Text, nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("proto", sa.String(8)),
        sa.Column("port", sa.Integer),
        sa.Column("message", sa.Text, nullable=False),
        sa.ForeignKeyConstraint(["run_id", "host"], ["hosts.run_id", "hosts.name"],
                                ondelete="CASCADE"),
    )


def downgrade() -> None:
    for table in ("findings", "listeners", "ports", "hosts", "runs"):
        op.drop_table(table)
