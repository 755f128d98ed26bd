-- memex schema 9: the directory of a shared store: tenants, their users and projects,
-- and API keys (kept only as hashes). A generation counter grows with every change to
-- the directory, so a server that keeps keys in memory sees, with one read, that
-- another process (the command line) revoked one.

CREATE TABLE tenants (
    name       TEXT    PRIMARY KEY,
    created_at INTEGER NOT NULL,
    allow      TEXT    NOT NULL DEFAULT '[]'
) WITHOUT ROWID;

CREATE TABLE users (
    tenant     TEXT    NOT NULL REFERENCES tenants (name),
    name       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, name)
) WITHOUT ROWID;

CREATE TABLE projects (
    tenant     TEXT    NOT NULL REFERENCES tenants (name),
    name       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, name)
) WITHOUT ROWID;

CREATE TABLE api_keys (
    id           TEXT    PRIMARY KEY,
    tenant       TEXT    NOT NULL REFERENCES tenants (name),
    user_id      TEXT,
    project      TEXT,
    role         TEXT    NOT NULL,
    name         TEXT,
    hash         TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER,
    last_used_at INTEGER,
    replaced_by  TEXT,
    allow        TEXT    NOT NULL DEFAULT '[]',
    FOREIGN KEY (tenant, user_id) REFERENCES users (tenant, name),
    FOREIGN KEY (tenant, project) REFERENCES projects (tenant, name)
) WITHOUT ROWID;
CREATE INDEX api_keys_tenant ON api_keys (tenant, created_at);

CREATE TABLE directory_generation (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
);
INSERT INTO directory_generation (id, generation) VALUES (1, 0);
