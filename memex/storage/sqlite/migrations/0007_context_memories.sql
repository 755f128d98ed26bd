-- memex schema 7: which memories each saved session context shows, so purging a memory
-- can drop every saved context whose text holds it; and an index on superseded_by, so
-- forgetting or purging a memory finds the memories it superseded (to restore them).
-- Contexts saved before this version record no memories: they are dropped (they only
-- serve to report how much of a session's next context repeats the previous one).

CREATE TABLE context_session_memories (
    tenant  TEXT NOT NULL,
    id      TEXT NOT NULL,
    session TEXT NOT NULL,
    PRIMARY KEY (tenant, id, session)
) WITHOUT ROWID;
CREATE INDEX context_session_memories_session ON context_session_memories (tenant, session);

DELETE FROM context_sessions;

CREATE INDEX memories_superseded_by ON memories (tenant, superseded_by)
    WHERE superseded_by IS NOT NULL;
