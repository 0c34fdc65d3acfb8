"""Tests of live (the shared helpers are in tests/: helpers.py, conftest.py, live_helpers.py...)."""
