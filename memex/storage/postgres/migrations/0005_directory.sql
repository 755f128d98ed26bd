-- memex PostgreSQL schema 5: the directory (tenants, users, projects, API keys).
--
-- A key is looked up by its id before any tenant is known, so api_keys is keyed by the
-- id alone, and no directory table is keyed on memex.tenant. Row-level security is
-- forced on each all the same, with one policy: rows are visible and writable only to a
-- transaction that has set memex.directory = 'on', which only the directory's own
-- statements do (storage/postgres/directory.py). A transaction bound to a tenant, and
-- whole-store work (memex.all_tenants), see no directory rows; the directory's
-- transactions set no tenant, so they see no memories. Key hashes are thus out of reach
-- of every statement that reads or writes memories.
--
-- Names are compared byte by byte (COLLATE "C"), so listings come in the same order on
-- every server and in SQLite. Times are bigint microseconds since the Unix epoch, as in
-- the memory tables. directory_generation holds one number, raised in the transaction of
-- every change (never by recording when keys were last used), which processes caching
-- keys read to see that another changed the directory.
CREATE TABLE tenants (
    name       text COLLATE "C" PRIMARY KEY,
    created_at bigint NOT NULL,
    allow      text[] NOT NULL DEFAULT '{}'
);

CREATE TABLE tenant_users (
    tenant     text COLLATE "C" NOT NULL REFERENCES tenants (name),
    name       text COLLATE "C" NOT NULL,
    created_at bigint NOT NULL,
    PRIMARY KEY (tenant, name)
);

CREATE TABLE tenant_projects (
    tenant     text COLLATE "C" NOT NULL REFERENCES tenants (name),
    name       text COLLATE "C" NOT NULL,
    created_at bigint NOT NULL,
    PRIMARY KEY (tenant, name)
);

CREATE TABLE api_keys (
    id           text COLLATE "C" PRIMARY KEY,
    tenant       text COLLATE "C" NOT NULL REFERENCES tenants (name),
    role         text NOT NULL,
    hash         text NOT NULL,
    created_at   bigint NOT NULL,
    user_name    text COLLATE "C",
    project      text COLLATE "C",
    name         text,
    expires_at   bigint,
    revoked_at   bigint,
    last_used_at bigint,
    replaced_by  text,
    allow        text[] NOT NULL DEFAULT '{}',
    FOREIGN KEY (tenant, user_name) REFERENCES tenant_users (tenant, name),
    FOREIGN KEY (tenant, project) REFERENCES tenant_projects (tenant, name)
);
CREATE INDEX api_keys_created ON api_keys (created_at, id);
CREATE INDEX api_keys_tenant ON api_keys (tenant, created_at, id);

CREATE TABLE directory_generation (
    id    smallint PRIMARY KEY CHECK (id = 1),
    value bigint NOT NULL
);

ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenants_directory ON tenants
    USING (current_setting('memex.directory', true) = 'on');

ALTER TABLE tenant_users ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_users FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_users_directory ON tenant_users
    USING (current_setting('memex.directory', true) = 'on');

ALTER TABLE tenant_projects ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_projects FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_projects_directory ON tenant_projects
    USING (current_setting('memex.directory', true) = 'on');

ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY api_keys_directory ON api_keys
    USING (current_setting('memex.directory', true) = 'on');

ALTER TABLE directory_generation ENABLE ROW LEVEL SECURITY;
ALTER TABLE directory_generation FORCE ROW LEVEL SECURITY;
CREATE POLICY directory_generation_directory ON directory_generation
    USING (current_setting('memex.directory', true) = 'on');

SELECT set_config('memex.directory', 'on', true);
INSERT INTO directory_generation (id, value) VALUES (1, 0);
