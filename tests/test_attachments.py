"""Attachments (issue 14 item 6): photos and files on events and tasks, kept by SHA-256 beside the store; type by
magic bytes and a size limit on upload; sync carries only the row (the reference) and a replica fetches the bytes
from its tier server when someone opens one, once; the system viewer's command; the CLI.

A real district server on 127.0.0.1 (uvicorn in a thread, stopped by the test) and a console replica pulling
from it with the sync client.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import zlib

import httpx
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from cqgov_tui.cli import main
from cqgov_tui.clock import SimClock
from cqgov_tui.domain.attachments import ALLOWED_TYPES
from cqgov_tui.domain.entities import Role, Tier, User
from cqgov_tui.errors import BadInput, CqgovError, PermissionDenied, UnknownCode
from cqgov_tui.notify.config import NotifyConfig
from cqgov_tui.people import attachments
from cqgov_tui.store import init_store, open_store
from test_people_server import T0, Serving

OFFICER = User("zhang", "张伟", Role.DUTY_OFFICER, Tier.DISTRICT, "500105")


def png(seed: int = 0) -> bytes:
    """A real 1×1 PNG (different pixels → different bytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"\x00" + bytes([seed % 256, 0, 0])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def _event(store, street: str | None = None):
    from cqgov_tui.engine import Engine

    engine = Engine(store)
    street = street or engine.registry.children("500105")[0].code
    return engine.report(category="garbage", title="垃圾堆放", code=street, actor=OFFICER)


@pytest.fixture
def store(tmp_path):
    s = init_store(str(tmp_path / "d.duckdb"), "district", "500105", clock=SimClock(T0))
    yield s
    s.close()


def _files(store) -> list[str]:
    if not os.path.isdir(store.files_dir):
        return []
    return sorted(f for _, _, names in os.walk(store.files_dir) for f in names)


# ------------------------------------------------------------ local store


def test_a_photo_is_kept_by_hash_listed_on_the_event_and_on_its_timeline(store):
    event = _event(store)
    data = png(1)
    att = attachments.attach(store, OFFICER, event.number, data, "../../etc/现场照片.png")
    sha = hashlib.sha256(data).hexdigest()
    assert (att.sha256, att.mime, att.size, att.ref, att.name) == (sha, "image/png", len(data), event.id, "现场照片.png")
    assert store.read_blob(sha) == data and store.blob_path(sha).endswith(f"{sha[:2]}/{sha}")
    assert store.attachments_of(event.id) == [att]
    again = attachments.attach(store, OFFICER, event.id, data, "copy.png")  # the same bytes on the same event
    assert again == att and store.count_rows("attachments") == 1
    attachments.attach(store, OFFICER, event.number, PDF, "报告.pdf", kind="feedback")
    assert sorted(a.mime for a in store.attachments_of(event.id)) == ["application/pdf", "image/png"]
    notes = [e.note for e in store.event_audit(event.id) if e.action == "attach"]
    assert len(notes) == 2 and sha[:12] in notes[0]
    change = [c for c in store.changes_after(0, 1000) if c["entity"] == "attachment"]
    assert len(change) == 2 and change[0]["data"]["sha256"] == sha and "bytes" not in json.dumps(change[0]["data"])


@pytest.mark.parametrize("data,name,limit,message", [
    (b"", "empty.jpg", None, "empty"),
    (b"just some text, not a photo", "photo.jpg", None, "unrecognised type"),
    (b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 60, "photo.png", None, "application/x-msdownload"),
    (png(2), "big.png", 40, "at most 40"),
])
def test_a_bad_upload_is_refused_in_one_line_and_changes_nothing(store, data, name, limit, message):
    event = _event(store)
    head = store.head()
    with pytest.raises(BadInput, match=message) as exc:
        attachments.attach(store, OFFICER, event.number, data, name, max_bytes=limit or 8 << 20)
    assert "\n" not in str(exc.value)
    assert store.count_rows("attachments") == 0 and store.head() == head and _files(store) == []


def test_an_unknown_target_or_a_caller_outside_its_jurisdiction_is_refused(store):
    event = _event(store)
    with pytest.raises(CqgovError, match="no event"):
        attachments.attach(store, OFFICER, "500105-20261118-99999", png(), "a.png")
    with pytest.raises(UnknownCode):
        attachments.attach(store, OFFICER, "no-such-task", png(), "a.png", kind="task")
    other = User("wang", "王", Role.DUTY_OFFICER, Tier.STREET, "500105999")
    with pytest.raises(PermissionDenied):
        attachments.attach(store, other, event.number, png(), "a.png")
    with pytest.raises(BadInput, match="kind"):
        attachments.attach(store, OFFICER, event.number, png(), "a.png", kind="selfie")
    assert store.count_rows("attachments") == 0 and _files(store) == []


def test_a_task_completion_carries_a_photo(store):
    from cqgov_tui.engine import Engine
    from cqgov_tui.people import roster, tasks

    registry = Engine(store).registry
    grid = registry.grid_codes(registry.children("500105")[0].code)[0]
    roster.import_rows(store, registry, roster.parse_csv(
        f"user,name,role,department,jurisdiction,phone,email,on_duty\ngw1,陈思宇,grid_worker,,{grid},1,,yes\n"))
    task = tasks.create_adhoc(store, registry, OFFICER, grid, "排查井盖")
    worker = User("gw1", "陈思宇", Role.GRID_WORKER, Tier.DISTRICT, "500105")
    att = attachments.attach(store, worker, task.id, png(3), "井盖.png", kind="task")
    done = tasks.act_on_task(Engine(store), task.id, "done", worker, note="已处理", photo=att.sha256)
    assert done.photo == att.sha256 and store.attachments_of(task.id) == [att]
    stranger = User("gw2", "王磊", Role.GRID_WORKER, Tier.DISTRICT, "500105")
    with pytest.raises(PermissionDenied):  # someone else's task
        attachments.attach(store, stranger, task.id, png(4), "x.png", kind="task")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_are_a_known_type_or_refused_in_one_line(data):
    try:
        mime = attachments.sniff(data)
    except BadInput as exc:
        assert "\n" not in str(exc)
    else:
        assert mime in ALLOWED_TYPES


def test_the_system_viewer_command_and_opening_a_local_attachment(store):
    assert attachments.viewer_command("/x/a.png", "linux") == ["xdg-open", "/x/a.png"]
    assert attachments.viewer_command("/x/a.png", "darwin") == ["open", "/x/a.png"]
    assert attachments.viewer_command("C:/a.png", "win32") == ["explorer", "C:/a.png"]
    event = _event(store)
    att = attachments.attach(store, OFFICER, event.number, png(5), "p.png")
    ran: list[list[str]] = []
    cmd = attachments.open_attachment(store, att, launch=ran.append)
    assert ran == [cmd] and cmd[-1].endswith(f"{att.sha256}.png")
    with open(cmd[-1], "rb") as f:
        assert f.read() == png(5)


def test_a_corrupt_cached_file_is_not_served(store):
    event = _event(store)
    att = attachments.attach(store, OFFICER, event.number, png(6), "p.png")
    with open(store.blob_path(att.sha256), "wb") as f:
        f.write(b"tampered")
    assert store.read_blob(att.sha256) is None
    with pytest.raises(UnknownCode, match="not held here"):
        attachments.get_bytes(store, att.sha256)


# ------------------------------------------------------------ through a real server and a replica


def test_upload_through_the_server_sync_sends_the_reference_and_a_replica_fetches_on_open_only(tmp_path):
    from cqgov_tui.server.remote import Remote
    from cqgov_tui.sync.client import SyncClient

    clock = SimClock(T0)
    runner = CliRunner()
    with Serving(tmp_path, NotifyConfig(), clock) as s:
        event = _event(s.store)
        street = event.street_code
        admin = s.token("admin", "admin")
        photo = tmp_path / "现场.jpg"
        photo.write_bytes(png(7))  # a PNG named .jpg: the content decides
        r = runner.invoke(main, ["events", "attach", event.number, str(photo), "--server", s.url, "--token", admin,
                                 "--json"])
        assert r.exit_code == 0, r.output
        row = json.loads(r.output)
        sha = hashlib.sha256(png(7)).hexdigest()
        assert (row["sha256"], row["mime"], row["ref"]) == (sha, "image/png", event.id)
        assert s.store.read_blob(sha) == png(7)

        # refused uploads: a text file, too big, no token, outside the caller's district — nothing stored
        text = tmp_path / "note.png"
        text.write_text("not an image")
        r = runner.invoke(main, ["events", "attach", event.number, str(text), "--server", s.url, "--token", admin])
        assert r.exit_code != 0 and "told by their content" in r.output and "Traceback" not in r.output
        with httpx.Client(base_url=s.url, timeout=20) as http:
            auth = {"Authorization": f"Bearer {admin}"}
            assert http.post("/v1/attachments", params={"ref": event.number}, content=b"\x89PNG" + b"\0" * (9 << 20),
                             headers=auth).status_code == 413
            assert http.post("/v1/attachments", params={"ref": event.number}, content=png(8)).status_code == 401
            assert http.post("/v1/attachments", params={"ref": event.number, "kind": "x"}, content=png(8),
                             headers=auth).status_code == 422
            far = s.server.authority.issue(user="w", role="duty_officer", tier="street", scope="500105999",
                                           now=clock.now(), ttl=3600)
            refused = http.post("/v1/attachments", params={"ref": event.number}, content=png(8),
                                headers={"Authorization": f"Bearer {far}"})
            assert refused.status_code in (403, 404)
            # the bytes: only to a caller who may see the event; the same 404 for unknown and out of scope
            got = http.get(f"/v1/attachments/{sha}", headers=auth)
            assert got.status_code == 200 and got.content == png(7) and got.headers["content-type"] == "image/png"
            assert got.headers["x-content-type-options"] == "nosniff"
            assert http.get(f"/v1/attachments/{sha}", headers={"Authorization": f"Bearer {far}"}).status_code == 404
            assert http.get(f"/v1/attachments/{'0' * 64}", headers=auth).status_code == 404
            assert http.get("/v1/attachments/../../etc/passwd", headers=auth).status_code == 404
            assert http.get(f"/v1/attachments/{sha}").status_code == 401
            listed = http.get("/v1/attachments", params={"ref": event.number}, headers=auth).json()
            assert [a["sha256"] for a in listed] == [sha]
        assert s.store.count_rows("attachments") == 1

        # a console's replica of the event's street: the row arrives, the bytes do not
        replica_path = str(tmp_path / "replica.duckdb")
        replica = init_store(replica_path, "street", street, clock=clock, node="console-zhang")
        token = s.server.authority.issue(user="zhang", role="duty_officer", tier="street", scope=street,
                                         now=clock.now(), ttl=86400)
        client = SyncClient(replica, s.url, token, clock, wait=0.0)
        try:
            assert client.pull_until_caught_up().caught_up
            [att] = replica.attachments_of(event.id)
            assert att.sha256 == sha and replica.read_blob(sha) is None and _files(replica) == []
        finally:
            client.close()
        with Remote(s.url, token) as remote:
            ran: list[list[str]] = []
            attachments.open_attachment(replica, att, remote, launch=ran.append)
            first = remote.bytes_received
            assert first >= len(png(7)) and replica.read_blob(sha) == png(7)
            attachments.open_attachment(replica, att, remote, launch=ran.append)  # cached: no second fetch
            assert remote.bytes_received == first and len(ran) == 2 and ran[0] == ran[1]
        replica.close()

        # the CLI: from the server straight to a file, and into another replica's cache
        out = tmp_path / "out.png"
        r = runner.invoke(main, ["attachments", "get", sha, "--out", str(out), "--server", s.url, "--token", admin])
        assert r.exit_code == 0, r.output
        assert out.read_bytes() == png(7)
        r = runner.invoke(main, ["attachments", "get", sha, "--out", str(tmp_path / "x"), "--db", replica_path])
        assert r.exit_code == 0 and (tmp_path / "x").read_bytes() == png(7)  # the replica kept its copy
        r = runner.invoke(main, ["attachments", "get", "zz", "--out", str(tmp_path / "y"), "--server", s.url,
                                 "--token", admin])
        assert r.exit_code != 0 and "not an attachment hash" in r.output
        r = runner.invoke(main, ["attachments", "list", event.number, "--server", s.url, "--token", admin, "--json"])
        assert [a["sha256"] for a in json.loads(r.output)["items"]] == [sha]


def test_cli_attach_on_a_local_store_and_get(tmp_path):
    path = str(tmp_path / "d.duckdb")
    s = init_store(path, "district", "500105", clock=SimClock(T0))
    number = _event(s).number
    s.close()
    pdf = tmp_path / "通报.pdf"
    pdf.write_bytes(PDF)
    runner = CliRunner()
    r = runner.invoke(main, ["events", "attach", number, str(pdf), "--db", path])
    assert r.exit_code == 0, r.output
    sha = hashlib.sha256(PDF).hexdigest()
    assert sha in r.output and "application/pdf" in r.output
    r = runner.invoke(main, ["attachments", "get", sha, "--db", path, "--out", str(tmp_path / "o.pdf")])
    assert r.exit_code == 0 and (tmp_path / "o.pdf").read_bytes() == PDF
    r = runner.invoke(main, ["events", "attach", number, str(tmp_path / "missing.png"), "--db", path])
    assert r.exit_code != 0 and "cannot read" in r.output
    with open_store(path) as again:
        assert again.count_rows("attachments") == 1
