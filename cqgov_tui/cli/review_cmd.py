"""`cqgov review EVENT`: the draft after-action review (复盘) of a closed event."""

from __future__ import annotations

import click

from . import main
from .common import db_option, emit_json, handle_errors, out


@main.command("review")
@db_option
@click.argument("event_ref", metavar="EVENT")
@click.option("--json", "fmt", flag_value="json", help="Print the review as JSON.")
@click.option("--markdown", "fmt", flag_value="markdown", default=True, help="Print the review as Markdown (default).")
@handle_errors
def review_cmd(db_path, event_ref, fmt) -> None:
    """Draft the review of a closed EVENT (id, id prefix or number): timeline, SLA stages, actors, related events."""
    from ..catalogue.loader import load_catalogue
    from ..engine.review import draft_review
    from ..store import open_store

    with open_store(db_path) as store:
        review = draft_review(store, load_catalogue(), event_ref)
    if fmt == "json":
        emit_json(review.to_dict())
    else:
        out(review.to_markdown(), nl=False)
