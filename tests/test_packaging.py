"""What a wheel of cqgov installs: only names that belong to this project, with the data and the console inside."""

from __future__ import annotations

import csv
import io
import pathlib
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
OURS = {"cqgov_tui", "cqgov_screens", "cqgov_fixtures"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                        str(ROOT)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    (path,) = out.glob("cqgov-*.whl")
    return zipfile.ZipFile(path)


def _record(wheel: zipfile.ZipFile) -> list[str]:
    (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/RECORD")]
    return [row[0] for row in csv.reader(io.StringIO(wheel.read(name).decode()))]


def test_the_wheel_installs_no_top_level_name_outside_the_project(wheel):
    tops = {p.split("/")[0] for p in _record(wheel)}
    modules = {t for t in tops if not t.endswith(".dist-info")}
    assert modules == OURS
    # No stray top-level module file either (a fixtures.py would shadow PyPI's `fixtures` just the same).
    assert not [p for p in _record(wheel) if "/" not in p]


def test_the_wheel_carries_the_console_data_and_attribution(wheel):
    names = set(_record(wheel))
    for needed in ("cqgov_fixtures/ATTRIBUTION.md", "cqgov_fixtures/chongqing_districts.geojson",
                   "cqgov_fixtures/cq_streets.parquet", "cqgov_fixtures/catalogue/categories.yaml",
                   "cqgov_screens/app.py", "cqgov_screens/console.tcss", "cqgov_tui/cli/__init__.py"):
        assert needed in names
    (ep,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    text = wheel.read(ep).decode()
    assert "textual = cqgov_screens.app:run_console" in text
    assert "screens.app" not in text.replace("cqgov_screens.app", "")
