"""Where the jurisdiction fixtures live: names only, so readers (caches keyed by these files) need not
import the generator and its numpy, pyarrow and shapely."""

from __future__ import annotations

from pathlib import Path

import cqgov_fixtures

# The data package (the repository's fixtures/ folder, installed as cqgov_fixtures).
FIXTURES = Path(cqgov_fixtures.__file__).resolve().parent
DISTRICTS_FILE = "cq_districts.parquet"
STREETS_FILE = "cq_streets.parquet"
