"""Checks every backend makes of a write batch before it stores anything."""

from __future__ import annotations

from typing import TYPE_CHECKING

from memex.core.models import Memory, Scope
from memex.errors import ConflictError, EmbedderError, ScopeError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from memex.storage.base import Vector, WriteBatch


def check_scope(scope: Scope, memory: Memory) -> None:
    """Refuse a memory outside the scope of the handle writing it."""
    if not scope.contains(memory.scope):
        raise ScopeError(f"memory {memory.id} is outside the scope of this handle")


def float32_vector(vector: Vector, dims: int) -> npt.NDArray[np.float32]:
    """A vector as stored: ``dims`` float32 values, contiguous."""
    import numpy as np

    array = np.ascontiguousarray(vector, dtype=np.float32).reshape(-1)
    if array.shape[0] != dims:
        raise EmbedderError(f"vector has {array.shape[0]} dimensions, the store uses {dims}")
    return array


def check_audit(scope: Scope, batch: WriteBatch) -> None:
    """Refuse a batch whose audit event belongs to another tenant's chain."""
    if batch.audit is not None and batch.audit.tenant != scope.tenant:
        raise ScopeError("the batch's audit event is of another tenant")


def check_history(scope: Scope, batch: WriteBatch) -> None:
    """Refuse past versions that are not earlier versions of a memory the batch inserts,
    or are outside the scope (the backend refuses one version given twice)."""
    current = {(m.scope.tenant, m.id): m.version for m, _ in batch.inserts}
    for past in batch.history:
        check_scope(scope, past)
        version = current.get((past.scope.tenant, past.id))
        if version is None or not 1 <= past.version < version:
            raise ConflictError(
                f"version {past.version} of memory {past.id} is not a past version of a "
                "memory in the batch"
            )
