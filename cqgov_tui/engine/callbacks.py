"""回访: the satisfaction call-back after an event is closed — the reporter's rating, 1 to 5.

Staff enter it after phoning the reporter, or it arrives through the intake
channel the event came in by (``channel``). It is a lifecycle action
(``callback``, no status change) recorded as an audit entry whose note starts
``rating N/5``, so it travels with the event's audit to replicas and the board
reads it with one grouped query (``satisfaction:<T>``, ``callback_ratio:<T>``).
A rating of 4 or 5 counts as satisfied (满意); 1 or 2 as dissatisfied, which
the evaluation (考评) counts as rework (返工).
"""

from __future__ import annotations

import re

from ..errors import BadInput

CHANNELS = ("staff", "phone", "app", "sms", "web")
SATISFIED = 4  # ratings at or above are 满意
DISSATISFIED = 2  # ratings at or below are 不满意 (rework)
_RATING = re.compile(r"^\s*(?:rating\s*)?([1-5])\s*(?:/\s*5)?\s*(?:via\s+([a-z]+))?\s*[;:]?\s*(.*)$", re.S)


def note_for(rating: int, channel: str = "staff", comment: str = "") -> str:
    """The audit note of a call-back (validated)."""
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        raise BadInput(f"a call-back rating is a whole number from 1 to 5, got {rating!r}")
    if channel not in CHANNELS:
        raise BadInput(f"unknown call-back channel {channel!r} (expected one of {', '.join(CHANNELS)})")
    comment = " ".join((comment or "").split())
    return f"rating {rating}/5 via {channel}" + (f"; {comment}" if comment else "")


def normalise(note: str) -> str:
    """A call-back note as typed (``4``, ``4/5 电话回访满意``, ``rating 2/5 via phone; 未清理干净``) in the one
    form the board reads; ``BadInput`` when it does not start with a rating from 1 to 5."""
    m = _RATING.match(note or "")
    if not m:
        raise BadInput(f"a call-back starts with the reporter's rating from 1 to 5 (e.g. '4 电话回访满意'), "
                       f"got {note!r}")
    return note_for(int(m.group(1)), m.group(2) or "staff", m.group(3))


def rating_of(note: str) -> int | None:
    m = re.match(r"^rating ([1-5])/5", note or "")
    return int(m.group(1)) if m else None
