"""A tier server's attachment endpoints (issue 14 item 6).

``POST /v1/attachments?ref=&kind=&name=`` takes the raw bytes as the body (no multipart: a photo goes up as it
is), checks size and type by magic bytes and records the row, which replicates like other rows.
``GET /v1/attachments/{sha256}`` sends the bytes to a caller who may see something they are attached to: the
same 404 whether the hash is unknown or outside the caller's jurisdiction. ``GET /v1/attachments?ref=`` lists
an event's or task's attachments (metadata only).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ..domain.attachments import KINDS, MAX_BYTES
from ..errors import CqgovError
from ..people import attachments
from ..store.attachments import is_digest

if TYPE_CHECKING:
    from .app import TierServer


def mount(app: FastAPI, server: TierServer) -> None:
    store = server.store

    @app.post("/v1/attachments", tags=["attachments"], status_code=201,
              summary="Attach a photo or file (the raw bytes as the body) to an event, task or feedback")
    async def upload(request: Request, ref: str = Query(..., min_length=1, max_length=64),
                     kind: str = Query("event", max_length=16),
                     name: str = Query("attachment", max_length=300)) -> dict[str, Any]:
        user = server.authenticate(request)
        if kind not in KINDS:
            raise HTTPException(422, f"unknown attachment kind {kind[:16]!r} (expected {', '.join(KINDS)})")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BYTES:
                raise HTTPException(413, f"attachments are at most {MAX_BYTES:,} bytes")
            chunks.append(chunk)
        data = b"".join(chunks)
        try:
            att = await run_in_threadpool(attachments.attach, store, user, ref, data, name, kind)
        except CqgovError as exc:
            from .app import status_for

            raise HTTPException(status_for(exc), str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
        return attachments.attachment_dict(att)

    @app.get("/v1/attachments", tags=["attachments"], summary="The attachments of an event or task (metadata)")
    def listing(request: Request, ref: str = Query(..., min_length=1, max_length=64)) -> list[dict[str, Any]]:
        user = server.authenticate(request)
        try:
            target = store.resolve_event(ref).id
        except CqgovError:
            target = ref
        from ..scope import covers

        return [attachments.attachment_dict(a) for a in store.attachments_of(target) if covers(user.scope_code, a.scope)]

    @app.get("/v1/attachments/{sha256}", tags=["attachments"], summary="The bytes of an attachment, by content hash")
    def download(sha256: str, request: Request) -> Response:
        user = server.authenticate(request)
        sha = sha256.lower()
        att = attachments.visible(store, sha, user) if is_digest(sha) else None
        data = store.read_blob(sha) if att is not None else None
        if att is None or data is None:
            raise HTTPException(404, f"no attachment {sha256[:64]!r} in your jurisdiction")
        return Response(data, media_type=att.mime, headers={
            "X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=31536000, immutable",
            "Content-Disposition": f'attachment; filename="{sha}"', "ETag": f'"{sha}"'})
