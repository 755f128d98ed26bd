-- memex schema 10: encryption at rest. An encrypted tenant's data key, wrapped by the
-- master key (whose id is kept, so a rotation knows which key wrapped it). Its memories'
-- content and metadata are stored sealed (BLOBs); memex_plain(), a function the store
-- defines on each connection, opens them, so the full-text index still gets the text
-- (its external content is the memories table: it keeps terms, never a copy of the text).

CREATE TABLE tenant_keys (
    tenant     TEXT    PRIMARY KEY,
    data_key   BLOB    NOT NULL,
    key_id     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    rotated_at INTEGER
) WITHOUT ROWID;

DROP TRIGGER memories_fts_ai;
DROP TRIGGER memories_fts_ad;
DROP TRIGGER memories_fts_au;
CREATE TRIGGER memories_fts_ai AFTER INSERT ON memories BEGIN
    INSERT INTO memories_fts (rowid, content) VALUES (new.seq, CASE WHEN typeof(new.content) = 'blob'
        THEN memex_plain(new.tenant, new.id, new.version, 'content', new.content)
        ELSE new.content END);
END;
CREATE TRIGGER memories_fts_ad AFTER DELETE ON memories BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, content) VALUES ('delete', old.seq,
        CASE WHEN typeof(old.content) = 'blob'
        THEN memex_plain(old.tenant, old.id, old.version, 'content', old.content)
        ELSE old.content END);
END;
CREATE TRIGGER memories_fts_au AFTER UPDATE OF content ON memories BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, content) VALUES ('delete', old.seq,
        CASE WHEN typeof(old.content) = 'blob'
        THEN memex_plain(old.tenant, old.id, old.version, 'content', old.content)
        ELSE old.content END);
    INSERT INTO memories_fts (rowid, content) VALUES (new.seq, CASE WHEN typeof(new.content) = 'blob'
        THEN memex_plain(new.tenant, new.id, new.version, 'content', new.content)
        ELSE new.content END);
END;
