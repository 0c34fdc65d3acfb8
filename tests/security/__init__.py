"""Tests of security (the shared helpers are in tests/: helpers.py, conftest.py, live_helpers.py...)."""
