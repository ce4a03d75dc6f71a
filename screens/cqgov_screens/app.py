"""The console app: wires a ``Backend`` to the command centre and keeps it fresh.

A thread worker polls the core's ``ConsoleFeed`` (one ``max(seq)`` query when
idle) and posts a ``FrameReady``; panes apply only what changed. Start-up
never waits for the slow loads: the first frame shows the queue (codes until
names arrive), the map's colours, the directives and the link; from mount, one
worker loads the catalogue and registry (names, map shapes — a posted
``ResourcesLoaded`` then redraws with them) and another computes the runway
board (``BoardReady``), which then refreshes on a slow timer. Each pane says
when it first shows real content (``PaneFilled``); when all have, the app is
``ready`` (``ConsoleReady``). Countdowns tick once a second from the clock
alone, with no query. Nothing a worker or the network does can end the app:
failures go to the status bar and the next tick retries.

Screens other than the command centre are imported when first opened.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Callable

from textual import work
from textual.app import App
from textual.command import Hit, Hits, Provider

from cqgov_tui.console.feed import ConsoleFeed
from cqgov_tui.console.queue import QueueFilter, parse_filter
from .i18n import Strings, default_lang
from .keymap import ACTION_KEYS, app_bindings, load_overrides
from .launch import run_console  # noqa: F401  (the ``cqgov.console`` entry point names it here)
from cqgov_tui.console.readiness import StartProgress

from .messages import (BoardReady, ConsoleReady, EventSelected, FrameReady, MapDrilled, OpenDirective, OpenEvent,
                       PaneFilled, RefreshFailed, ResourcesLoaded)
from .views.command_centre import CommandCentre
from .widgets.directive_list import DirectiveList
from .widgets.event_queue import EventQueue
from .widgets.region_map import RegionMap
from .widgets.runway_board import RunwayBoard
from .widgets.status_bar import StatusBar

TICK_S = 1.0
START_LIMIT_S = 15.0  # start-up ends here even if a pane never fills (a failing board, an unreachable server)
TICK_LOW_BW_S = 5.0
# Exit codes the launcher passes on: the terminal went away, or the user interrupted (shell convention 128+N).
EXIT_HANGUP = 128 + signal.SIGHUP
EXIT_INTERRUPT = 128 + signal.SIGINT


class ConsoleCommands(Provider):
    """The command palette (ctrl+p): the same commands as the `:` line."""

    async def search(self, query: str) -> Hits:
        app = self.app
        matcher = self.matcher(query)
        for name, help_key in (("help", "help"), ("compose", "compose"), ("hot", "hot_list"), ("rank district", "ranking"),
                               ("rank street", "ranking"), ("rank department", "ranking"), ("supervise", "supervise"),
                               ("lang en", "lang"), ("lang zh", "lang"),
                               ("contrast", "contrast"), ("lowbw", "refresh"), ("dismiss", "dismiss"), ("top", "up"), ("quit", "quit")):
            label = f"{name} — {app.t.key(help_key)}"
            score = matcher.match(label)
            if score > 0:
                yield Hit(score, matcher.highlight(label), lambda n=name: app.run_command(n))


class ConsoleApp(App):
    CSS_PATH = "console.tcss"
    COMMANDS = App.COMMANDS | {ConsoleCommands}
    TITLE = "cqgov"
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = app_bindings()  # ids let ``keys.toml`` remap them through ``set_keymap``

    def __init__(self, backend, lang: str | None = None, low_bandwidth: bool = False, high_contrast: bool = False,
                 keys_path: Path | None = None, state_path: Path | None = None, tick_s: float | None = None,
                 feed: ConsoleFeed | None = None, first_frame=None, snapshot=None):
        super().__init__()
        self.backend = backend
        self.t = Strings(default_lang(lang))
        self.low_bandwidth_forced = low_bandwidth
        self.low_bandwidth = low_bandwidth
        self.high_contrast = high_contrast or os.environ.get("CQGOV_HIGH_CONTRAST") == "1"
        self.animate = os.environ.get("TEXTUAL_ANIMATIONS", "").lower() != "none" and not low_bandwidth
        self.feed = feed or ConsoleFeed(backend, limit=100 if low_bandwidth else 300)
        # A frame polled by the launcher while Textual was importing: drawn in the first paint. Or the panes'
        # content kept when the console last closed this store (``console.start_snapshot``): drawn in the
        # first paint, board included, then loaded again from the store by the workers once it is painted.
        self._first_frame = first_frame
        self.snapshot = snapshot
        self._loads_waiting = False
        self.store_error = ""  # the store (opened after a snapshot's frame) could not be opened: why
        self.overrides, self.keys_error = load_overrides(keys_path)
        self.action_keys = {a: self.overrides.get(a, k) for a, k in ACTION_KEYS.items()}
        self.state_path = state_path
        self.tick_s = tick_s or (TICK_LOW_BW_S if low_bandwidth else TICK_S)
        self.frames = 0
        self.last_error = ""
        self._first = True
        # Start-up: when the first frame was painted, and when every pane showed real content.
        self.progress = StartProgress()
        self.first_frame_at: float | None = None
        # The launcher's end of start-up (collector back on, ``launch._StartMode``): called once every pane
        # is filled, or after START_LIMIT_S whatever happened.
        self.started: Callable[[], None] | None = None

    # ------------------------------------------------------------ start and stop

    async def on_mount(self) -> None:
        app_overrides = {k: v for k, v in self.overrides.items() if k not in ACTION_KEYS}
        if app_overrides:
            self.set_keymap(app_overrides)
        if self.high_contrast:
            self.add_class("high-contrast")
        snap = self.snapshot
        if snap is not None or self._first_frame is not None:
            # Panes mounted, then filled, then laid out and painted: the first frame is drawn once, already
            # full (filling after ``push_screen`` returns would paint the empty panes first, a whole frame).
            await self.push_screen(self._centre(fill=self._fill_first))
        else:
            self.push_screen(self._centre())
            self.refresh_data(light=True)
        # The slow loads start now, on threads (the launcher may be doing them or have done them: the
        # worker then waits or returns at once; either way its message brings names to the first rows).
        # From a snapshot they wait until its frame is painted (or start-up's time limit), so the first
        # paint does not share the interpreter with them; a snapshot without a board waits for nothing.
        self._load_resources()
        # A store the launcher left closed opens in ``_start_loads`` too: after the painted frame, or now
        # when the snapshot has no board (the runway pane then waits for the store).
        if snap is not None and snap.board is not None:
            self._loads_waiting = True
        else:
            self._start_loads()
        try:
            self.backend.start()
        except Exception as exc:  # a link that cannot start yet is retried by the client; the screen stays up
            self.status_say(self.t.error(exc), error=True)
        if self.keys_error:
            self.status_say(self.keys_error, error=True)
        self._timer = self.set_interval(self.tick_s, self._tick)
        self._clock = self.set_interval(1.0, self._second)
        self._board_timer = self.set_interval(self.feed.board_every_s, self.refresh_board)
        self._catch_hangup()
        self.set_timer(START_LIMIT_S, self._start_limit)

    def _fill_first(self) -> None:
        """The panes' first content, held before the app started: the snapshot's (board included) or the
        launcher's first poll."""
        snap = self.snapshot
        if snap is not None:
            self.on_frame_ready(FrameReady(self._snapshot_frame(snap)))
            if snap.board is not None:
                self.on_board_ready(BoardReady(snap.board))
        elif self._first_frame is not None:
            frame, self._first_frame = self._first_frame, None
            self.on_frame_ready(FrameReady(frame))
        # This runs in the screen's mount, so the panes' PaneFilled messages have the screen as sender, and
        # Textual stops a message at its sender: they never reach the app. What the panes show is told here.
        centre = self._centre_screen()
        if centre is not None:
            for pane, kind in (("events", EventQueue), ("map", RegionMap), ("runways", RunwayBoard),
                               ("directives", DirectiveList), ("status", StatusBar)):
                if centre.query_one(kind).filled:
                    self.on_pane_filled(PaneFilled(pane))

    def _snapshot_frame(self, snap) -> "Frame":
        """The snapshot's content as the feed's first frame: the link state and the clock are read now."""
        from cqgov_tui.console.feed import Frame

        return Frame(snap.head, self.backend.clock.now(), snap.queue, snap.fill, snap.directives, None,
                     self.backend.status(), named=True)

    def _store_pending(self) -> bool:
        """The launcher left the store to open after the snapshot's frame (``console.pending_store``)."""
        store = self.backend.store
        return bool(getattr(store, "pending", False)) and not store.is_open

    def _start_loads(self) -> None:
        """The loads from the store: a full poll (replacing a snapshot's frame) and the board; a store not
        yet open is opened first (off the UI thread), and they follow."""
        self._loads_waiting = False
        if self._store_pending():
            self._open_store()
            return
        if self.snapshot is not None:
            self.feed.invalidate()
            self.refresh_data(force=True)
        self.refresh_board(force=True)

    def _refresh_notifications(self) -> None:
        # Textual re-hides the (hidden) notification rack whenever a screen is shown, which costs a layout
        # and a render right after the first frame; with nothing to show on a hidden rack there is nothing
        # to do. Any notification (or a shown rack) still goes through Textual's own refresh.
        if not self._notifications:
            try:
                from textual.widgets._toast import ToastRack

                if not self.screen.get_child_by_type(ToastRack).display:
                    return
            except Exception:  # no screen or no rack yet: Textual's refresh says what to do
                pass
        super()._refresh_notifications()

    def get_driver_class(self):
        driver_class = super().get_driver_class()
        if driver_class.__name__ == "LinuxDriver":  # not when $TEXTUAL_DRIVER names another one
            from .terminal_driver import TerminalDriver

            return TerminalDriver
        return driver_class

    def _catch_hangup(self) -> None:
        """SIGHUP: stop drawing at once, then save state and leave through the event loop.

        A plain ``signal.signal`` handler, not ``loop.add_signal_handler``: Python runs pending
        handlers in signal-number order, so this runs before the driver sees the SIGCONT that comes
        with every hang-up, while the loop callback would run after it.
        """
        if not hasattr(signal, "SIGHUP"):  # POSIX only; Windows has no hang-up to save state on
            return
        import asyncio
        import threading

        if threading.current_thread() is not threading.main_thread():
            return  # signals reach only the main thread (some test runners run the app elsewhere)
        loop = asyncio.get_running_loop()

        def on_sighup(_signum, _frame) -> None:
            hang_up = getattr(self._driver, "hang_up", None)
            if hang_up is not None:
                hang_up()
            loop.call_soon_threadsafe(self._on_hangup)

        self._previous_sighup = signal.signal(signal.SIGHUP, on_sighup)

    def _centre(self, fill: Callable[[], None] | None = None) -> CommandCentre:
        return CommandCentre(self.backend, self.t, self.high_contrast, self.animate, fill=fill)

    def _on_hangup(self) -> None:
        """The terminal is gone: keep the state, leave at once (nothing more can be drawn)."""
        self.save_state()
        self.exit(return_code=EXIT_HANGUP)

    def on_unmount(self) -> None:
        if hasattr(self, "_previous_sighup"):
            signal.signal(signal.SIGHUP, self._previous_sighup or signal.SIG_DFL)
        self.backend.stop()

    def save_state(self) -> None:
        """Remember filter, language and map path so a lost terminal costs nothing."""
        if self.state_path is None:
            return
        try:
            centre = self._centre_screen()
            state = {"lang": self.t.lang, "filter": self.feed.flt.source,
                     "map": centre.query_one(RegionMap).state.path if centre else ["500000"]}
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            self.state_path.write_text(json.dumps(state, ensure_ascii=False), encoding="utf-8")
        except Exception:  # saving state is best effort on the way out
            pass

    # ------------------------------------------------------------ refresh

    def _centre_screen(self) -> CommandCentre | None:
        for screen in self.screen_stack:
            if isinstance(screen, CommandCentre):
                return screen
        return None

    def _tick(self) -> None:
        self.refresh_data()

    def _second(self) -> None:
        centre = self._centre_screen()
        if centre is None:
            return
        now = self.backend.clock.now()
        try:
            centre.query_one(EventQueue).tick(now)
            centre.query_one(RegionMap).tick(now)
            centre.query_one(DirectiveList).tick(now)
            centre.query_one(StatusBar).set_state(now=now)
        except Exception:  # screen is being replaced (language switch)
            pass

    @work(thread=True, exclusive=True, group="refresh", exit_on_error=False)
    def refresh_data(self, force: bool = False, light: bool = False) -> None:
        """One poll of the feed; ``light`` skips the backend's periodic work (the first poll)."""
        centre = self._centre_screen()
        level = None
        if centre is not None:
            try:
                level = centre.query_one(RegionMap).level()
            except Exception:
                level = None
        try:
            if not light:
                self.backend.tick()
            frame = self.feed.poll(level, force=force)
        except Exception as exc:  # show, keep the app, retry next tick
            self.post_message(RefreshFailed(_one_line(exc)))
            return
        self.post_message(FrameReady(frame))
        self._people_news()

    _inbox_seen: str | None = None

    def _people_news(self) -> None:
        """A message newly in the user's inbox pops up (issue 14); ``i`` opens my work and the inbox."""
        try:
            from cqgov_tui.console.people import inbox_rows

            rows = inbox_rows(self.backend.store, self.backend.user.user, limit=1)
        except Exception:  # an older replica without the people tables: nothing to show
            return
        newest = rows[0].notification_id if rows else ""
        if self._inbox_seen is None:
            self._inbox_seen = newest  # what was there at start is not news
        elif newest != self._inbox_seen:
            self._inbox_seen = newest
            self.call_from_thread(self.notify, rows[0].subject, title=self.t("work.news"), timeout=8)

    @work(thread=True, exclusive=True, group="board", exit_on_error=False)
    def refresh_board(self, force: bool = False) -> None:
        """The runway board on its own worker: slow on a big store, and it changes slowly."""
        try:
            board = self.feed.board(force=force)
        except Exception as exc:
            self.post_message(RefreshFailed(_one_line(exc)))
            return
        if board is not None:
            self.post_message(BoardReady(board))

    def on_board_ready(self, message: BoardReady) -> None:
        centre = self._centre_screen()
        if centre is not None:
            try:
                centre.query_one(RunwayBoard).apply(message.board)
            except Exception:  # the centre is being rebuilt; the next board repaints it
                pass

    def on_frame_ready(self, message: FrameReady) -> None:
        f = message.frame
        centre = self._centre_screen()
        if centre is None:
            return
        self.frames += 1
        first = self._first
        try:
            rmap = centre.query_one(RegionMap)
            if rmap.registry is None and self.backend.loaded:
                rmap.attach(self.backend.registry)
            events = centre.query_one(EventQueue)
            events.highlight = not self.low_bandwidth
            # A poll begun before the names arrived may end after one that had them: keep the names.
            if f.queue is not None and (f.named or not events.filled):
                events.apply(f.queue, f.changed, f.now, first=first, named=f.named)
            rmap.now = f.now
            if f.fill is not None:
                rmap.set_fill(f.fill)
            if f.new_red and not first and not self.low_bandwidth:
                rmap.flash(list(f.new_red), f.now)
            if f.directives is not None:
                centre.query_one(DirectiveList).apply(f.directives, f.now)
            status = centre.query_one(StatusBar)
            status.low_bandwidth = self.low_bandwidth
            status.set_state(link=f.link, now=f.now)
        except Exception as exc:  # a pane being rebuilt; the next frame repaints it
            self.status_say(self.t.error(exc), error=True)
            self.feed.invalidate()
            return
        if first:
            self.call_after_refresh(self._after_first_frame)
        self._first = False
        if self.last_error:
            self.last_error = ""
            status.say("")
        self._auto_low_bandwidth(f.link.slow)

    @work(thread=True, exclusive=True, group="open", exit_on_error=False)
    def _open_store(self) -> None:
        """Open the store the snapshot's frame stood for; then its loads. A store that cannot be opened
        ends the console: the launcher tells its error in one line, as a start without a snapshot does."""
        try:
            self.backend.store.open()
        except Exception as exc:  # noqa: BLE001 - kept by the store for the launcher to tell
            self.call_from_thread(self._store_failed, exc)
            return
        self.call_from_thread(self._start_loads)

    def _store_failed(self, exc: BaseException) -> None:
        self.store_error = _one_line(exc)
        self.status_say(self.t.error(exc), error=True)
        self.exit(return_code=1)

    def _handle_exception(self, error: Exception) -> None:
        # A key pressed before the snapshot's store finished opening reaches the store on the UI thread; if the
        # open failed, that handler meets the open's error. It ends the console as the opening worker does (one
        # line from the launcher), not with a traceback.
        store = self.backend.store
        if getattr(store, "pending", False) and getattr(store, "error", None) is error:
            self._store_failed(error)
            return
        super()._handle_exception(error)

    @work(thread=True, exclusive=True, group="preload", exit_on_error=False)
    def _load_resources(self) -> None:
        """Catalogue and registry (names, map shapes) off the UI thread, as Harlequin loads its catalog."""
        try:
            self.backend.preload()
        except Exception as exc:
            self.post_message(RefreshFailed(_one_line(exc)))
            return
        self.post_message(ResourcesLoaded())

    def on_resources_loaded(self, message: ResourcesLoaded) -> None:
        centre = self._centre_screen()
        named = False
        if centre is not None:
            rmap = centre.query_one(RegionMap)
            rmap.attach(self.backend.registry)
            events = centre.query_one(EventQueue)
            named = events.filled
            # The cursor's event was chosen before there were shapes to highlight: highlight it now.
            row = events.current_row()
            if row is not None:
                rmap.show_event(row.district_code, row.grid_code or row.street_code or row.district_code)
        if not named:
            # Names replace the codes the first rows carried: the next poll reloads the queue.
            self.feed.invalidate()
            self.refresh_data()

    def _after_first_frame(self) -> None:
        if self.first_frame_at is None:
            import time

            self.first_frame_at = time.time()

    @property
    def ready(self) -> bool:
        """Every pane and the status bar have shown real content (``cqgov_tui.console.readiness``)."""
        return self.progress.ready

    def on_pane_filled(self, message: PaneFilled) -> None:
        if self.progress.fill(message.pane):
            self.post_message(ConsoleReady())

    def on_console_ready(self, message: ConsoleReady) -> None:
        self.call_after_refresh(self._ready_painted)
        self._start_over()

    def _start_over(self) -> None:
        if self.started is not None:
            started, self.started = self.started, None
            started()

    def _start_limit(self) -> None:
        """Start-up's time limit: whatever did not fill, start-up mode ends and nothing waits any longer."""
        self._start_over()
        if self._loads_waiting:
            self._start_loads()

    @work(thread=True, exclusive=True, group="geometry", exit_on_error=False)
    def _load_geometry(self) -> None:
        """Once every pane is filled: the full registry behind the cached one (the first drill into a
        street or a grid's name then finds it loaded)."""
        try:
            self.backend.preload_geometry()
        except Exception:  # loaded again on demand, and any error shows then
            pass

    def _ready_painted(self) -> None:
        """Benchmarks set CQGOV_TUI_MARKS to a file: the start's marks go there (JSON) and the console exits."""
        path = os.environ.get("CQGOV_TUI_MARKS")
        if path:
            import time

            marks = {"first_frame": self.first_frame_at, "ready": self.progress.ready_at, "painted": time.time(),
                     "cpu": time.process_time(), "panes": self.progress.filled,
                     "snapshot": self.snapshot is not None, "store_pending": self._store_pending()}
            Path(path).write_text(json.dumps(marks), encoding="utf-8")
            self.exit()
            return
        # Painted: what waited for the first full frame may start (a snapshot's reload, the geometry).
        if self._loads_waiting:
            self._start_loads()
        self._load_geometry()

    def _auto_low_bandwidth(self, slow: bool) -> None:
        want = self.low_bandwidth_forced or slow
        if want != self.low_bandwidth:
            self.low_bandwidth = want
            self._timer.stop()
            self._timer = self.set_interval(TICK_LOW_BW_S if want else self.tick_s, self._tick)

    def on_refresh_failed(self, message: RefreshFailed) -> None:
        self.last_error = message.error
        self.status_say(self.t("error.worker", e=message.error), error=True)

    def status_say(self, text: str, error: bool = False) -> None:
        """On the status bar of the screen in front (a detail, my work) or else the command centre's."""
        for screen in (self.screen, self._centre_screen()):
            if screen is None:
                continue
            try:
                screen.query_one(StatusBar).say(text, error)
                return
            except Exception:  # a modal without a status bar, or a screen being rebuilt
                continue

    # ------------------------------------------------------------ pane messages

    def open_event(self, event_id: str) -> None:
        from .views.event_detail import EventDetailScreen

        self.push_screen(EventDetailScreen(self.backend, event_id, self.t, self.action_keys))

    def open_receipts(self, directive_id: str) -> None:
        from .views.receipts import ReceiptsScreen

        self.push_screen(ReceiptsScreen(self.backend, directive_id, self.t))

    def on_open_event(self, message: OpenEvent) -> None:
        self.open_event(message.event_id)

    def on_event_selected(self, message: EventSelected) -> None:
        centre = self._centre_screen()
        if centre is not None:
            centre.query_one(RegionMap).show_event(message.district, message.place_code)

    def on_open_directive(self, message: OpenDirective) -> None:
        self.open_receipts(message.directive_id)

    def on_map_drilled(self, message: MapDrilled) -> None:
        self.refresh_data()

    def on_input_submitted(self, message) -> None:
        if message.input.id == "event-filter":
            self.apply_filter(message.value)
            centre = self._centre_screen()
            if centre is not None:
                centre.query_one(EventQueue).hide_filter()

    def toggle_group(self, leader_id: str) -> None:
        """List a group's members in the queue under its row, or fold them away."""
        self.feed.expanded ^= {leader_id}
        self.feed.invalidate()
        self.refresh_data()

    def apply_filter(self, text: str) -> bool:
        try:
            self.feed.flt = parse_filter(text, self.backend.names, self.backend.registry) if text.strip() else QueueFilter()
        except ValueError as exc:
            self.status_say(self.t("error.filter", e=exc), error=True)
            return False
        centre = self._centre_screen()
        if centre is not None:
            centre.query_one("#pane-events").set_subtitle(text.strip())
        self.refresh_data()
        return True

    # ------------------------------------------------------------ key actions

    def _on_centre(self) -> CommandCentre | None:
        return self.screen if isinstance(self.screen, CommandCentre) else None

    def action_quit_console(self) -> None:
        self.save_state()
        self.exit()

    def action_interrupt(self) -> None:
        """Ctrl-C: leave now; whoever launched the console stops its own work too (the demo its servers)."""
        self.save_state()
        self.exit(return_code=EXIT_INTERRUPT)

    def action_help(self) -> None:
        from .views.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.t, self.overrides))

    def action_pane(self, index: int) -> None:
        centre = self._on_centre()
        if centre is not None:
            centre.focus_pane(index)

    def action_next_pane(self) -> None:
        centre = self._on_centre()
        if centre is not None:
            centre.focus_pane(centre.active + 1)
        else:
            self.screen.focus_next()

    def action_previous_pane(self) -> None:
        centre = self._on_centre()
        if centre is not None:
            centre.focus_pane(centre.active - 1)
        else:
            self.screen.focus_previous()

    def action_filter(self) -> None:
        centre = self._on_centre()
        if centre is not None:
            centre.focus_pane(0)
            centre.query_one(EventQueue).show_filter(self.feed.flt.source)

    def action_compose(self) -> None:
        if self._on_centre() is None:
            return
        from .views.compose import ComposeScreen

        def followed(directive_id):
            if directive_id:
                self.open_receipts(directive_id)
            self.refresh_data()

        self.push_screen(ComposeScreen(self.backend, self.t), followed)

    def action_my_work(self) -> None:
        """My tasks and my inbox (issue 14)."""
        from .views.my_work import MyWorkScreen

        if not isinstance(self.screen, MyWorkScreen):
            self.push_screen(MyWorkScreen(self.backend, self.t))

    def action_command_line(self) -> None:
        if self._on_centre() is not None:
            from .views.prompt import Prompt

            self.push_screen(Prompt(self.t("prompt.command")), lambda v: v and self.run_command(v))

    def action_toggle_lang(self) -> None:
        self.run_command("lang " + ("zh" if self.t.lang == "en" else "en"))

    def action_toggle_contrast(self) -> None:
        self.run_command("contrast")

    def action_dismiss(self) -> None:
        """Clear the refusal and message shown in the status bar (the user has read them)."""
        self.backend.dismiss_rejections()
        self.last_error = ""
        link = self.backend.status()
        for screen in self.screen_stack:
            for bar in screen.query(StatusBar):
                bar.say("")
                bar.set_state(link=link)

    def run_command(self, line: str) -> None:
        """The `:` command line and the palette share this."""
        parts = line.strip().split(maxsplit=1)
        if not parts:
            return
        cmd, arg = parts[0].lower(), (parts[1] if len(parts) > 1 else "")
        if cmd in ("q", "quit", "exit"):
            self.action_quit_console()
        elif cmd in ("help", "h", "?"):
            self.action_help()
        elif cmd == "lang":
            self.t = Strings(arg or ("zh" if self.t.lang == "en" else "en"))
            self._rebuild_centre()
        elif cmd == "contrast":
            self.high_contrast = not self.high_contrast
            self.set_class(self.high_contrast, "high-contrast")
            self._rebuild_centre()
        elif cmd in ("lowbw", "low-bandwidth"):
            self.low_bandwidth_forced = not self.low_bandwidth_forced
            self._auto_low_bandwidth(False)
        elif cmd in ("filter", "f"):
            self.apply_filter(arg)
        elif cmd == "open":
            try:
                event = self.backend.store.resolve_event(arg)
            except Exception as exc:
                self.status_say(self.t.error(exc), error=True)
                return
            self.open_event(event.id)
        elif cmd in ("drill", "map"):
            centre = self._centre_screen()
            try:
                centre.query_one(RegionMap).drill_to(arg.strip())
            except Exception as exc:
                self.status_say(self.t.error(exc), error=True)
        elif cmd == "top":
            centre = self._centre_screen()
            centre.query_one(RegionMap).drill_to("500000")
        elif cmd == "compose":
            self.action_compose()
        elif cmd == "report":
            self.report_event(arg)
        elif cmd == "dismiss":
            self.action_dismiss()
        elif cmd == "export":
            self.export_ledger(arg)
        elif cmd in ("work", "inbox", "mine"):
            self.action_my_work()
        elif cmd in ("hot", "rank"):
            self.evaluation_command(cmd, arg)
        elif cmd in ("supervise", "督办"):
            self.supervise_command(arg)
        else:
            self.status_say(self.t("cmd.unknown", c=cmd), error=True)

    def supervise_command(self, arg: str) -> None:
        """``:supervise [NUMBER] [NOTE]`` (and the palette): 督办 an event. Without a number, the event on
        screen (its detail) or under the queue's cursor; a missing note is asked for."""
        from .views.prompt import Prompt

        parts = arg.split(maxsplit=1)
        ref = parts[0] if parts else self._current_event()
        note = parts[1] if len(parts) > 1 else ""
        if not ref:
            self.push_screen(Prompt(self.t("supervise.prompt_ref")),
                             lambda v: v and len(v.split(maxsplit=1)) == 2 and self.supervise_command(v))
            return
        if not note.strip():
            shown = ref
            try:
                shown = self.backend.store.resolve_event(ref).number
            except Exception:  # the backend names what is wrong with the reference once it is sent
                pass
            self.push_screen(Prompt(self.t("supervise.prompt_note", n=shown)),
                             lambda v: v and v.strip() and self._supervise(ref, v.strip()))
            return
        self._supervise(ref, note.strip())

    def _current_event(self) -> str | None:
        """The event the user is looking at: the open detail's, or the queue's selected row."""
        event_id = getattr(self.screen, "event_id", None)
        if isinstance(event_id, str):
            return event_id
        centre = self._on_centre()
        if centre is not None:
            row = centre.query_one(EventQueue).current_row()
            return row.id if row is not None else None
        return None

    @work(thread=True, group="supervise", exit_on_error=False)
    def _supervise(self, ref: str, note: str) -> None:
        outcome = self.backend.supervise(ref, note)
        self.call_from_thread(self._supervised, outcome)

    def _supervised(self, outcome) -> None:
        if not outcome.ok:
            self.status_say(self.t.refused(outcome.code, outcome.message), error=True)
            return
        key = "action.queued" if outcome.pending else "supervise.done"
        self.status_say(self.t(key, what=outcome.message))
        self.refresh_data()

    def evaluation_command(self, mode: str, arg: str) -> None:
        """``:hot [PERIOD]`` and ``:rank [district|street|department] [PERIOD]``."""
        from cqgov_tui.console.evaluation import parse_args

        try:
            state = parse_args(mode, arg)
        except ValueError as exc:
            self.status_say(self.t("cmd.eval_usage", w=str(exc)), error=True)
            return
        self.open_evaluation(mode, state)

    def open_evaluation(self, mode: str, state=None) -> None:
        """事件热榜 (``hot``) or 考评 (``rank``) over the console's store; one such screen at a time."""
        from cqgov_tui.console.evaluation import ViewState

        from .views.evaluation import EvaluationScreen

        state = state or ViewState(mode)
        if isinstance(self.screen, EvaluationScreen):
            self.screen._set(state)
            return
        self.push_screen(EvaluationScreen(self.backend, self.t, state, self.high_contrast))

    def report_event(self, arg: str) -> None:
        """``:report CATEGORY CODE [TITLE]``: a new event, through the outbox on a server; its detail opens."""
        parts = arg.split(maxsplit=2)
        if len(parts) < 2:
            self.status_say(self.t("cmd.report_usage"), error=True)
            return
        category, code = parts[0], parts[1]
        by_name = {name: c for c, name in self.backend.names.categories().items()}
        category = by_name.get(category, category)
        self._report(category, code, parts[2] if len(parts) > 2 else "")

    @work(thread=True, group="report", exit_on_error=False)
    def _report(self, category: str, code: str, title: str) -> None:
        outcome = self.backend.report(category, code, title)
        self.call_from_thread(self._reported, outcome)

    def _reported(self, outcome) -> None:
        if not outcome.ok:
            self.status_say(self.t.refused(outcome.code, outcome.message), error=True)
            return
        self.status_say(self.t("report.done", what=outcome.message))
        self.refresh_data()
        if outcome.ref:
            self.open_event(outcome.ref)

    def export_ledger(self, arg: str) -> None:
        """``:export LEDGER PERIOD [csv|xlsx|parquet] [FILE]``: a 一表通 ledger from this console's store."""
        parts = arg.split()
        if len(parts) < 2:
            self.status_say(self.t("cmd.export_usage"), error=True)
            return
        name, period = parts[0], parts[1]
        fmt = parts[2] if len(parts) > 2 else "xlsx"
        out = parts[3] if len(parts) > 3 else f"{name}-{period}.{fmt}"
        self._export(name, period, fmt, out)

    @work(thread=True, group="export", exit_on_error=False)
    def _export(self, name: str, period: str, fmt: str, out: str) -> None:
        from cqgov_tui.errors import CqgovError
        from cqgov_tui.standards.ledgers import export

        try:
            result = export(self.backend.store, name, period=period, fmt=fmt, out=out)
        except CqgovError as exc:
            self.call_from_thread(self.status_say, self.t.error(exc), True)
            return
        self.call_from_thread(self.status_say, self.t("export.done", name=result["name"], rows=result["rows"], out=out))

    def _rebuild_centre(self) -> None:
        """Language or contrast changed: rebuild the panes with the new strings and styles."""
        while len(self.screen_stack) > 2:
            self.pop_screen()
        self.switch_screen(self._centre())
        self.feed.invalidate()
        self._first = True
        self.call_after_refresh(self.refresh_data)
        self.call_after_refresh(self.refresh_board, True)  # the new board pane starts empty


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
