"""`python -m screens` opens the console on the built-in sample city."""

import sys

from .launch import launch

sys.exit(launch())
