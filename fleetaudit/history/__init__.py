"""The history store: every audit recorded, so the next one can say what changed.

An edge module (it does I/O). SQLite by default, a file under the user's data folder,
so one machine needs nothing set up; PostgreSQL when given a URL, so a team's CI runners
share one history. It stores each run's `fleetaudit.drift.Snapshot` (the run, and per
host and port the external observation, the listeners' process chains, the verdicts and
the active findings) in plain tables, never the raw evidence: that stays in the run's
folder, whose path is recorded.

Why SQLAlchemy Core with Alembic: one schema and one set of queries for both databases
(Core's SQL expression language, no ORM: the rows map to pydantic models here, which
already are the project's objects), a driver for each (sqlite3, psycopg 3), and
migrations from day one, applied by the program itself when it opens a store (shipped
in `migrations/`), so a store written by this version is upgraded in place by the next.
One transaction per run: a crash or a kill -9 while recording leaves the store as it
was, never half a run.

Modules: `location` (where the store is; light, so the command line starts fast),
`store` (open, migrate, record, read, retain), `schema` (the tables), `migrations/`.
"""
