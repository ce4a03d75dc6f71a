"""The terminal closing under ``cqgov demo``: the console saves its state and exits, the demo stops
every tier server, nothing is left behind. A real pseudo-terminal: closing its master side makes the
kernel send SIGHUP to the session, as killing a tmux session or an ssh link does."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
START_S = 120.0  # bound on the servers starting and the console drawing (a loaded CI machine)
STOP_S = 10.0  # bound on everything being gone after the hang-up


def _take_terminal() -> None:
    """In the child, after setsid: make the pty (its stdin) the session's controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _procs_of(data_dir: str) -> list[str]:
    out = subprocess.run(["ps", "-eww", "-o", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if data_dir in line and "cqgov_tui" in line]


def _read_until(fd: int, marker: bytes, proc, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            seen = (seen + chunk)[-200_000:]
            if marker in seen:
                return seen
    raise AssertionError(f"no {marker!r} from the console (exit {proc.poll()}): {seen[-600:]!r}")


def test_closing_the_terminal_saves_state_and_stops_every_server(tmp_path):
    data = str(tmp_path / "demo")
    config = tmp_path / "config"
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {**os.environ, "PYTHONPATH": ROOT, "TERM": "xterm-256color", "XDG_CONFIG_HOME": str(config),
           "TEXTUAL_ANIMATIONS": "none"}
    # A new session whose controlling terminal is the pty (the child opens the slave after setsid).
    proc = subprocess.Popen([sys.executable, "-m", "cqgov_tui", "demo", "--data-dir", data, "--lang", "en",
                             "--streets-per-district", "1", "--rate", "2"],
                            cwd=ROOT, env=env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                            preexec_fn=_take_terminal)
    os.close(slave)
    try:
        # The status bar's outbox count appears once the console has drawn its first frame.
        _read_until(master, b"outbox", proc, START_S)
        assert len(_procs_of(data)) >= 6  # 1 city, 2 districts, 2 streets, the demo itself
        os.close(master)  # the terminal goes away: the kernel hangs up the session
        master = -1
        t0 = time.monotonic()
        proc.wait(timeout=STOP_S)
        deadline = t0 + STOP_S
        while _procs_of(data) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _procs_of(data), _procs_of(data)
        assert proc.returncode == 128 + signal.SIGHUP
        state = json.loads((config / "cqgov" / "console-state.json").read_text(encoding="utf-8"))
        assert state["lang"] == "en"
    finally:
        if master >= 0:
            os.close(master)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        for line in _procs_of(data):
            os.kill(int(line.split()[0]), signal.SIGKILL)
