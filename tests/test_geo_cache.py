"""The console's cached registry: the same tree and map as the full registry, never trusted blindly."""

from __future__ import annotations

import pickle

import pytest

from cqgov_tui.console import geo_cache
from cqgov_tui.console.backend import full_registry
from cqgov_tui.console.mapview import _rasterise, rasterise
from cqgov_tui.geo.registry import Registry, get_registry


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CQGOV_NO_CACHE", raising=False)
    return tmp_path / "cache" / "cqgov"


CODES = ["500000", "500108", "500108001", "500108001001", 500108, " 500108 ", "599999", "500108999", "5001",
         "500108001999", None]


def _answer(fn, code):
    try:
        return fn(code)
    except Exception as exc:  # the same error, word for word
        return type(exc), str(exc)


def test_cached_registry_answers_as_the_full_one(cache_home):
    full = get_registry()
    first = geo_cache.load_registry()  # a miss: the full registry, and the tree written
    second = geo_cache.load_registry()  # a hit: the tree from the file, nothing else loaded
    assert isinstance(second, geo_cache.CachedRegistry) and not second.loaded
    for code in ("599999", "500108999"):  # unknown districts and streets (a replica's rows) need no full load
        with pytest.raises(Exception, match="unknown"):
            second.get(code)
    assert not second.loaded
    for reg in (first, second):
        for code in CODES:
            for method in ("get", "children", "ancestors", "parent", "level_of"):
                assert _answer(getattr(reg, method), code) == _answer(getattr(full, method), code), (method, code)
        assert reg.find_by_name("渝中区") == full.find_by_name("渝中区")  # delegated
    assert full_registry(second) is full and full_registry(full) is full


def test_canvases_are_drawn_once_and_equal_the_drawn_ones(cache_home):
    full = get_registry()
    reg = geo_cache.load_registry()
    for code in ("500000", "500108"):
        assert rasterise(reg, code, 60, 20) == _rasterise(full, code, 60, 20)
    assert len(list(cache_home.glob("canvas-*"))) == 2
    again = geo_cache.load_registry()
    assert rasterise(again, "500000", 60, 20) == _rasterise(full, "500000", 60, 20)
    assert not again.loaded  # read from the file


def test_unreadable_or_foreign_files_are_ignored(cache_home):
    geo_cache.load_registry()
    [tree] = cache_home.glob("registry-*.pickle")
    tree.write_bytes(b"\x80\x05trunc")
    assert geo_cache._read(tree.name) is None
    reg = geo_cache.load_registry()  # rebuilt from the full registry, and rewritten
    assert reg.get("500108") == get_registry().get("500108")
    tree.write_bytes(pickle.dumps({"format": geo_cache.FORMAT, "city": Registry}))  # a class not allowed
    assert geo_cache._read(tree.name) is None


def test_key_follows_the_fixtures_and_code_and_no_cache_turns_it_off(cache_home, monkeypatch, tmp_path):
    key = geo_cache.digest()
    monkeypatch.setattr(geo_cache, "_SOURCES", geo_cache._SOURCES + ("scope.py",))
    assert geo_cache.digest() not in (key, None)
    monkeypatch.setenv("CQGOV_NO_CACHE", "1")
    assert geo_cache.digest() is None
    assert isinstance(geo_cache.load_registry(), Registry)
