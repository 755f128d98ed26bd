-- memex PostgreSQL schema 1: memories with their vectors and searchable text, past
-- versions, change counters and saved session contexts.
--
-- The tenant is the first column of every primary key and B-tree index: the column a
-- sharded deployment (Citus) would distribute on. Only the GIN (tags, text) and HNSW
-- (vectors) indexes cannot lead with it; every query still names the tenant.
--
-- Row-level security is enabled and forced on every table, so the role memex connects
-- as is bound by it too. A row is visible only to a transaction whose setting
-- memex.tenant names its tenant (the store sets it with set_config(..., true) at the
-- start of each transaction); a connection that set nothing sees and changes nothing.
-- memex.all_tenants = 'on' is set only by whole-store work (backup, reindex, upgrade).

-- English stemming without a stop word list: the lexical leg is ranked by term rarity,
-- and a query made only of common words must still match something.
CREATE TEXT SEARCH DICTIONARY memex_english_stem (TEMPLATE = snowball, LANGUAGE = english);
CREATE TEXT SEARCH CONFIGURATION memex_english (COPY = english);
ALTER TEXT SEARCH CONFIGURATION memex_english
    ALTER MAPPING FOR asciiword, asciihword, hword_asciipart, word, hword, hword_part
    WITH memex_english_stem;

CREATE TABLE memex_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

CREATE SEQUENCE memories_seq AS bigint;

CREATE TABLE memories (
    tenant           text             NOT NULL,
    seq              bigint           NOT NULL DEFAULT nextval('memories_seq'),
    id               text             NOT NULL,
    project          text,
    user_id          text,
    agent            text,
    session          text,
    kind             text             NOT NULL,
    content          text             NOT NULL,
    tags             text[]           NOT NULL DEFAULT '{}',
    metadata         jsonb            NOT NULL DEFAULT '{}',
    importance       double precision NOT NULL,
    source           text,
    content_hash     text             NOT NULL,
    version          integer          NOT NULL,
    created_at       bigint           NOT NULL,
    updated_at       bigint           NOT NULL,
    expires_at       bigint,
    deleted_at       bigint,
    last_accessed_at bigint,
    access_count     bigint           NOT NULL DEFAULT 0,
    valid_from       bigint           NOT NULL,
    valid_until      bigint,
    superseded_by    text,
    embedding        vector,
    lexemes          tsvector GENERATED ALWAYS AS (to_tsvector('memex_english', content)) STORED,
    PRIMARY KEY (tenant, seq),
    UNIQUE (tenant, id)
);
ALTER SEQUENCE memories_seq OWNED BY memories.seq;

CREATE INDEX memories_created ON memories (tenant, created_at, seq);
-- Threads (scope and kind, in creation order): a hit's neighbours are a range scan.
CREATE INDEX memories_thread ON memories (tenant, (coalesce(project, '')), kind, created_at, seq);
CREATE INDEX memories_hash ON memories (tenant, content_hash);
CREATE INDEX memories_superseded_by ON memories (tenant, superseded_by)
    WHERE superseded_by IS NOT NULL;
CREATE INDEX memories_expires ON memories (tenant, expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX memories_tags ON memories USING gin (tags);
CREATE INDEX memories_lexemes ON memories USING gin (lexemes);

-- Past versions only: a memory's current version is its memories row.
CREATE TABLE memory_history (
    tenant        text             NOT NULL,
    id            text             NOT NULL,
    version       integer          NOT NULL,
    project       text,
    user_id       text,
    agent         text,
    session       text,
    kind          text             NOT NULL,
    content       text             NOT NULL,
    tags          text[]           NOT NULL,
    metadata      jsonb            NOT NULL,
    importance    double precision NOT NULL,
    source        text,
    content_hash  text             NOT NULL,
    created_at    bigint           NOT NULL,
    updated_at    bigint           NOT NULL,
    expires_at    bigint,
    deleted_at    bigint,
    valid_from    bigint           NOT NULL,
    valid_until   bigint,
    superseded_by text,
    PRIMARY KEY (tenant, id, version)
);

CREATE TABLE change_counters (
    tenant  text   NOT NULL,
    project text   NOT NULL,
    key     text   NOT NULL,
    version bigint NOT NULL,
    PRIMARY KEY (tenant, project, key)
);

CREATE TABLE context_sessions (
    tenant      text   NOT NULL,
    session     text   NOT NULL,
    prefix_hash text   NOT NULL,
    text        text   NOT NULL,
    updated_at  bigint NOT NULL,
    PRIMARY KEY (tenant, session)
);
CREATE INDEX context_sessions_prefix ON context_sessions (tenant, prefix_hash);

CREATE TABLE context_session_memories (
    tenant  text NOT NULL,
    id      text NOT NULL,
    session text NOT NULL,
    PRIMARY KEY (tenant, id, session)
);
CREATE INDEX context_session_memories_session ON context_session_memories (tenant, session);

-- Store-wide facts (schema version, store id, vector model): readable by every
-- transaction, written only by one that has set a tenant or is doing whole-store work.
ALTER TABLE memex_meta ENABLE ROW LEVEL SECURITY;
ALTER TABLE memex_meta FORCE ROW LEVEL SECURITY;
CREATE POLICY memex_meta_read ON memex_meta FOR SELECT USING (true);
CREATE POLICY memex_meta_write ON memex_meta FOR ALL
    USING (coalesce(current_setting('memex.tenant', true), '') <> ''
           OR current_setting('memex.all_tenants', true) = 'on')
    WITH CHECK (coalesce(current_setting('memex.tenant', true), '') <> ''
                OR current_setting('memex.all_tenants', true) = 'on');

ALTER TABLE memories ENABLE ROW LEVEL SECURITY;
ALTER TABLE memories FORCE ROW LEVEL SECURITY;
CREATE POLICY memories_tenant ON memories
    USING (tenant = current_setting('memex.tenant', true)
           OR current_setting('memex.all_tenants', true) = 'on');

ALTER TABLE memory_history ENABLE ROW LEVEL SECURITY;
ALTER TABLE memory_history FORCE ROW LEVEL SECURITY;
CREATE POLICY memory_history_tenant ON memory_history
    USING (tenant = current_setting('memex.tenant', true)
           OR current_setting('memex.all_tenants', true) = 'on');

ALTER TABLE change_counters ENABLE ROW LEVEL SECURITY;
ALTER TABLE change_counters FORCE ROW LEVEL SECURITY;
CREATE POLICY change_counters_tenant ON change_counters
    USING (tenant = current_setting('memex.tenant', true)
           OR current_setting('memex.all_tenants', true) = 'on');

ALTER TABLE context_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE context_sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY context_sessions_tenant ON context_sessions
    USING (tenant = current_setting('memex.tenant', true)
           OR current_setting('memex.all_tenants', true) = 'on');

ALTER TABLE context_session_memories ENABLE ROW LEVEL SECURITY;
ALTER TABLE context_session_memories FORCE ROW LEVEL SECURITY;
CREATE POLICY context_session_memories_tenant ON context_session_memories
    USING (tenant = current_setting('memex.tenant', true)
           OR current_setting('memex.all_tenants', true) = 'on');

INSERT INTO memex_meta (key, value) VALUES ('store_id', md5(random()::text || clock_timestamp()::text));
