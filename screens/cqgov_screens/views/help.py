"""`?` help: every binding, from the keymap table (so remapped keys show as remapped)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ..keymap import display_key, effective


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "close", "back", id="back")]

    def __init__(self, strings, overrides: dict[str, str], **kw):
        super().__init__(**kw)
        self.t = strings
        self.overrides = overrides

    def compose(self) -> ComposeResult:
        t = self.t
        text = Text()
        text.append(f"{t('help.title')}\n\n", style="bold")
        for bid, keys in effective(self.overrides):
            if bid.startswith("act:"):
                continue
            text.append(f"  {display_key(keys):<22}", style="bold")
            text.append(f"{t.key(bid)}\n")
        text.append("\n")
        for label, keys in (("pane.events", f"Enter  /  Esc  Space {t.key('group')}"), ("pane.map", "←↑→↓ hjkl  Enter  Backspace"),
                            ("pane.runways", f"Enter  Backspace  h {t.key('hot_list')}  k {t.key('ranking')}"), ("pane.directives", "Enter  c"),
                            ("help.receipts", "r  a  x  Esc")):
            text.append(f"  {t(label):<10}", style="bold")
            text.append(f"{keys}\n")
        text.append(f"\n{t('detail.actions')}\n", style="bold")
        from cqgov_tui.engine.lifecycle import RULES

        for bid, keys in effective(self.overrides):
            if bid.startswith("act:"):
                name = bid[4:]
                rule = RULES.get(name)
                text.append(f"  {display_key(keys):<6}{t.action(name, rule.zh if rule else name)}\n")
        text.append(f"\n{t('cmd.help')}\n\n{t('help.close')}", style="dim")
        with VerticalScroll(id="help-box"):
            yield Static(text)

    def action_close(self) -> None:
        self.dismiss(None)
