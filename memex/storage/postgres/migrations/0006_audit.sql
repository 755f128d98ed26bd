-- memex PostgreSQL schema 6: the audit trail (memex.core.audit). One hash chain per
-- tenant, and "*" for refusals that belong to no tenant; audit_heads holds each chain's
-- last number and hash, moved in the transaction that appends (whose row lock is what
-- makes appends to one chain take turns).
--
-- Row-level security is forced as on every table. A row is reachable by a transaction
-- bound to its tenant (memex.tenant), by one that names the chain it appends to or reads
-- (memex.audit: the directory's transactions, which set no tenant, and refusals), and
-- by whole-store work (memex.all_tenants). Entries may be read and inserted, never
-- updated or deleted: there is no policy for that, so such a statement finds no row.
CREATE TABLE audit_entries (
    tenant        text COLLATE "C" NOT NULL,
    seq           bigint NOT NULL,
    at            bigint NOT NULL,
    key_id        text NOT NULL,
    user_name     text,
    action        text NOT NULL,
    resource_type text NOT NULL,
    resource_id   text NOT NULL,
    outcome       text NOT NULL,
    client        text,
    user_agent    text,
    count         bigint NOT NULL,
    detail        text NOT NULL,
    prev_hash     text NOT NULL,
    hash          text NOT NULL,
    PRIMARY KEY (tenant, seq)
);
CREATE INDEX audit_entries_at ON audit_entries (tenant, at);

CREATE TABLE audit_heads (
    tenant text COLLATE "C" PRIMARY KEY,
    seq    bigint NOT NULL,
    hash   text NOT NULL
);

ALTER TABLE audit_entries ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_entries FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_entries_read ON audit_entries FOR SELECT
    USING (tenant = current_setting('memex.tenant', true)
           OR tenant = current_setting('memex.audit', true)
           OR current_setting('memex.all_tenants', true) = 'on');
CREATE POLICY audit_entries_append ON audit_entries FOR INSERT
    WITH CHECK (tenant = current_setting('memex.tenant', true)
                OR tenant = current_setting('memex.audit', true)
                OR current_setting('memex.all_tenants', true) = 'on');

ALTER TABLE audit_heads ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_heads FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_heads_chain ON audit_heads
    USING (tenant = current_setting('memex.tenant', true)
           OR tenant = current_setting('memex.audit', true)
           OR current_setting('memex.all_tenants', true) = 'on');
