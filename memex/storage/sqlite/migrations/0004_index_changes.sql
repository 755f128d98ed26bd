-- memex schema 4: a log of memories whose vector or indexed text was replaced or removed,
-- per tenant, so an index derived from the tables (in memory or in a file beside the
-- store) can catch up with exactly what changed since it was built. New memories need
-- no entry: their keys only grow. The store gets an id, so a derived index file can
-- never be mistaken for one of another store later created at the same path.

CREATE TABLE index_changes (
    pos    INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT    NOT NULL,
    seq    INTEGER NOT NULL
);
CREATE INDEX index_changes_tenant ON index_changes (tenant, pos);

INSERT OR IGNORE INTO meta (key, value) VALUES ('store_id', lower(hex(randomblob(16))));
