-- memex schema 3: change counters. Every versioned write bumps a counter per kind and
-- per tag of the memory (before and after the change), per tenant and project, so any
-- process can tell cheaply and exactly whether what a cached context section was built
-- from has changed. Reads that only count accesses raise no version and bump nothing.

CREATE TABLE change_counters (
    tenant  TEXT    NOT NULL,
    project TEXT    NOT NULL,
    key     TEXT    NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (tenant, project, key)
) WITHOUT ROWID;

CREATE TRIGGER memories_changes_ai AFTER INSERT ON memories BEGIN
    INSERT INTO change_counters (tenant, project, key, version)
        SELECT new.tenant, coalesce(new.project, ''), k, 1 FROM (
            SELECT 'kind:' || new.kind AS k
            UNION SELECT 'tag:' || value FROM json_each(new.tags))
        WHERE true
        ON CONFLICT (tenant, project, key) DO UPDATE SET version = version + 1;
END;

CREATE TRIGGER memories_changes_au AFTER UPDATE ON memories WHEN new.version <> old.version BEGIN
    INSERT INTO change_counters (tenant, project, key, version)
        SELECT new.tenant, coalesce(new.project, ''), k, 1 FROM (
            SELECT 'kind:' || new.kind AS k
            UNION SELECT 'kind:' || old.kind
            UNION SELECT 'tag:' || value FROM json_each(new.tags)
            UNION SELECT 'tag:' || value FROM json_each(old.tags))
        WHERE true
        ON CONFLICT (tenant, project, key) DO UPDATE SET version = version + 1;
END;

CREATE TRIGGER memories_changes_ad AFTER DELETE ON memories BEGIN
    INSERT INTO change_counters (tenant, project, key, version)
        SELECT old.tenant, coalesce(old.project, ''), k, 1 FROM (
            SELECT 'kind:' || old.kind AS k
            UNION SELECT 'tag:' || value FROM json_each(old.tags))
        WHERE true
        ON CONFLICT (tenant, project, key) DO UPDATE SET version = version + 1;
END;

-- The last context assembled for each session, so any process can report how much of a
-- new context repeats the previous one, and how many sessions share a stable prefix.
CREATE TABLE context_sessions (
    tenant      TEXT    NOT NULL,
    session     TEXT    NOT NULL,
    prefix_hash TEXT    NOT NULL,
    text        TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant, session)
) WITHOUT ROWID;
CREATE INDEX context_sessions_prefix ON context_sessions (tenant, prefix_hash);
