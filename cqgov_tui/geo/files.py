"""Where the jurisdiction fixtures live: names only, so readers (caches keyed by these files) need not
import the generator and its numpy, pyarrow and shapely."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
DISTRICTS_FILE = "cq_districts.parquet"
STREETS_FILE = "cq_streets.parquet"
