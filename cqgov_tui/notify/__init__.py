"""Notifications to people: an outbox of their own (``service``), e-mail and webhook senders (``channels``),
the server's TOML settings (``config``)."""
