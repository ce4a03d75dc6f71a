"""What the sync router needs from the tier server that mounts it."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from starlette.requests import Request

from ..domain.entities import User
from ..store import Store


@runtime_checkable
class SyncHost(Protocol):
    """The tier server's side of the contract.

    ``authenticate`` returns the caller or raises ``HTTPException(401/403)``.
    ``execute`` applies one command through the engine; the router calls it
    inside ``store.tx()`` and records the command id in the same transaction.
    It raises a ``CqgovError`` subclass to refuse (illegal transition,
    permission, bad input); any other exception is treated as a transient
    server failure: nothing is recorded and the client retries.

    A host may also define ``command_types`` (a set of names): a batch naming
    any other type is refused whole with 422 before anything runs.
    """

    store: Store

    def authenticate(self, request: Request) -> User: ...

    def execute(self, user: User, command_type: str, body: dict) -> dict: ...
