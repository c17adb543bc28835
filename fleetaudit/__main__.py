"""`python -m fleetaudit` is the same as the `fleetaudit` command."""

from fleetaudit.cli import app

app()
