"""The parsed catalogue's disk cache: the same catalogue as parsing, keyed by every input, never trusted blindly."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest

from cqgov_tui.catalogue import cached, loader
from cqgov_tui.errors import BadInput

ROOT = Path(__file__).resolve().parents[1] / "fixtures" / "cqgov_fixtures" / "catalogue"


def _same(a, b) -> bool:
    fields = ("departments", "categories", "sla_profiles", "sectors", "runways", "sub_runways", "indicators",
              "sensor_kinds")
    return all(getattr(a, f) == getattr(b, f) for f in fields) and repr(a.plans) == repr(b.plans)


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CQGOV_NO_CACHE", raising=False)
    return tmp_path / "cache" / "cqgov"


def test_cached_catalogue_equals_parsed_one(tmp_path, cache_home):
    root = tmp_path / "catalogue"
    shutil.copytree(ROOT, root)
    parsed = loader._build(root)
    first = cached._build(root)  # parsed, then written
    files = list(cache_home.glob("catalogue-*.pickle"))
    assert len(files) == 1
    second = cached._build(root)  # read back
    assert _same(parsed, first) and _same(parsed, second)
    assert list(second.categories) == list(parsed.categories)  # order kept
    assert len(second.risk_points) == len(parsed.risk_points)


def test_any_change_to_a_file_is_a_new_key_and_bad_files_still_fail(tmp_path, cache_home):
    root = tmp_path / "catalogue"
    shutil.copytree(ROOT, root)
    cached._build(root)
    key = cached.digest(root)
    path = root / "sla_profiles.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("milestone: on_scene, minutes: 5}",
                                                             "milestone: on_scene, minutes: 0.5}", 1),
                    encoding="utf-8")
    assert cached.digest(root) != key
    for _ in range(2):  # a failure is never cached
        with pytest.raises(BadInput, match="minutes must strictly increase"):
            cached._build(root)
    (root / "plans" / "extra.txt").write_text("x", encoding="utf-8")
    assert cached.digest(root) not in (key, None)


def test_unreadable_or_foreign_cache_is_ignored(tmp_path, cache_home):
    root = tmp_path / "catalogue"
    shutil.copytree(ROOT, root)
    parsed = loader._build(root)
    cached._build(root)
    key = cached.digest(root)
    target = cache_home / f"catalogue-{key}.pickle"
    target.write_bytes(b"\x80\x05truncated")
    assert cached.load(key) is None
    assert _same(cached._build(root), parsed)  # parsed again and rewritten
    assert cached.load(key) is not None
    target.write_bytes(pickle.dumps({"format": cached.FORMAT, "evil": Path("/")}))  # a class not allowed
    assert cached.load(key) is None


def test_no_cache_env_turns_it_off(tmp_path, cache_home, monkeypatch):
    monkeypatch.setenv("CQGOV_NO_CACHE", "1")
    root = tmp_path / "catalogue"
    shutil.copytree(ROOT, root)
    assert cached.digest(root) is None
    cached._build(root)
    assert not cache_home.exists() or not list(cache_home.glob("catalogue-*"))


def test_loader_and_cached_share_one_process_cache():
    assert loader.load_catalogue is cached.load_catalogue and loader._CACHE is cached._CACHE
