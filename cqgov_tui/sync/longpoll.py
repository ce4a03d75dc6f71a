"""Long-polls that cost nothing while they wait: parked on the store's next commit, not on a timer.

A ``/v1/changes?wait=S`` request with nothing new used to re-read the store's
head every 50 ms on a worker thread; a thousand idle street clients kept a
core busy and still saw a new event ~2 s late. Here one store commit listener
(``Store.commit_listeners``, called with the new head by the committing
thread) wakes every event loop that has waiters through
``call_soon_threadsafe``; each loop resolves one shared "generation" future
that all of its waiters await. An idle waiter is a future callback and a timer
handle: no thread, no store read, no wake-up until something commits, its wait
runs out, the server begins to stop, or its caller hangs up.

The server's stop signal (``host.stopping``) is a ``threading.Event``, which
cannot call back; one small task per loop looks at it every
``STOP_CHECK_S`` while (and only while) that loop has waiters, and wakes them
all when it is set. A caller hanging up is seen by awaiting the request's ASGI
``receive`` channel (it yields ``http.disconnect``), one parked task per
waiter, never by asking ``is_disconnected()`` on a timer.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any, Awaitable, Callable, MutableMapping

if TYPE_CHECKING:
    from ..store import Store

STOP_CHECK_S = 0.1  # how soon waiters notice that the server began to stop (uvicorn allows 1 s)

COMMIT, TIMEOUT, STOPPING, HUNG_UP = "commit", "timeout", "stopping", "hung-up"


class _LoopWaiters:
    """The waiters of one event loop: their count and the future the next commit resolves."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()
        self.waiting = 0  # guarded by CommitWaiters._lock
        self.wake_pending = False  # a wake is scheduled on the loop and has not run yet (coalesces bursts)
        self.stop_watch: asyncio.Task | None = None

    def wake(self) -> None:
        """On the loop: release everyone waiting on the current generation."""
        fut, self.future = self.future, self.loop.create_future()
        if not fut.done():
            fut.set_result(None)


class CommitWaiters:
    """Parks long-polls until the store's head moves past what they have seen.

    ``head`` is the highest change-log head any commit has reported (0 until
    the first commit in this process, or until ``observe`` is told one).
    ``generation`` counts commits; readers use it to tell whether something
    cached from the store (such as the compaction floor) may be stale.
    """

    def __init__(self, store: "Store", stopping: threading.Event | None = None, stop_check_s: float = STOP_CHECK_S):
        self.stopping = stopping
        self.stop_check_s = stop_check_s
        self.head = 0
        self.generation = 0
        self.parks = 0  # times a waiter has parked (tests and benchmarks watch it)
        self._lock = threading.Lock()
        self._loops: dict[asyncio.AbstractEventLoop, _LoopWaiters] = {}
        store.commit_listeners.append(self._on_commit)

    # ------------------------------------------------------------ committing thread

    def _on_commit(self, head: int) -> None:
        """Commit listener: quick, never raises, never touches the store."""
        wake: list[_LoopWaiters] = []
        with self._lock:
            self.generation += 1
            if head > self.head:
                self.head = head
            for lw in self._loops.values():
                if lw.waiting and not lw.wake_pending:
                    lw.wake_pending = True
                    wake.append(lw)
        for lw in wake:
            try:
                lw.loop.call_soon_threadsafe(self._wake_loop, lw)
            except RuntimeError:  # that loop has closed: forget it
                with self._lock:
                    self._loops.pop(lw.loop, None)

    def observe(self, head: int) -> None:
        """Note a head read from the store (committed: the store lock was free when it was read)."""
        with self._lock:
            if head > self.head:
                self.head = head

    # ------------------------------------------------------------ event loop

    def _wake_loop(self, lw: _LoopWaiters) -> None:
        with self._lock:
            lw.wake_pending = False
        lw.wake()

    def _loop_waiters(self) -> _LoopWaiters:
        loop = asyncio.get_running_loop()
        with self._lock:
            lw = self._loops.get(loop)
            if lw is None:
                lw = self._loops[loop] = _LoopWaiters(loop)
                # A loop that has closed (a test's server, say) is forgotten with its waiters.
                for old in [k for k in self._loops if k.is_closed()]:
                    del self._loops[old]
            return lw

    @property
    def waiting(self) -> int:
        """Long-polls parked right now, over all loops."""
        with self._lock:
            return sum(lw.waiting for lw in self._loops.values())

    def is_stopping(self) -> bool:
        return self.stopping is not None and self.stopping.is_set()

    async def _watch_stop(self, lw: _LoopWaiters) -> None:
        """While this loop has waiters, wake them all once the server begins to stop."""
        try:
            while True:
                await asyncio.sleep(self.stop_check_s)
                with self._lock:
                    if not lw.waiting:
                        lw.stop_watch = None
                        return
                if self.is_stopping():
                    lw.wake()
                    with self._lock:
                        lw.stop_watch = None
                    return
        except asyncio.CancelledError:
            with self._lock:
                lw.stop_watch = None
            raise

    async def wait_past(self, seen_head: int, timeout: float,
                        hung_up: "asyncio.Future[Any] | None" = None) -> str:
        """Wait until a commit moves the head past ``seen_head``: returns COMMIT, TIMEOUT, STOPPING or HUNG_UP.

        ``hung_up`` is a task that finishes when the caller goes away (see ``watch_disconnect``).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        lw = self._loop_waiters()
        with self._lock:
            lw.waiting += 1
            if self.stopping is not None and lw.stop_watch is None:
                lw.stop_watch = loop.create_task(self._watch_stop(lw))
        try:
            while True:
                if self.is_stopping():
                    return STOPPING
                if hung_up is not None and hung_up.done():
                    return HUNG_UP
                # Read under the lock after registering as a waiter: a commit either shows here
                # or schedules a wake for this loop, so none is lost between the read and the await.
                with self._lock:
                    moved = self.head > seen_head
                if moved:
                    return COMMIT
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return TIMEOUT
                self.parks += 1
                waits: set[asyncio.Future] = {lw.future}
                if hung_up is not None:
                    waits.add(hung_up)
                await asyncio.wait(waits, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        finally:
            with self._lock:
                lw.waiting -= 1


async def _until_disconnect(receive: Callable[[], Awaitable[MutableMapping[str, Any]]]) -> None:
    while True:
        message = await receive()
        if message.get("type") == "http.disconnect":
            return


def watch_disconnect(receive: Callable[[], Awaitable[MutableMapping[str, Any]]]) -> asyncio.Task[None]:
    """A task that ends when the ASGI ``receive`` channel reports ``http.disconnect``.

    For a GET the first message is the (empty) request body; the next one
    arrives only when the caller hangs up (or the response is complete), so
    the task sleeps at no cost meanwhile. Cancel it once the reply is chosen.
    """
    return asyncio.get_running_loop().create_task(_until_disconnect(receive))
