-- memex schema 5: memory_history keeps past versions only. The current version of a
-- memory is its memories row, so an insert no longer writes a second copy of every
-- column; a versioned update archives the version it replaces. history() reads both.

DROP TRIGGER memories_history_ai;
DROP TRIGGER memories_history_au;

DELETE FROM memory_history WHERE EXISTS (
    SELECT 1 FROM memories m
    WHERE m.tenant = memory_history.tenant AND m.id = memory_history.id
      AND m.version = memory_history.version);

CREATE TRIGGER memories_history_au AFTER UPDATE ON memories WHEN new.version <> old.version BEGIN
    INSERT OR REPLACE INTO memory_history VALUES (
        old.tenant, old.id, old.version, old.project, old.user_id, old.agent, old.session,
        old.kind, old.content, old.tags, old.metadata, old.importance, old.source,
        old.content_hash, old.created_at, old.updated_at, old.expires_at, old.deleted_at,
        coalesce(old.valid_from, old.created_at), old.valid_until, old.superseded_by);
END;
