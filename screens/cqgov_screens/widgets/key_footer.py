"""The command centre's footer: Textual's, composed when the key bindings change rather than after the next paint.

Textual's ``Footer`` starts empty and fills itself after the screen's next refresh whenever the bindings
change (focus moves, the screen is shown). At start that refresh is the first full frame, so the footer's
keys then arrive with a second full layout and paint of every pane. This one composes on the next turn of
its own message loop, so the keys are in the first frame; several changes in one turn compose once.
"""

from __future__ import annotations

from textual.widgets import Footer


class KeyFooter(Footer):
    _compose_pending = False

    def bindings_changed(self, screen) -> None:
        self._bindings_ready = True  # Textual's flag: compose shows the bindings from now on
        if not screen.app.app_focus or not self.is_attached or screen is not self.screen:
            return
        if not self._compose_pending:
            self._compose_pending = True
            self.call_next(self._compose_now)

    async def _compose_now(self) -> None:
        self._compose_pending = False
        await self.recompose()
