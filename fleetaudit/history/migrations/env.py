"""Alembic's entry point, run by fleetaudit.history.store on the connection it hands over."""

from alembic import context

from fleetaudit.history.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
