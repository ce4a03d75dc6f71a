"""A titled, focusable pane of the command centre ("1 事件 (37)")."""

from __future__ import annotations

from textual.containers import Vertical


class Pane(Vertical):
    def __init__(self, number: int, title: str, **kw):
        super().__init__(**kw)
        self.number = number
        self.title = title
        self.count: int | None = None
        self.subtitle = ""
        self._retitle()

    def set_title(self, title: str) -> None:
        self.title = title
        self._retitle()

    def set_count(self, n: int) -> None:
        if n != self.count:
            self.count = n
            self._retitle()

    def set_subtitle(self, text: str) -> None:
        self.subtitle = text
        self._retitle()

    def _retitle(self) -> None:
        count = f" ({self.count})" if self.count is not None else ""
        self.border_title = f"{self.number} {self.title}{count}"
        self.border_subtitle = self.subtitle

    def focus_inner(self) -> None:
        for child in self.query("*"):
            if child.focusable and child.display:
                child.focus()
                return
