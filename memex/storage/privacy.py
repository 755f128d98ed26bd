"""The storage side of the privacy operations: erasing a user's, a project's or a whole
tenant's data in bounded batches, scrubbing what a delete leaves in the backend's
files, and renaming a user (``Store.privacy()``; docs/security.md, "Privacy").

Each method is one transaction, so a process killed between two calls leaves every
batch it finished erased and the others untouched: running the erasure again finishes
it. A backend records that erased data may still linger in its files until
``scrub`` has run (``scrub_pending``), so a second run scrubs even when nothing is
left to erase.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from memex.core.privacy import Selector


@dataclass(frozen=True, slots=True)
class Erased:
    """What one call removed: the ids of the memories, and how many rows of each kind
    (``memories``, ``versions``, ``vectors``, ``sessions``, ``keys``, ``users``,
    ``projects``, ``tenants``)."""

    ids: tuple[str, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)


class PrivacyStore(Protocol):
    """Erasure and anonymisation on one store's tables."""

    def count(self, selector: Selector) -> int:
        """How many memories (in any state) the selector covers."""
        ...

    def known(self, selector: Selector) -> bool:
        """Whether the store holds anything of the selector: a memory, a saved session
        naming it, or its directory entry (for a tenant: the tenant's)."""
        ...

    def superseding(self, tenant: str, ids: Sequence[str]) -> set[str]:
        """Which of these ids some memory of the tenant names as ``superseded_by`` (one
        indexed query: an erase restores only what those superseded)."""
        ...

    def erase_batch(self, selector: Selector, ids: Sequence[str]) -> Erased:
        """Remove the memories with these ids that the selector covers (others are left
        alone), with every past version, their vectors and search postings, and the
        saved session contexts that showed them, in one transaction."""
        ...

    def erase_rest(self, selector: Selector) -> Erased:
        """Once its memories are gone, remove the rest of the selector's data in one
        transaction: saved sessions whose scope names it, its keys and directory entry
        (for a tenant: every key, user, project, change counter and saved session of
        it, and the tenant itself)."""
        ...

    def scrub_pending(self) -> bool:
        """Whether an erasure or anonymisation has left copies that ``scrub`` removes."""
        ...

    def scrub(self) -> tuple[str, ...]:
        """Remove what deletes leave readable in the backend's files (free pages, logs,
        index segments), as far as the backend can; return notes on what is left and
        when it goes (empty: nothing)."""
        ...

    def anonymise(self, selector: Selector, pseudonym: str) -> dict[str, int]:
        """Rename the selector's user to ``pseudonym`` in one transaction, in its
        memories (current and past versions), saved session keys, keys and directory
        entry; return how many of each were renamed. ConflictError if ``pseudonym``
        is taken."""
        ...
