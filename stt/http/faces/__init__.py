"""API faces."""
