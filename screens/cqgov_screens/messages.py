"""Typed messages between the refresh worker, the panes and the app."""

from __future__ import annotations

from textual.message import Message

from cqgov_tui.console.feed import Frame


class FrameReady(Message):
    """A refresh finished off the UI thread; panes apply only what changed."""

    def __init__(self, frame: Frame) -> None:
        super().__init__()
        self.frame = frame


class BoardReady(Message):
    """The runway board was recomputed (its own worker, on a slow timer)."""

    def __init__(self, board) -> None:
        super().__init__()
        self.board = board


class PaneFilled(Message):
    """A pane shows real content for the first time (see ``cqgov_tui.console.readiness``)."""

    def __init__(self, pane: str) -> None:
        super().__init__()
        self.pane = pane


class ConsoleReady(Message):
    """Every pane and the status bar show real content: what a person waits for at start."""


class ResourcesLoaded(Message):
    """The catalogue and registry are in memory (a worker loaded them): names and shapes can be drawn."""


class RefreshFailed(Message):
    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class OpenEvent(Message):
    def __init__(self, event_id: str) -> None:
        super().__init__()
        self.event_id = event_id


class EventSelected(Message):
    """The cursor moved to an event: the map highlights its region."""

    def __init__(self, event_id: str, district: str, place_code: str) -> None:
        super().__init__()
        self.event_id = event_id
        self.district = district
        self.place_code = place_code


class OpenDirective(Message):
    def __init__(self, directive_id: str) -> None:
        super().__init__()
        self.directive_id = directive_id


class MapDrilled(Message):
    """The map changed level; the feed recomputes the fill for the new level."""
