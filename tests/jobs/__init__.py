"""Tests of asynchronous jobs: the API on a fake engine, restarts on the real server, PostgreSQL, the page."""
