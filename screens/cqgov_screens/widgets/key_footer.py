"""The command centre's footer: Textual's, with its keys in the first frame and recomposed only when they change.

Textual's ``Footer`` starts empty and recomposes after the screen's next refresh whenever the bindings may
have changed (focus moves, the screen is shown). At start that refresh is the first full frame, so the keys
arrived with a second full layout and paint of every pane. This one composes with the bindings it finds when
mounted, and on a change recomposes on the next turn of its own message loop, and only if the keys it would
show differ from those it shows (several changes in one turn compose once). Until a pane has focus it shows
nothing: the bindings then are not yet the ones it will show.
"""

from __future__ import annotations

from textual.widgets import Footer


class KeyFooter(Footer):
    _compose_pending = False
    _shown: tuple | None = None

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._bindings_ready = True  # Textual's flag: compose shows the bindings (its own waits for a change)

    def compose(self):
        # Before the screen gives a pane focus the bindings are not the ones it will show: compose nothing
        # yet (mounting keys into an empty footer later is cheap; replacing shown ones is another layout).
        try:
            focused = self.screen.focused is not None
        except Exception:  # not on a screen yet
            focused = False
        self._shown = self._keys() if focused else None
        if focused:
            yield from super().compose()

    def _keys(self) -> tuple:
        try:
            bindings = self.screen.active_bindings
        except Exception:  # not on a screen yet: nothing to show
            return ()
        return tuple((b.key, b.action, b.description, enabled, tooltip)
                     for (_, b, enabled, tooltip) in bindings.values() if b.show)

    def bindings_changed(self, screen) -> None:
        if not screen.app.app_focus or not self.is_attached or screen is not self.screen:
            return
        if not self._compose_pending:
            self._compose_pending = True
            self.call_next(self._compose_now)

    async def _compose_now(self) -> None:
        self._compose_pending = False
        if self._keys() != self._shown:
            await self.recompose()
