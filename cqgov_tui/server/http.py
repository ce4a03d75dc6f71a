"""HTTP/1.1 for tier servers: uvicorn's h11 protocol with read timeouts, and the config ``cqgov serve`` uses.

uvicorn times out only idle keep-alive connections: a client that opens a
connection and sends its headers (or its body) a byte at a time holds it for
as long as it likes (slow-loris), and a few hundred of them hold the server's
sockets. ``TimedH11Protocol`` gives each request ``header_timeout`` seconds
from its first byte (or from the connection) to complete its headers, and
its body ``body_timeout`` seconds in all; past either the connection is
closed. Waiting for the *response* is not limited (long-polls hold a request
for up to a minute).
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT_S = 10.0
# A command batch is at most 1 MiB; a street laptop at 64 kbit/s sends one in ~2 minutes.
BODY_TIMEOUT_S = 150.0


class TimedH11Protocol(H11Protocol):
    """h11 with a deadline on reading each request's headers and body (see the module doc)."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.header_timeout = float(getattr(config, "header_timeout", HEADER_TIMEOUT_S))
        self.body_timeout = float(getattr(config, "body_timeout", BODY_TIMEOUT_S))
        self._read_timer: asyncio.TimerHandle | None = None
        self._reading: object = None  # h11 state the timer was armed for

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._rearm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._rearm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._rearm()  # keep-alive: the next request's clock starts with its first byte (idle: keep-alive timer)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _rearm(self) -> None:
        """Arm the timer for the phase the request is in; a phase keeps the deadline it started with."""
        state: object = self.conn.their_state
        if state is h11.IDLE and self.timeout_keep_alive_task is not None:
            state = None  # idle between requests: uvicorn's keep-alive timer closes it
        if state not in (h11.IDLE, h11.SEND_BODY):
            self._disarm()
            return
        if state is self._reading and self._read_timer is not None:
            return
        self._disarm()
        self._reading = state
        limit = self.header_timeout if state is h11.IDLE else self.body_timeout
        self._read_timer = self.loop.call_later(limit, self._timed_out)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
        self._read_timer, self._reading = None, None

    def _timed_out(self) -> None:
        self._read_timer = None
        if not self.transport.is_closing():
            self.logger.info("closing a connection that did not send its request in time")
            self.transport.close()


def server_config(app: Any, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning",
                  header_timeout: float = HEADER_TIMEOUT_S, body_timeout: float = BODY_TIMEOUT_S,
                  **kwargs: Any) -> uvicorn.Config:
    """The uvicorn config of a tier server: lifespan on, 1 s graceful shutdown, no access log, timed reads."""
    kwargs.setdefault("lifespan", "on")
    kwargs.setdefault("timeout_graceful_shutdown", 1)
    kwargs.setdefault("access_log", False)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, http=TimedH11Protocol, **kwargs)
    config.header_timeout = header_timeout  # type: ignore[attr-defined]  # read by TimedH11Protocol
    config.body_timeout = body_timeout  # type: ignore[attr-defined]
    return config
