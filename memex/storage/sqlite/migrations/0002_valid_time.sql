-- memex schema 2: valid time. A fact that changes is superseded, not overwritten:
-- the old version keeps its content and gets valid_until and superseded_by.

ALTER TABLE memories ADD COLUMN valid_from INTEGER;
ALTER TABLE memories ADD COLUMN valid_until INTEGER;
ALTER TABLE memories ADD COLUMN superseded_by TEXT;
UPDATE memories SET valid_from = created_at WHERE valid_from IS NULL;
CREATE INDEX memories_tenant_valid ON memories (tenant, valid_until) WHERE valid_until IS NOT NULL;

ALTER TABLE memory_history ADD COLUMN valid_from INTEGER;
ALTER TABLE memory_history ADD COLUMN valid_until INTEGER;
ALTER TABLE memory_history ADD COLUMN superseded_by TEXT;
UPDATE memory_history SET valid_from = created_at WHERE valid_from IS NULL;

DROP TRIGGER memories_history_ai;
DROP TRIGGER memories_history_au;
CREATE TRIGGER memories_history_ai AFTER INSERT ON memories BEGIN
    INSERT INTO memory_history VALUES (
        new.tenant, new.id, new.version, new.project, new.user_id, new.agent, new.session,
        new.kind, new.content, new.tags, new.metadata, new.importance, new.source,
        new.content_hash, new.created_at, new.updated_at, new.expires_at, new.deleted_at,
        coalesce(new.valid_from, new.created_at), new.valid_until, new.superseded_by);
END;
CREATE TRIGGER memories_history_au AFTER UPDATE ON memories WHEN new.version <> old.version BEGIN
    INSERT INTO memory_history VALUES (
        new.tenant, new.id, new.version, new.project, new.user_id, new.agent, new.session,
        new.kind, new.content, new.tags, new.metadata, new.importance, new.source,
        new.content_hash, new.created_at, new.updated_at, new.expires_at, new.deleted_at,
        coalesce(new.valid_from, new.created_at), new.valid_until, new.superseded_by);
END;
