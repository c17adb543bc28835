"""Test doubles for fleetaudit's engine, importable by the project's tests and by users'.

`fakehost.FakeFleet().connect` is a transport factory for `run_audit(..., connect=...)`;
each FakeHost answers the collection's round scripts from real captured output.
"""
