"""Storage backends behind one Store protocol."""

from memex.storage.base import Store, StoredVectors, WriteBatch
from memex.storage.open import open_store

__all__ = ["Store", "StoredVectors", "WriteBatch", "open_store"]
