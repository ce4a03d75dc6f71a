"""Talking to a tier server from a script, the simulator or the demo: commands, health, directive status."""

from __future__ import annotations

import json
from typing import Any

import httpx

from ..errors import BadInput, CqgovError, IllegalTransition, PermissionDenied, UnknownCode
from ..ids import uuid7


class RemoteError(CqgovError):
    exit_code = 6


def envelope(command_type: str, body: dict, command_id: str | None = None) -> dict:
    return {"id": command_id or uuid7(), "type": command_type, "body": body}


def _raise_for(resp: httpx.Response, what: str) -> None:
    ctype = resp.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in ("application/json", "text/plain"):  # a web page on a wrong port, a proxy's error page: named, not dumped
        raise RemoteError(f"{what}: {resp.url.scheme}://{resp.url.netloc.decode()} did not answer as a cqgov "
                          f"server (HTTP {resp.status_code}, {ctype or 'no content type'})")
    if resp.status_code < 400:
        return
    try:
        doc = resp.json()
        detail = doc.get("detail")
        if detail is None and isinstance(doc.get("deferred"), list):  # a command batch the store could not take
            detail = (f"the server could not apply the command now ({str(doc.get('error') or 'store unavailable')[:120]}); "
                      "nothing was applied, try again later")
    except (ValueError, AttributeError):
        detail = None
    if not isinstance(detail, str):
        detail = json.dumps(detail, ensure_ascii=False)[:300] if detail is not None else resp.text[:300]
    msg = f"{what}: {resp.status_code} {detail}"
    if resp.status_code in (401, 403):
        raise PermissionDenied(msg)
    if resp.status_code == 404:
        raise UnknownCode(msg)
    if resp.status_code < 500:
        raise BadInput(msg)
    raise RemoteError(msg)


class Remote:
    """A small synchronous client of one tier server."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 10.0, client: httpx.Client | None = None):
        self.base_url = base_url.rstrip("/")
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._own = client is None
        self.http = client or httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)
        if not self._own:
            self.http.headers.update(headers)
        self.bytes_sent = 0
        self.bytes_received = 0

    def close(self) -> None:
        if self._own:
            self.http.close()

    def __enter__(self) -> "Remote":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _get(self, path: str, what: str, **params) -> Any:
        try:
            resp = self.http.get(path, params=params or None)
        except httpx.HTTPError as exc:
            raise RemoteError(f"{what}: cannot reach {self.base_url} ({type(exc).__name__})") from None
        self.bytes_received += len(resp.content)
        _raise_for(resp, what)
        return resp.json()

    def fetch(self, path: str, what: str, expect: str, **params) -> bytes:
        """A resource that is not JSON (a CAP alert, a GeoJSON or Atom document) of media type ``expect``."""
        try:
            resp = self.http.get(path, params=params or None, headers={"Accept": expect})
        except httpx.HTTPError as exc:
            raise RemoteError(f"{what}: cannot reach {self.base_url} ({type(exc).__name__})") from None
        self.bytes_received += len(resp.content)
        if resp.status_code < 400 and resp.headers.get("content-type", "").split(";")[0].strip().lower() == expect:
            return resp.content
        _raise_for(resp, what)
        raise RemoteError(f"{what}: {self.base_url} answered HTTP {resp.status_code} without {expect}")

    def health(self) -> dict:
        return self._get("/v1/health", "health")

    def stats(self) -> dict:
        return self._get("/v1/stats", "stats")

    def directive_status(self, ref: str) -> dict:
        return self._get(f"/v1/directives/{ref}", f"directive {ref}")

    def events(self, limit: int = 100, include_closed: bool = False) -> list[dict]:
        return self._get("/v1/events", "events", limit=limit, include_closed=str(include_closed).lower())

    def commands(self, commands: list[dict]) -> dict:
        """POST a batch of envelopes; returns the server's reply (accepted, duplicate, rejected)."""
        payload = json.dumps({"commands": commands}, ensure_ascii=False).encode()
        try:
            resp = self.http.post("/v1/commands", content=payload, headers={"Content-Type": "application/json"})
        except httpx.HTTPError as exc:
            raise RemoteError(f"commands: cannot reach {self.base_url} ({type(exc).__name__})") from None
        self.bytes_sent += len(payload)
        self.bytes_received += len(resp.content)
        _raise_for(resp, "commands")
        return resp.json()

    def command(self, command_type: str, body: dict, command_id: str | None = None) -> dict:
        """One command; returns its result, or raises with the server's reason when it was refused."""
        env = envelope(command_type, body, command_id)
        reply = self.commands([env])
        return one_result(reply, env["id"])


_BY_CODE: dict[str, type[CqgovError]] = {
    "illegal_transition": IllegalTransition, "note_required": IllegalTransition,
    "permission_denied": PermissionDenied, "not_in_jurisdiction": PermissionDenied,
    "owned_elsewhere": PermissionDenied, "rate_limited": PermissionDenied,
    "unknown_code": UnknownCode, "store_unavailable": RemoteError, "internal_error": RemoteError,
}


def one_result(reply: dict, command_id: str) -> dict:
    """Find one command's outcome in a batch reply, whatever list it landed in."""
    for key in ("accepted", "duplicate", "duplicates"):
        for item in reply.get(key) or []:
            if isinstance(item, dict) and item.get("id") == command_id:
                return item.get("result") or item.get("reply") or item
            if item == command_id:
                return (reply.get("results") or {}).get(command_id, {})
    for item in reply.get("rejected") or []:
        if isinstance(item, dict) and item.get("id") == command_id:
            reason = str(item.get("reason") or item.get("error") or "refused")
            code = item.get("code") if isinstance(item.get("code"), str) else None
            if code is not None:  # the server's stable code picks the error (and so the CLI's exit code)
                raise _BY_CODE.get(code, BadInput)(reason, code=code)
            status = item.get("status")
            if status in (401, 403) or "may not" in reason or "outside" in reason:
                raise PermissionDenied(reason)
            raise BadInput(reason)
    if command_id in (reply.get("deferred") or []):
        raise RemoteError(f"the server could not apply command {command_id} now "
                          f"({str(reply.get('error') or 'store unavailable')[:120]}); try again later")
    for item in reply.get("results") or []:
        if isinstance(item, dict) and item.get("id") == command_id:
            if item.get("outcome") == "rejected" or item.get("status") == "rejected":
                raise BadInput(str(item.get("reason") or item.get("error") or "refused"))
            return item.get("result") or item
    raise RemoteError(f"the server's reply does not mention command {command_id}")
