-- memex PostgreSQL schema 4: read statistics in a narrow table of their own.
--
-- Recording that memories were read updated their memories rows, and PostgreSQL writes
-- a whole new row version for every update: the vector (about 1 KB) and the text again,
-- each time a recall touched a memory, leaving the table bloated. memory_reads holds a
-- memory's read count and last read time by its key; reads join it, and recording reads
-- writes only these narrow rows (a memory that was never read has none).
CREATE TABLE memory_reads (
    tenant           text   NOT NULL,
    seq              bigint NOT NULL,
    access_count     bigint NOT NULL,
    last_accessed_at bigint,
    PRIMARY KEY (tenant, seq)
);

ALTER TABLE memory_reads ENABLE ROW LEVEL SECURITY;
ALTER TABLE memory_reads FORCE ROW LEVEL SECURITY;
CREATE POLICY memory_reads_tenant ON memory_reads
    USING (tenant = current_setting('memex.tenant', true)
           OR current_setting('memex.all_tenants', true) = 'on');

INSERT INTO memory_reads (tenant, seq, access_count, last_accessed_at)
SELECT tenant, seq, access_count, last_accessed_at FROM memories
WHERE access_count <> 0 OR last_accessed_at IS NOT NULL;

ALTER TABLE memories DROP COLUMN access_count, DROP COLUMN last_accessed_at;
