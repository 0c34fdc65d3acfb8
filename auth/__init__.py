"""Token authentication: a token store (no web framework inside) and the aiohttp middleware that uses it."""
