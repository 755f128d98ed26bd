-- memex schema 10: no change to the tables (the number is kept for the audit log's
-- schema, which takes its place).
SELECT 1;
