-- memex schema 10: the audit trail. One hash chain per tenant (and "*" for refusals
-- that belong to no tenant): each entry holds the previous entry's hash and its own
-- (memex.core.audit), and audit_heads the last number and hash of each chain, moved in
-- the transaction that appends, so a cut-off tail shows. Entries are appended in the
-- transaction of the change they record and never changed afterwards.

CREATE TABLE audit_entries (
    tenant        TEXT    NOT NULL,
    seq           INTEGER NOT NULL,
    at            INTEGER NOT NULL,
    key_id        TEXT    NOT NULL,
    user_id       TEXT,
    action        TEXT    NOT NULL,
    resource_type TEXT    NOT NULL,
    resource_id   TEXT    NOT NULL,
    outcome       TEXT    NOT NULL,
    client        TEXT,
    user_agent    TEXT,
    count         INTEGER NOT NULL,
    detail        TEXT    NOT NULL,
    prev_hash     TEXT    NOT NULL,
    hash          TEXT    NOT NULL,
    PRIMARY KEY (tenant, seq)
) WITHOUT ROWID;
CREATE INDEX audit_entries_at ON audit_entries (tenant, at);

CREATE TABLE audit_heads (
    tenant TEXT    PRIMARY KEY,
    seq    INTEGER NOT NULL,
    hash   TEXT    NOT NULL
) WITHOUT ROWID;
