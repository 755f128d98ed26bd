"""Settings: defaults < TOML file < MEMEX_* environment variables < explicit arguments."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from memex.core.validate import INT64_MAX, INT64_MIN, shown
from memex.errors import ConfigError

DB_FILENAME = "memex.db"
_OPTIONAL_FLOATS = frozenset({"vector_weight"})
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})
CONFIG_FILENAME = "config.toml"


def default_home() -> Path:
    """Where the default store lives: $MEMEX_HOME, else the user data directory."""
    env = os.environ.get("MEMEX_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("memex", appauthor=False))


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything that can be configured. Secrets are redacted from ``repr``."""

    embedder: str = "auto"
    """Embedding model: ``wordllama``, ``minilm`` or ``openai``; ``auto`` means the model
    that made the store's vectors, or ``wordllama`` for a new store."""
    tenant: str = "default"
    """The tenant a plainly opened handle reads and writes."""
    max_content_bytes: int = 65_536
    """Largest content accepted, in UTF-8 bytes."""
    busy_timeout: float = 30.0
    """Seconds to wait for another process's write lock before giving up."""
    synchronous: str = "NORMAL"
    """SQLite synchronous mode: NORMAL (durable against crashes of the process) or FULL."""
    read_only: bool = False
    """Open the store read-only: reads work, writes raise StoreReadOnlyError, no access
    statistics or session snapshots are written. A store this process cannot write is
    opened read-only anyway."""
    vector_weight: float | None = None
    """Share of the semantic leg in hybrid recall, 0 to 1; None: the embedder's own default
    (0.25 for the static WordLlama vectors, 0.4 for contextual models)."""
    importance_weight: float = 0.0
    """Boost added per unit of importance (0 turns the boost off)."""
    recency_weight: float = 0.0
    """Boost added for a brand-new memory, halving every half-life (0 turns it off)."""
    recency_half_life_days: float = 30.0
    candidates: int = 100
    """Candidates each search leg contributes to fusion."""
    ann_min_vectors: int = 50_000
    """A tenant with this many vectors is searched through an approximate index (saved
    beside the store file) instead of an exact scan."""
    ann_probes: int = 48
    """Lists of the approximate index scanned per query: more is slower and more exact."""
    lexical_index_min: int = 1_000
    """A store with this many memories answers the full-text leg from a tantivy index
    (saved beside the store file, kept in step with SQLite) instead of an FTS5 query."""
    neighbour_share: float = 0.5
    """Share of a top hit's score given to the memories next to it in its thread (same
    scope and kind, creation order): turns just before or after a match (0 turns it off)."""
    neighbour_radius: int = 2
    """How many memories on each side of a hit count as its neighbours."""
    episode_minutes: float = 60.0
    """Memories of one thread written at most this many minutes apart share an episode
    (a conversation, a work session); hybrid recall lifts a candidate by what its
    episode holds (0 turns episodes off)."""
    episode_best_share: float = 0.3
    """Share of the best score in a candidate's episode added to its own."""
    episode_coverage_share: float = 0.5
    """Weight of how many of the query's words a candidate's episode holds."""
    embed_batch_size: int = 256
    query_cache_size: int = 1024
    """Query embeddings kept in memory for repeated queries."""
    tokenizer: str = "auto"
    """Token counting for contexts: auto (Llama 2 via tokenizers), llama2, tiktoken[:enc],
    heuristic, or a tokenizer.json path."""
    context_cache_bytes: int = 32 * 1024 * 1024
    """Size limit of the rendered-section cache."""
    context_cache_seconds: float = 600.0
    """How long a cached section may be served (writes invalidate it sooner)."""
    access_flush_seconds: float = 2.0
    """Access statistics are written at most this often (and on close)."""
    openai_base_url: str = "http://127.0.0.1:11434/v1"
    openai_model: str = "nomic-embed-text"
    openai_api_key: str | None = field(default=None, repr=False)
    openai_timeout: float = 30.0
    master_key: str | None = field(default=None, repr=False)
    """The master key of encryption at rest: 32 bytes as 64 hex digits or base64. With a
    master key, each new tenant's memories are stored encrypted (docs/security.md)."""
    master_key_file: str | None = None
    """A file holding the master key, instead of ``master_key``."""
    audit: bool = True
    """Keep the audit trail: every write, directory change and refusal appends an entry
    to its tenant's hash chain (docs/security.md). False appends none, for a store that
    needs no trail; what entries exist stay, and ``memex audit verify`` still checks them."""

    def __repr__(self) -> str:
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith(("api_key", "master_key")) and value is not None:
                value = "***"
            parts.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(parts)})"

    def __post_init__(self) -> None:
        for f in fields(self):  # before the range checks, which NaN would slip through
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{f.name} must be a finite number, not {shown(value)}")
            if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
                raise ConfigError(f"{f.name} must be a whole number within 64 bits")
        if self.max_content_bytes < 1:
            raise ConfigError("max_content_bytes must be positive")
        if self.busy_timeout < 0:
            raise ConfigError("busy_timeout must not be negative")
        if self.vector_weight is not None and not 0.0 <= self.vector_weight <= 1.0:
            raise ConfigError("vector_weight must be from 0 to 1")
        for name in (
            "candidates",
            "embed_batch_size",
            "ann_min_vectors",
            "ann_probes",
            "lexical_index_min",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be positive")
        if self.query_cache_size < 0:
            raise ConfigError("query_cache_size must not be negative")
        if not 0.0 <= self.neighbour_share <= 1.0 or self.neighbour_radius < 0:
            raise ConfigError("neighbour_share must be from 0 to 1, neighbour_radius at least 0")
        if self.episode_minutes < 0:
            raise ConfigError("episode_minutes must not be negative")
        if not (
            0.0 <= self.episode_best_share <= 1.0 and 0.0 <= self.episode_coverage_share <= 1.0
        ):
            raise ConfigError("episode_best_share and episode_coverage_share must be from 0 to 1")
        if self.openai_timeout <= 0 or self.access_flush_seconds <= 0:
            raise ConfigError("openai_timeout and access_flush_seconds must be positive")
        if self.synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ConfigError("synchronous must be one of OFF, NORMAL, FULL, EXTRA")

    @classmethod
    def load(cls, home: Path | None = None, **overrides: Any) -> Settings:
        """Build settings from defaults, ``home``'s config.toml, MEMEX_* variables and overrides."""
        values: dict[str, Any] = {}
        config_path = os.environ.get("MEMEX_CONFIG")
        path = Path(config_path) if config_path else (home or default_home()) / CONFIG_FILENAME
        if path.is_file():
            import tomllib

            try:
                with path.open("rb") as fh:
                    values.update(tomllib.load(fh))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(f"cannot read {path}: {exc}") from exc
        for f in fields(cls):
            env = os.environ.get(f"MEMEX_{f.name.upper()}")
            if env is not None:
                values[f.name] = env
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_mapping(values)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Settings:
        """Coerce a mapping of raw values (strings from the environment) into settings."""
        known = {f.name: f for f in fields(cls)}
        unknown = set(values) - set(known)
        if unknown:
            raise ConfigError(f"unknown setting {sorted(unknown)[0]!r}")
        coerced: dict[str, Any] = {}
        defaults = cls()
        for name, raw in values.items():
            kind = float if name in _OPTIONAL_FLOATS else type(getattr(defaults, name))
            try:
                if raw is None or kind is type(None) or isinstance(raw, kind):
                    coerced[name] = raw
                elif kind is bool:
                    coerced[name] = _boolean(raw)
                elif kind is int:
                    coerced[name] = int(raw)
                elif kind is float:
                    coerced[name] = float(raw)
                else:
                    coerced[name] = str(raw)
            except (TypeError, ValueError, OverflowError) as exc:
                wanted = "yes/no value (1/0, true/false)" if kind is bool else kind.__name__
                raise ConfigError(f"setting {name} must be a {wanted}, not {shown(raw)}") from exc
        return cls(**coerced)

    def as_dict(self) -> dict[str, Any]:
        """Every setting by name."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def with_changes(self, **changes: Any) -> Settings:
        """A copy with some settings replaced."""
        return replace(self, **changes)


def _boolean(raw: object) -> bool:
    """A yes/no setting from a string (1/0, true/false, yes/no, on/off) or a 0/1 number."""
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(raw)


def located(
    path: str | Path | None, settings: Settings | None, overrides: Mapping[str, Any]
) -> tuple[str | Path, Settings]:
    """Where the store is and the settings in force, as ``Memex.open`` takes them: a
    ``path`` of None means the default store in the home folder."""
    home = None if path is not None else default_home()
    if settings is None:
        settings = Settings.load(home, **overrides)
    elif overrides:
        settings = Settings.from_mapping({**settings.as_dict(), **overrides})
    return (path if path is not None else (home or default_home()) / DB_FILENAME), settings
