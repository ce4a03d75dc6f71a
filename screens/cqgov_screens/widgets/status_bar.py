"""The status bar: tier and code, server, user and role, sync state, outbox and clock on one line; the last
refusal or message on a second line below it, wrapped (never cut off), shown only while there is one."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from cqgov_tui.clock import fmt_local
from cqgov_tui.console.backend import LinkStatus
from cqgov_tui.domain.entities import Role, Tier
from cqgov_tui.textsafe import plain

from .. import theme
from ..messages import PaneFilled


MAX_MESSAGE = 600  # characters of one message (a runaway reason is bounded, an ordinary one never cut)


class StatusBar(Static):
    def __init__(self, strings, tier: Tier, code: str, user, **kw):
        super().__init__("", **kw)
        self.t = strings
        self.tier = tier
        self.code = code
        self.user = user
        self.link = LinkStatus(mode="connecting")
        self.now = 0.0
        self.message = ""
        self.message_error = False
        self.low_bandwidth = False
        self._last: tuple | None = None
        self.filled = False  # the backend's link state and the clock are shown

    def set_state(self, *, link: LinkStatus | None = None, now: float | None = None) -> None:
        if link is not None:
            self.link = link
        if now is not None:
            self.now = now
        self._redraw()
        if link is not None and self.now and not self.filled:
            self.filled = True
            self.post_message(PaneFilled("status"))

    def say(self, message: str, error: bool = False) -> None:
        self.message = plain(message)[:MAX_MESSAGE]
        self.message_error = error
        self._redraw()

    def _sync_text(self) -> tuple[str, object]:
        l = self.link
        if l.mode == "local":
            return self.t("status.local"), ""
        if l.mode == "live":
            return self.t("status.live"), "bold #30d158"
        if l.mode == "lagging":
            return self.t("status.lagging", n=int(l.lag_s or 0)), theme.SUPERVISED
        if l.mode == "offline":
            since = fmt_local(l.offline_since) if l.offline_since else "-"
            return self.t("status.offline", t=since), theme.OVERDUE
        return self.t("status.connecting"), theme.DIM

    def _redraw(self) -> None:
        zh = self.t.lang == "zh"
        tier = self.tier.zh if zh else self.tier.value
        role = Role(self.user.role).zh if zh else Role(self.user.role).value
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f" {tier} {self.code} ", style="reverse")
        text.append(f" {plain(self.user.user)}·{role} ")
        if self.link.server and self.link.mode != "local":
            text.append(f"│ {plain(self.link.server)} ", style=theme.DIM)
        sync, style = self._sync_text()
        text.append("│ ")
        text.append(sync, style=style)
        text.append(f" │ {self.t('status.outbox')} {self.link.outbox} ")
        if self.low_bandwidth:
            text.append(f"│ {self.t('status.lowbw')} ", style=theme.SUPERVISED)
        text.append(f"│ {fmt_local(self.now, with_date=True)}" if self.now else "")
        # The second line: whole sentences, wrapped to the width (a refusal must be readable in full).
        notes = Text()
        if self.link.rejections:
            last = self.link.rejections[-1]
            notes.append(f"{self.t('status.rejected')}: {plain(self.t.refusal(last.code, last.reason))[:MAX_MESSAGE]}",
                         style=theme.OVERDUE)
        elif self.link.last_error and self.link.mode != "live":
            notes.append(self._link_error(), style=theme.OVERDUE)
        if self.message:
            if notes:
                notes.append(" │ ")
            notes.append(self.message, style=theme.OVERDUE if self.message_error else "")
        width = self.size.width
        if notes:
            # One Text (tests and screen readers get its plain text): the state line kept to one row by hand,
            # the notes wrapped below it.
            if width:
                text.truncate(width, overflow="ellipsis")
            text = Text.assemble(text, "\n", notes, no_wrap=False)
        # The width matters only to the notes' wrapping: without notes, the first layout's resize redraws nothing.
        key = (width if notes else None, text.plain, tuple(text.spans))
        if key != self._last:
            self._last = key
            self.update(text)

    def on_resize(self, event) -> None:
        self._redraw()

    def _link_error(self) -> str:
        """The link's last error: a rate limit in the console's language, anything else as the client said."""
        error = plain(self.link.last_error)
        if "HTTP 429" in error:
            return self.t.refusal("rate_limited", error)
        return error[:MAX_MESSAGE]
