"""Who owns a row, and from whom a copy of it may be taken: the one rule every hop applies.

A tier server is a node named ``<tier>-<code>`` (``street-500108001``). Every
federated row has an owner node that never changes: an event its
``origin_node``, a directive the node that issued it, a receipt the street
that answers it. A copy travels one hop at a time, and a node takes it only

* from below (``federate.*`` commands from a peer): when the owner is the
  sending peer or a node inside the peer's subtree;
* from above (the sync pull of a tier server): when the owner is a strict
  ancestor of this node (the upper tiers' events and directives);

and in both directions only when the row lies inside its owner's
jurisdiction, never over a row this node owns, and never over a stored row
that another node owns (ownership does not change hands by copying). A street
cannot send its sibling's events, nor re-own a district's event by naming
itself as the origin; a district cannot push a city event down as its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from .domain.entities import ReceiptState, Tier
from .scope import CITY_CODE, covers

_DEPTH = {Tier.CITY: 0, Tier.DISTRICT: 1, Tier.STREET: 2}
# Code length at each tier (the city is the one code 500000); grids (12 digits) belong to their street's node.
_CODE_LEN = {Tier.DISTRICT: 6, Tier.STREET: 9}


@dataclass(frozen=True)
class Node:
    tier: Tier
    code: str

    @property
    def name(self) -> str:
        return f"{self.tier.value}-{self.code}"

    def covers(self, other: "Node") -> bool:
        """``other`` is this node or inside its subtree."""
        return _DEPTH[other.tier] >= _DEPTH[self.tier] and covers(self.code, other.code)

    def above(self, other: "Node") -> bool:
        """This node is a strict ancestor of ``other``."""
        return _DEPTH[self.tier] < _DEPTH[other.tier] and covers(self.code, other.code)


def scope_tier(code: str | None) -> Tier | None:
    """The tier whose centre serves a jurisdiction code: the city, a district, a street (and its grids)."""
    if not code or not code.isascii() or not code.isdigit():
        return None
    if code == CITY_CODE:
        return Tier.CITY
    if len(code) == 6:
        return Tier.DISTRICT
    if len(code) in (9, 12):
        return Tier.STREET
    return None


def parse_node(name: str | None) -> Node | None:
    """``street-500108001`` → Node; None for anything that is not a well-formed tier node name."""
    if not name or not isinstance(name, str):
        return None
    tier_text, _, code = name.partition("-")
    try:
        tier = Tier(tier_text)
    except ValueError:
        return None
    expected = CITY_CODE if tier is Tier.CITY else None
    if expected is not None and code != expected:
        return None
    if expected is None and not (code.isascii() and code.isdigit() and len(code) == _CODE_LEN[tier]):
        return None
    return Node(tier, code)


def node_of(tier: Tier | str, code: str) -> Node | None:
    try:
        return parse_node(Node(Tier(tier), code).name)  # (the name rule is Node.name's; parse_node checks the code)
    except ValueError:
        return None


def node_within(outer: str | None, inner: str | None) -> bool:
    """Node ``inner`` is node ``outer`` or inside its subtree (both well-formed node names)."""
    a, b = parse_node(outer), parse_node(inner)
    return a is not None and b is not None and a.covers(b)


def copy_refusal(receiver: str, sender: str | None, owner: str | None, place: str | None,
                 stored_owner: str | None = None, *, from_above: bool = False) -> str | None:
    """Why ``receiver`` must not take a copy of a row owned by ``owner`` at ``place`` (a jurisdiction
    code), sent by ``sender`` (from below) or by the tier above (``from_above``); None when it may.

    ``stored_owner`` is the owner of the row already held under the same key, if any. The reasons
    name only what the sender itself sent, so a refusal tells a peer nothing about other rows.
    """
    me = parse_node(receiver)
    who = parse_node(owner)
    if me is None:
        return f"{receiver} is not a tier node"
    if who is None:
        return f"owner {owner!r} is not a tier node"
    if who == me or stored_owner == me.name:
        return f"{me.name} owns this row"
    if stored_owner is not None and stored_owner != who.name:
        return "the row is owned elsewhere"
    if not place or not covers(who.code, place) or scope_tier(place) is None:
        return f"the row's place {place!r} is outside its owner {who.name}"
    if from_above:
        if not who.above(me):
            return f"{who.name} is not above {me.name}"
        if not covers(me.code, place):
            return f"the row's place {place} is outside {me.name}"
        return None
    peer = parse_node(sender)
    if peer is None:
        return "the sender is not a tier node"
    if not me.above(peer):
        return f"{peer.name} is not below {me.name}"
    if not peer.covers(who):
        return f"{who.name} is not {peer.name} or inside its jurisdiction"
    return None


def directive_refusal(receiver: str, origin_tier: str, origin_code: str, targets: list[str],
                      stored_owner: str | None = None) -> str | None:
    """``copy_refusal`` for a directive arriving from above: issued by a strict ancestor of ``receiver``,
    every jurisdiction it names inside its issuer's, never over one this node issued."""
    me, who = parse_node(receiver), node_of(origin_tier, origin_code)
    if me is None or who is None:
        return "not a directive between tier nodes"
    if who == me or stored_owner == me.name:
        return f"{me.name} issued this directive"
    if stored_owner is not None and stored_owner != who.name:
        return "the directive is owned elsewhere"
    if not who.above(me):
        return f"{who.name} is not above {me.name}"
    codes = [t for t in targets if t.isascii() and t.isdigit()]
    if not codes or not all(covers(who.code, t) for t in codes):
        return f"a target lies outside {who.name}"
    return None


_RECEIPT_RANK = {s.value: i for i, s in enumerate(ReceiptState)}


def receipt_goes_back(held_state: str, incoming_state: str) -> bool:
    """A copy from above may re-notify a receipt this node's streets answer, never undo their answer."""
    return _RECEIPT_RANK.get(incoming_state, -1) < _RECEIPT_RANK.get(held_state, 0)
