-- memex PostgreSQL schema 9: encryption at rest. An encrypted tenant's data key, wrapped
-- by the master key (whose id is kept, so a rotation knows which key wrapped it).
--
-- An encrypted tenant's memories (current and past versions) keep their content and
-- metadata sealed (AES-256-GCM, bound to tenant, id, version and field) in
-- sealed_content and sealed_metadata; their content is then '' and their metadata '{}',
-- and their content_hash a keyed hash. A saved session context's text is sealed in
-- sealed_text the same way. A plain row has NULL there. The store opens sealed values in
-- its own process: the server never holds a data key.
CREATE TABLE tenant_keys (
    tenant     text   PRIMARY KEY,
    data_key   bytea  NOT NULL,
    key_id     text   NOT NULL,
    created_at bigint NOT NULL,
    rotated_at bigint
);

ALTER TABLE tenant_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_keys_tenant ON tenant_keys
    USING (tenant = current_setting('memex.tenant', true)
           OR current_setting('memex.all_tenants', true) = 'on');

-- Ciphertext does not compress: stored out of line without trying.
ALTER TABLE memories ADD COLUMN sealed_content bytea, ADD COLUMN sealed_metadata bytea;
ALTER TABLE memories ALTER COLUMN sealed_content SET STORAGE EXTERNAL,
    ALTER COLUMN sealed_metadata SET STORAGE EXTERNAL;
ALTER TABLE memory_history ADD COLUMN sealed_content bytea, ADD COLUMN sealed_metadata bytea;
ALTER TABLE memory_history ALTER COLUMN sealed_content SET STORAGE EXTERNAL,
    ALTER COLUMN sealed_metadata SET STORAGE EXTERNAL;
ALTER TABLE context_sessions ADD COLUMN sealed_text bytea;
ALTER TABLE context_sessions ALTER COLUMN sealed_text SET STORAGE EXTERNAL;
