"""`python -m cqgov_screens` opens the console on the built-in sample city (development and screenshots)."""

import sys

from .launch import launch

sys.exit(launch(sample=True))
