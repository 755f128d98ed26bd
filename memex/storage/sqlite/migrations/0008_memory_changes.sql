-- memex schema 8: what a recall can tell without reading a memory's row. Most memories
-- are plainly current forever: never forgotten, no expiry, no end of validity, valid
-- from their creation. An index holds the others, and a log names every memory whose
-- row a write changed or removed, per tenant, so a process can keep the others in
-- memory and catch up with exactly what changed (new memories need no entry: their
-- keys only grow).

CREATE TABLE memory_changes (
    pos    INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT    NOT NULL,
    seq    INTEGER NOT NULL
);
CREATE INDEX memory_changes_tenant ON memory_changes (tenant, pos);

CREATE INDEX memories_limited ON memories (tenant, seq)
    WHERE deleted_at IS NOT NULL OR expires_at IS NOT NULL OR valid_until IS NOT NULL
       OR valid_from IS NOT created_at;
