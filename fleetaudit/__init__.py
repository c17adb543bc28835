"""fleetaudit: what really listens on every open port of a fleet, seen from outside and inside."""

__version__ = "0.1.0"
