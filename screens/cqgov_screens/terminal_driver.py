"""Textual's Linux driver, made to survive its terminal going away (ssh drop, tmux kill, laptop lid).

When a terminal hangs up the kernel sends SIGHUP *and* SIGCONT. Textual's driver answers SIGCONT by
restarting application mode — a second output thread on a dead terminal — and its output thread dies on
the first write that gets EIO, after which the 31st queued write blocks the app for ever. Both left
``cqgov demo`` hung after a hang-up in about half the runs. Here, output to a gone terminal is dropped
instead of raised, and a SIGCONT on a hung-up terminal is not a resume.
"""

from __future__ import annotations

import termios
import threading

from textual.drivers.linux_driver import LinuxDriver


class _SurvivingOutput:
    """The terminal's stream, minus the errors it raises once the terminal is gone."""

    def __init__(self, stream, gone: threading.Event):
        self._stream = stream
        self._gone = gone

    def write(self, text: str) -> None:
        if self._gone.is_set():
            return
        try:
            self._stream.write(text)
        except (OSError, ValueError):  # EIO after a hang-up; ValueError if the stream was closed
            self._gone.set()

    def flush(self) -> None:
        if self._gone.is_set():
            return
        try:
            self._stream.flush()
        except (OSError, ValueError):
            self._gone.set()

    def fileno(self) -> int:
        return self._stream.fileno()

    def isatty(self) -> bool:
        return True


class TerminalDriver(LinuxDriver):
    """``LinuxDriver`` that stops drawing, instead of blocking or restarting, when the terminal is gone."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.terminal_gone = threading.Event()
        self._file = _SurvivingOutput(self._file, self.terminal_gone)

    def hang_up(self) -> None:
        """Called from the SIGHUP handler: nothing more reaches the screen."""
        self.terminal_gone.set()

    def _terminal_alive(self) -> bool:
        if self.terminal_gone.is_set():
            return False
        try:
            termios.tcgetattr(self.fileno)  # a hung-up tty answers every ioctl with EIO
        except (termios.error, OSError, ValueError):
            self.terminal_gone.set()
            return False
        return True

    def _sigcont_application(self, *args) -> None:
        # The SIGCONT that comes with a hang-up is not the user's ``fg``: nothing to resume onto.
        if self._terminal_alive():
            super()._sigcont_application(*args)
