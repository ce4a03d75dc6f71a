"""A loopback HTTP/1.1 proxy that makes a bad link: delay, jitter, loss, duplicates, reordering,
a bandwidth cap, cut connections and replies dropped after the server acted.

``tc netem`` is not available on these machines, so tests put this between
client and server. It frames HTTP/1.1 messages by Content-Length so that it
can duplicate whole requests and drop whole replies:

* delay_ms ± jitter_ms on every message, order kept within a connection;
* loss: each 1 KiB segment is "lost" with this probability and arrives one
  retransmission timeout (rto_ms) late, as TCP makes a lost packet look;
* dup: a request is also sent again on a side connection after a random
  delay (so it may arrive out of order); its reply is thrown away;
* rate_kbit: both directions share a token bucket of this many kbit/s;
* cut: each message is cut mid-way with this probability (connection reset);
* drop_reply: a reply is thrown away after the server sent it (so after it
  committed) and the connection reset; ``drop_reply_max`` caps how many;
* down: every connection is refused while set.

Only 127.0.0.1 is ever contacted. ``stop()`` closes everything.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time


class NetProxy:
    def __init__(self, target_port: int, *, seed: int = 0, delay_ms: float = 0.0, jitter_ms: float = 0.0,
                 loss: float = 0.0, rto_ms: float = 200.0, dup: float = 0.0, rate_kbit: float | None = None,
                 cut: float = 0.0, drop_reply: float = 0.0, drop_reply_max: int | None = None, down: bool = False):
        self.target_port = target_port
        self.rng = random.Random(seed)
        self.delay_ms, self.jitter_ms, self.loss, self.rto_ms = delay_ms, jitter_ms, loss, rto_ms
        self.dup, self.rate_kbit, self.cut = dup, rate_kbit, cut
        self.drop_reply, self.drop_reply_max, self.down = drop_reply, drop_reply_max, down
        self.stats = {"connections": 0, "requests": 0, "replies": 0, "dropped_replies": 0, "cuts": 0, "dups": 0,
                      "lost_segments": 0, "bytes_up": 0, "bytes_down": 0, "refused": 0}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._bucket_at = 0.0
        self._writers: set = set()
        self.port = 0

    def set(self, **opts) -> None:
        for k, v in opts.items():
            if not hasattr(self, k):
                raise AttributeError(k)
            setattr(self, k, v)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------ lifecycle

    def start(self) -> "NetProxy":
        self._thread = threading.Thread(target=self._run, name="netproxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("netproxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._shutdown)
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
            # Connections were aborted in _shutdown, so handlers end on their own; wait briefly for them.
            pending = [t for t in asyncio.all_tasks(self._loop) if not t.done()]
            if pending:
                self._loop.run_until_complete(asyncio.wait(pending, timeout=2))
        finally:
            self._loop.close()

    def _shutdown(self) -> None:
        self._server.close()
        for w in list(self._writers):
            _abort(w)
        self._loop.stop()

    # ------------------------------------------------------------ link model

    async def _transmit(self, writer, data: bytes, cut_at: int | None = None) -> bool:
        """Send ``data`` through the shaped link; False if the connection was cut."""
        for off in range(0, len(data), 1024):
            seg = data[off:off + 1024]
            if cut_at is not None and off >= cut_at:
                return False
            if self.loss and self.rng.random() < self.loss:
                self.stats["lost_segments"] += 1
                await asyncio.sleep(self.rto_ms / 1000.0)
            if self.rate_kbit:
                # Shared token bucket: each segment occupies the link for its serialisation time.
                now = time.monotonic()
                start = max(now, self._bucket_at)
                self._bucket_at = start + len(seg) * 8 / (self.rate_kbit * 1000.0)
                await asyncio.sleep(self._bucket_at - now)
            try:
                writer.write(seg)
                await writer.drain()
            except (ConnectionError, RuntimeError):
                return False
        return True

    def _latency(self) -> float:
        d = self.delay_ms + (self.rng.uniform(-self.jitter_ms, self.jitter_ms) if self.jitter_ms else 0.0)
        return max(0.0, d) / 1000.0

    # ------------------------------------------------------------ connections

    async def _handle(self, creader, cwriter) -> None:
        self.stats["connections"] += 1
        if self.down:
            self.stats["refused"] += 1
            _abort(cwriter)
            return
        try:
            ureader, uwriter = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            _abort(cwriter)
            return
        self._writers.update((cwriter, uwriter))
        try:
            while True:
                request = await _read_message(creader)
                if request is None or self.down:
                    break
                self.stats["requests"] += 1
                self.stats["bytes_up"] += len(request)
                await asyncio.sleep(self._latency())
                if not self._server.is_serving():
                    break
                if self.dup and self.rng.random() < self.dup:
                    self.stats["dups"] += 1
                    asyncio.ensure_future(self._duplicate(request, self.rng.uniform(0, 2 * self.delay_ms + 50) / 1000))
                cut_at = self.rng.randrange(len(request)) if self.cut and self.rng.random() < self.cut else None
                if not await self._transmit(uwriter, request, cut_at):
                    self.stats["cuts"] += 1
                    break
                reply = await _read_message(ureader)
                if reply is None:
                    break
                self.stats["replies"] += 1
                if self.drop_reply and self.rng.random() < self.drop_reply and (
                        self.drop_reply_max is None or self.stats["dropped_replies"] < self.drop_reply_max):
                    self.stats["dropped_replies"] += 1  # the server has acted; the client never hears
                    break
                await asyncio.sleep(self._latency())
                cut_at = self.rng.randrange(len(reply)) if self.cut and self.rng.random() < self.cut else None
                if not await self._transmit(cwriter, reply, cut_at):
                    self.stats["cuts"] += 1
                    break
                self.stats["bytes_down"] += len(reply)
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            for w in (cwriter, uwriter):
                _abort(w)
                self._writers.discard(w)

    async def _duplicate(self, request: bytes, after: float) -> None:
        await asyncio.sleep(after)
        if not self._server.is_serving():
            return
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            return
        try:
            writer.write(request)
            await writer.drain()
            await _read_message(reader)
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            _abort(writer)


async def _read_message(reader) -> bytes | None:
    """One HTTP/1.1 message framed by Content-Length (what this project's server always sends)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise
        return None
    except asyncio.LimitOverrunError:
        raise ValueError("header too large") from None
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        elif name.strip().lower() == b"transfer-encoding":
            raise ValueError("chunked messages are not supported by netproxy")
    body = await reader.readexactly(length) if length else b""
    return head + body


def _abort(writer) -> None:
    try:
        writer.transport.abort()
    except Exception:
        pass
