"""Administering encryption at rest (docs/security.md): which tenants are encrypted,
rotating the master key, encrypting a tenant that was plain, destroying a tenant's key."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from memex.core.identity import check_name
from memex.core.progress import Progress
from memex.storage.encryption import TenantKeys, master_key_file


@dataclass(frozen=True, slots=True)
class EncryptedTenant:
    """An encrypted tenant and the id of the master key its data key is wrapped by."""

    tenant: str
    key_id: str

    def public(self) -> dict[str, object]:
        """The fields, for JSON output."""
        return {"tenant": self.tenant, "key_id": self.key_id}


class Encryption:
    """The data keys of one store's encrypted tenants."""

    def __init__(self, keys: TenantKeys) -> None:
        self._keys = keys

    def tenants(self) -> list[EncryptedTenant]:
        """Every encrypted tenant."""
        return [EncryptedTenant(t, k) for t, k in self._keys.encrypted()]

    def rotate(self, new_key_file: str | Path) -> int:
        """Re-wrap every tenant's data key with the master key in ``new_key_file``, in one
        transaction (the store must be open with the current master key); how many."""
        return self._keys.rotate(master_key_file(Path(new_key_file)))

    def encrypt(self, tenant: str, progress: Progress | None = None) -> int:
        """Encrypt a tenant's stored text (needs the master key); how many rows were sealed."""
        return self._keys.encrypt(check_name(tenant, "tenant"), progress)

    def destroy(self, tenant: str) -> bool:
        """Destroy the tenant's data key for good (crypto-shredding): whatever of it stays
        sealed, here or in a backup, can never be read again. Whether it had one."""
        return self._keys.destroy(tenant)
