"""Tier server: the ASGI app owning one store, auth and scoping, command handlers, federation."""
