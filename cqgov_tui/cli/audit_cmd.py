"""`cqgov audit verify`: walk the hash chain of a store's audit log."""

from __future__ import annotations

import sys

import click

from . import main
from ..errors import EXIT_CHECK_FAILED
from .common import db_option, emit_json, handle_errors, json_option, out


@main.group("audit")
def audit() -> None:
    """Inspect the tamper-evident audit log."""


@audit.command("verify")
@db_option
@json_option
@handle_errors
def verify(db_path: str, as_json: bool) -> None:
    """Exit 0 when the chain is intact; otherwise 1 (a check failed), naming the first bad seq."""
    from ..store import open_store

    with open_store(db_path, read_only=True) as store:
        verdict = store.verify_audit()
    if as_json:
        emit_json(verdict.as_dict())
    elif verdict.ok:
        out(f"audit intact: {verdict.entries} entries, head {verdict.head[:16]}")
    else:
        out(f"audit BROKEN at seq {verdict.first_bad_seq}: {verdict.reason}", err=True)
    if not verdict.ok:
        sys.exit(EXIT_CHECK_FAILED)
