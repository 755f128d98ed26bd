-- memex schema 1: memories, their tags, full-text index, vectors and version history.
-- Every table holding memory data carries the tenant, and every index leads with it.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE memories (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT    NOT NULL,
    tenant           TEXT    NOT NULL,
    project          TEXT,
    user_id          TEXT,
    agent            TEXT,
    session          TEXT,
    kind             TEXT    NOT NULL,
    content          TEXT    NOT NULL,
    tags             TEXT    NOT NULL DEFAULT '[]',
    metadata         TEXT    NOT NULL DEFAULT '{}',
    importance       REAL    NOT NULL DEFAULT 0.5,
    source           TEXT,
    content_hash     TEXT    NOT NULL,
    version          INTEGER NOT NULL DEFAULT 1,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    expires_at       INTEGER,
    deleted_at       INTEGER,
    last_accessed_at INTEGER,
    access_count     INTEGER NOT NULL DEFAULT 0
);

CREATE UNIQUE INDEX memories_tenant_id ON memories (tenant, id);
CREATE INDEX memories_tenant_created ON memories (tenant, created_at, seq);
CREATE INDEX memories_tenant_project ON memories (tenant, project, created_at);
CREATE INDEX memories_tenant_kind ON memories (tenant, kind, created_at);
CREATE INDEX memories_tenant_hash ON memories (tenant, content_hash);
CREATE INDEX memories_tenant_expires ON memories (tenant, expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE memory_tags (
    tenant TEXT    NOT NULL,
    tag    TEXT    NOT NULL,
    seq    INTEGER NOT NULL,
    PRIMARY KEY (tenant, tag, seq)
) WITHOUT ROWID;
CREATE INDEX memory_tags_seq ON memory_tags (seq);

CREATE TRIGGER memories_tags_ai AFTER INSERT ON memories BEGIN
    INSERT OR IGNORE INTO memory_tags (tenant, tag, seq)
        SELECT new.tenant, value, new.seq FROM json_each(new.tags);
END;
CREATE TRIGGER memories_tags_au AFTER UPDATE OF tags ON memories BEGIN
    DELETE FROM memory_tags WHERE seq = old.seq;
    INSERT OR IGNORE INTO memory_tags (tenant, tag, seq)
        SELECT new.tenant, value, new.seq FROM json_each(new.tags);
END;
CREATE TRIGGER memories_tags_ad AFTER DELETE ON memories BEGIN
    DELETE FROM memory_tags WHERE seq = old.seq;
END;

CREATE VIRTUAL TABLE memories_fts USING fts5 (
    content,
    content = 'memories',
    content_rowid = 'seq',
    tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER memories_fts_ai AFTER INSERT ON memories BEGIN
    INSERT INTO memories_fts (rowid, content) VALUES (new.seq, new.content);
END;
CREATE TRIGGER memories_fts_ad AFTER DELETE ON memories BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, content) VALUES ('delete', old.seq, old.content);
END;
CREATE TRIGGER memories_fts_au AFTER UPDATE OF content ON memories BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, content) VALUES ('delete', old.seq, old.content);
    INSERT INTO memories_fts (rowid, content) VALUES (new.seq, new.content);
END;

CREATE TABLE vectors (
    seq    INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX vectors_tenant ON vectors (tenant, seq);

-- One row per version of a memory, written by triggers so no change can skip it.
-- Reads that only count accesses do not raise the version and leave no row here.
CREATE TABLE memory_history (
    tenant       TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    project      TEXT,
    user_id      TEXT,
    agent        TEXT,
    session      TEXT,
    kind         TEXT    NOT NULL,
    content      TEXT    NOT NULL,
    tags         TEXT    NOT NULL,
    metadata     TEXT    NOT NULL,
    importance   REAL    NOT NULL,
    source       TEXT,
    content_hash TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    deleted_at   INTEGER,
    PRIMARY KEY (tenant, id, version)
) WITHOUT ROWID;

CREATE TRIGGER memories_history_ai AFTER INSERT ON memories BEGIN
    INSERT INTO memory_history VALUES (
        new.tenant, new.id, new.version, new.project, new.user_id, new.agent, new.session,
        new.kind, new.content, new.tags, new.metadata, new.importance, new.source,
        new.content_hash, new.created_at, new.updated_at, new.expires_at, new.deleted_at);
END;
CREATE TRIGGER memories_history_au AFTER UPDATE ON memories WHEN new.version <> old.version BEGIN
    INSERT INTO memory_history VALUES (
        new.tenant, new.id, new.version, new.project, new.user_id, new.agent, new.session,
        new.kind, new.content, new.tags, new.metadata, new.importance, new.source,
        new.content_hash, new.created_at, new.updated_at, new.expires_at, new.deleted_at);
END;
