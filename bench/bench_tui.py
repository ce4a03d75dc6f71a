"""Console benchmarks on a store of 1,000,000 events.

* First full frame: wall time from spawning ``cqgov tui --db STORE`` to the
  first frame with every pane filled (the app records it and exits), against
  a same-run baseline process that imports the core, opens the store and runs
  the queue query without any UI.
* 500 changes: applying a frame in which 500 visible rows changed to the event
  table (patching only changed cells) and drawing it, against a full table
  rebuild of the same rows.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _build_store(path: str, n: int) -> None:
    from bench.synth import synth_events
    from cqgov_tui.store import init_store

    store = init_store(path, "city", "500000")
    store.bulk_load_events(synth_events(n, seed=1))
    store.close()


def _spawn(args: list[str], env: dict) -> float:
    t0 = time.time()
    subprocess.run(args, env=env, cwd=str(ROOT), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=120)
    return t0


def first_frame(path: str, repeats: int) -> tuple[float, float]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TEXTUAL_ANIMATIONS="none", TERM="xterm-256color")
    frames, bases = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            mark = Path(tmp) / "frame"
            # `script` gives the child a real terminal so Textual draws as it would for a person.
            cmd = [sys.executable, "-m", "cqgov_tui", "tui", "--db", path]
            e = dict(env, CQGOV_TUI_FIRST_FRAME=str(mark), XDG_CONFIG_HOME=tmp)
            t0 = _spawn(["script", "-qec", " ".join(cmd), "/dev/null"], e)
            frames.append(float(mark.read_text()) - t0)
        code = ("import time,sys;t=time.time();from cqgov_tui.store import open_store;"
                "from cqgov_tui.console.queue import load_queue;from cqgov_tui.console.names import Names;"
                f"s=open_store({path!r});load_queue(s,Names());print(time.time())")
        t0 = time.time()
        out = subprocess.run([sys.executable, "-c", code], env=env, cwd=str(ROOT), capture_output=True, text=True,
                             check=True, timeout=120)
        bases.append(float(out.stdout.strip()) - t0)
    return statistics.median(frames), statistics.median(bases)


def changes_500(path: str, repeats: int) -> tuple[float, float]:
    from cqgov_tui.console.backend import LocalBackend
    from cqgov_tui.store import open_store
    from screens.app import ConsoleApp
    from screens.widgets.event_queue import EventQueue

    store = open_store(path)
    backend = LocalBackend(store, sweep=False)
    app = ConsoleApp(backend, tick_s=3600, keys_path=Path("/nonexistent/keys.toml"))
    app.feed.limit = 500
    patch, rebuild = [], []

    async def run():
        async with app.run_test(size=(160, 50)) as pilot:
            for _ in range(5):
                await app.workers.wait_for_complete()
                await pilot.pause()
            events = app.screen.query_one(EventQueue)
            rows = list(events.rows)
            for i in range(repeats):
                changed = [replace(r, version=r.version + 1, status=r.status, due_at=(r.due_at or 0) + 60 + i,
                                   title=r.title + "·") for r in rows]
                t = time.perf_counter()
                events.apply(changed, frozenset(r.id for r in changed), events.now)
                await pilot.pause()
                patch.append(time.perf_counter() - t)
                rows = changed
                t = time.perf_counter()
                events._rebuild(rows)
                await pilot.pause()
                rebuild.append(time.perf_counter() - t)

    asyncio.run(run())
    store.close()
    return statistics.median(patch), statistics.median(rebuild)


def run(quick: bool = False) -> list[dict]:
    n = 100_000 if quick else 1_000_000
    repeats = 2 if quick else 3
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "events.duckdb")
        _build_store(path, n)
        frame, base = first_frame(path, repeats)
        patch, rebuild = changes_500(path, repeats)
    return [
        {"name": f"tui first full frame ({n:,} events)", "value": round(frame, 3), "unit": "s",
         "baseline": round(base, 3), "baseline_name": "headless process: open store + queue query",
         "ratio": round(frame / base, 2), "target": 0.5, "note": "process start → first frame with panes filled"},
        {"name": "tui apply 500 changed rows", "value": round(patch * 1000, 1), "unit": "ms",
         "baseline": round(rebuild * 1000, 1), "baseline_name": "full table rebuild",
         "ratio": round(patch / rebuild, 2), "target": 50, "note": "apply + redraw at 160×50"},
    ]


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(row)
