"""One module per API face; each has ``setup(app)`` that adds its routes (and its error shape)."""
