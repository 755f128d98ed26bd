-- memex PostgreSQL schema 7: each tenant's quotas, when they were set (a tenant without
-- a row has the defaults), as one JSON object written and read whole by the directory.
-- Like the rest of the directory, visible only to transactions that set
-- memex.directory = 'on'.
CREATE TABLE tenant_quotas (
    tenant text COLLATE "C" PRIMARY KEY REFERENCES tenants (name),
    quotas jsonb NOT NULL
);

ALTER TABLE tenant_quotas ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_quotas FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_quotas_directory ON tenant_quotas
    USING (current_setting('memex.directory', true) = 'on');
