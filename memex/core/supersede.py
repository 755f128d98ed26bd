"""Undoing a supersede: the validity a memory gets back when what replaced it goes away.

``supersede`` ends the old memory's validity at the new one's ``valid_from`` and marks
it ``superseded_by`` the new one. When the new memory is forgotten or purged, or the
supersede is undone outright (``unsupersede``), the old one is restored as if that
supersede had never happened. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from memex.core.models import Memory
from memex.core.visibility import is_forgotten


@dataclass(frozen=True, slots=True)
class Validity:
    """Until when a memory is valid, and which memory replaced it then (if any)."""

    valid_until: datetime | None
    superseded_by: str | None


def restored_validity(versions: Sequence[Memory], successors: Sequence[Memory]) -> Validity:
    """The validity of a superseded memory once the memory that superseded it is gone.

    Args:
        versions: the superseded memory's versions, oldest first (its ``history``).
        successors: the memories that replaced the one that is gone, in order: the one
            that superseded it, the one that superseded that one, and so on; empty when
            the supersede is undone outright.

    The memory keeps the end it had of its own before it was superseded: that of its
    newest version not marked as superseded (none when every version is marked, as in
    an import of a superseded memory). If a successor is still live (the first one not
    forgotten: an expired one counts, whether or not ``expire`` recorded its expiry, as
    ``core.visibility`` has it), that one replaces the memory from its ``valid_from``
    instead: a chain A → B → C that loses B becomes A → C, not two current memories.
    The memory's own end wins when it comes first. Scopes play no part: a supersede
    links memories of one tenant, whatever their projects or sessions.
    """
    own_end = next((v.valid_until for v in reversed(versions) if v.superseded_by is None), None)
    successor = next((s for s in successors if not is_forgotten(s.deleted_at, s.expires_at)), None)
    if successor is None or (own_end is not None and own_end <= successor.valid_from):
        return Validity(own_end, None)
    return Validity(successor.valid_from, successor.id)
