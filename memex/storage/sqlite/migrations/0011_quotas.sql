-- memex schema 11: each tenant's quotas, when they were set (a tenant without a row
-- has the defaults). The limits are one JSON object, {"memories": {"hard": 10000,
-- "soft": 8000}, ...}, written and read whole by the directory.

CREATE TABLE tenant_quotas (
    tenant TEXT NOT NULL PRIMARY KEY REFERENCES tenants (name),
    quotas TEXT NOT NULL
) WITHOUT ROWID;
