"""UUIDv7 ids: the hand-formatted text is exactly what the standard library writes for the same value."""

from __future__ import annotations

import os
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cqgov_tui.ids import uuid7, uuid7_time


@given(ms=st.integers(0, (1 << 48) - 1))
def test_uuid7_is_a_version_7_rfc_9562_uuid_carrying_its_time(ms):
    text = uuid7(ms)
    parsed = uuid.UUID(text)
    assert str(parsed) == text  # canonical form: lower-case hex, 8-4-4-4-12
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert parsed.int >> 80 == ms
    assert uuid7_time(text) == ms / 1000.0


def test_uuid7_ids_made_in_one_millisecond_differ():
    assert len({uuid7(1_795_000_000_000) for _ in range(1000)}) == 1000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_does_not_repeat_its_parents_random_bits():
    uuid7(1_795_000_000_000)  # the parent's pool is drawn
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the next id it makes, to the parent; it never returns into pytest
        try:
            os.close(read)
            os.write(write, uuid7(1_795_000_000_000).encode())
        finally:
            os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert uuid7(1_795_000_000_000) != child
