"""A command as ``POST /v1/commands`` carries it: ``{"id", "type", "body"}``, declared once.

The id is the client's (UUIDv7 in practice): a retry with the same id is
answered as before. The type names a command the host knows; the body is an
object, typed by the host (``server/bodies.py`` for tier servers).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

COMMAND_ID_PATTERN = r"^[A-Za-z0-9_-]{8,64}$"
COMMAND_TYPE_PATTERN = r"^[\x21-\x7e]{1,64}$"  # printable ASCII, no blanks

_WHY = {  # what a caller should read, by the field that failed
    "id": "id must be 8-64 characters of letters, digits, - or _",
    "type": "type must be a command name (1-64 printable ASCII characters)",
    "body": "body must be an object",
}


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    id: Annotated[str, StringConstraints(pattern=COMMAND_ID_PATTERN)]
    type: Annotated[str, StringConstraints(pattern=COMMAND_TYPE_PATTERN)]
    body: dict[str, Any]


def envelope_problem(command: Any) -> str | None:
    """Why ``command`` is not a well-formed envelope (one line), or None."""
    if not isinstance(command, dict) or set(command) != {"id", "type", "body"}:
        return "must have exactly id, type and body"
    try:
        Envelope.model_validate(command)
    except ValidationError as exc:
        field = str(exc.errors(include_url=False)[0]["loc"][0])
        return _WHY.get(field, f"{field} is malformed")
    return None
