"""Long-polls end when the server stops or the caller hangs up; shutdown leaves no errors in the log.

A real uvicorn on a loopback port in this process, configured as `cqgov serve`
configures it (1 s graceful-shutdown timeout). Every wait below is bounded
and every server is stopped in a ``finally``.
"""

from __future__ import annotations

import logging
import threading
import time

import httpx
import uvicorn

from cqgov_tui.sync.longpoll import CommitWaiters
from synchost import TierServing

SECRET = b"shutdown-test-secret-0123456789abcdef0"
LONG_WAIT = 20  # a long-poll's wait, far longer than any bound below


class Serving(TierServing):
    def __init__(self, tmp_path):
        super().__init__(tmp_path, "district", "500108", SECRET)

    def cursor(self) -> str:
        info = httpx.get(f"{self.url}/v1/sync/info", headers={"Authorization": f"Bearer {self.token}"}).json()
        return f"{info['epoch']}:{info['head']}"

    def long_poll(self, cursor: str, out: dict) -> None:
        try:
            r = httpx.get(f"{self.url}/v1/changes", params={"cursor": cursor, "wait": LONG_WAIT},
                          headers={"Authorization": f"Bearer {self.token}", "Accept": "application/json"},
                          timeout=LONG_WAIT + 10)
            out["status"] = r.status_code
            out["has_more"] = r.headers.get("x-cqgov-has-more")
        except httpx.HTTPError as exc:
            out["error"] = repr(exc)


def _waiting_tasks(uv: uvicorn.Server) -> int:
    return len(uv.server_state.tasks)


def _commit_waiters(s: Serving) -> CommitWaiters:
    """The sync router's long-poll waiters (they listen for the store's commits)."""
    (waiters,) = [f.__self__ for f in s.store.commit_listeners if isinstance(getattr(f, "__self__", None), CommitWaiters)]
    return waiters


def test_stopping_the_server_answers_its_long_polls_and_logs_no_error(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    with Serving(tmp_path) as s:
        out: dict = {}
        poller = threading.Thread(target=s.long_poll, args=(s.cursor(), out), daemon=True)
        poller.start()
        # Parked in the server's long-poll wait (a request task alone may still be the cursor's request
        # winding down, with the poll not yet connected on a loaded machine).
        waiters = _commit_waiters(s)
        deadline = time.monotonic() + 10
        while waiters.waiting == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert waiters.waiting == 1  # the long-poll is being held
        s.uv.should_exit = True
        s.thread.join(10)
        poller.join(10)
        assert not s.thread.is_alive() and not poller.is_alive()
        # the waiting caller got an ordinary empty delta, not a cut connection
        assert out.get("status") == 200 and out.get("has_more") == "0", out
        assert s.server.stopping.is_set() and not s.server.scheduler.is_alive()
    problems = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not problems, [r.getMessage() for r in problems]


def test_a_caller_hanging_up_ends_its_long_poll(tmp_path):
    with Serving(tmp_path) as s:
        cursor = s.cursor()
        with httpx.Client(base_url=s.url, headers={"Authorization": f"Bearer {s.token}"}, timeout=0.5) as http:
            try:
                http.get("/v1/changes", params={"cursor": cursor, "wait": LONG_WAIT})
            except httpx.ReadTimeout:
                pass  # the caller gives up and closes its connection
        deadline = time.monotonic() + 10
        while _waiting_tasks(s.uv) and time.monotonic() < deadline:
            time.sleep(0.05)
        # the server let go of the request long before its wait was up
        assert _waiting_tasks(s.uv) == 0
