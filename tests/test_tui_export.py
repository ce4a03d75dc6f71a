"""`:export` in the console writes a 一表通 ledger from the console's own store (Pilot, polling with a deadline)."""

from __future__ import annotations

import asyncio

from cqgov_screens.app import ConsoleApp
from cqgov_screens.widgets.status_bar import StatusBar
from factories import SAMPLE_START, sample_backend, settle, wait_for


def test_export_writes_the_ledger_and_says_so(sample_file, tmp_path):
    from openpyxl import load_workbook

    backend = sample_backend(sample_file, tmp_path, SAMPLE_START + 3600)
    out = tmp_path / "台账.xlsx"

    async def run():
        app = ConsoleApp(backend, keys_path=tmp_path / "no-keys.toml", tick_s=0.2)
        async with app.run_test(size=(160, 50)) as pilot:
            await settle(pilot)
            app.run_command("export")
            bar = app.screen.query_one(StatusBar)
            await wait_for(pilot, lambda: "export" in str(bar.render()), "the usage line")
            app.run_command(f"export 事件处置台账 2026-11 xlsx {out}")
            await wait_for(pilot, lambda: out.exists() and "→" in str(bar.render()), "the ledger written")
            app.run_command(f"export nope 2026-11 csv {tmp_path / 'x.csv'}")
            # In the console's language: the refusal's code translated, the name it gave kept.
            await wait_for(pilot, lambda: "代码不存在" in str(bar.render()) and "nope" in str(bar.render()),
                           "the refusal")

    try:
        asyncio.run(run())
    finally:
        backend.store.close()
    from cqgov_tui.store import open_store

    with open_store(backend.store.path, read_only=True) as store:
        expected = len([e for e in store.all_events() if e.reported_at >= 1793462400.0])  # 2026-11-01 00:00 CST
    ws = load_workbook(out).active
    assert ws.max_row - 1 == expected > 0 and ws.freeze_panes == "A2"
    assert not (tmp_path / "x.csv").exists()
