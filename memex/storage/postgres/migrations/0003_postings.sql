-- memex PostgreSQL schema 3: the lexical leg reads postings through an index that
-- row-level security lets in.
--
-- Under row-level security the planner puts a condition into an index scan only if its
-- functions are leakproof. `@@` (ts_match_vq) is not, so the GIN index on the tsvector
-- column was never used by the memex role: the lexical leg read every row of the tenant.
-- Postings are found with text equality (`lexeme = ANY(...)`), which is leakproof.
--
-- memory_terms: one row per lexeme of a memory's content (to_tsvector with memex_english,
-- as the tsvector column had), with how often it occurs (tf) and the memory's length in
-- lexeme occurrences, so BM25 is computed from the postings alone. A lexeme's document
-- frequency is the number of its postings in the tenant.
-- memory_term_totals: per tenant and project ('' for none), how many memories and how
-- many lexeme occurrences; their sums over the tenant are BM25's N and average length.
-- Both are written by the store in the transaction of each write (storage/postgres/
-- postings.py), never by a trigger.
CREATE TABLE memory_terms (
    tenant text    NOT NULL,
    lexeme text    NOT NULL,
    seq    bigint  NOT NULL,
    tf     integer NOT NULL,
    length integer NOT NULL,
    PRIMARY KEY (tenant, lexeme, seq) INCLUDE (tf, length)
);
-- A memory's postings, for updates and purges (whatever the analysis makes today).
CREATE INDEX memory_terms_seq ON memory_terms (tenant, seq);

CREATE TABLE memory_term_totals (
    tenant    text   NOT NULL,
    project   text   NOT NULL,
    documents bigint NOT NULL,
    length    bigint NOT NULL,
    PRIMARY KEY (tenant, project)
);

ALTER TABLE memory_terms ENABLE ROW LEVEL SECURITY;
ALTER TABLE memory_terms FORCE ROW LEVEL SECURITY;
CREATE POLICY memory_terms_tenant ON memory_terms
    USING (tenant = current_setting('memex.tenant', true)
           OR current_setting('memex.all_tenants', true) = 'on');

ALTER TABLE memory_term_totals ENABLE ROW LEVEL SECURITY;
ALTER TABLE memory_term_totals FORCE ROW LEVEL SECURITY;
CREATE POLICY memory_term_totals_tenant ON memory_term_totals
    USING (tenant = current_setting('memex.tenant', true)
           OR current_setting('memex.all_tenants', true) = 'on');

INSERT INTO memory_terms (tenant, lexeme, seq, tf, length)
SELECT m.tenant, l.lexeme, m.seq, cardinality(l.positions),
       sum(cardinality(l.positions)) OVER (PARTITION BY m.tenant, m.seq)
FROM memories m CROSS JOIN LATERAL unnest(m.lexemes) l;

INSERT INTO memory_term_totals (tenant, project, documents, length)
SELECT m.tenant, coalesce(m.project, ''), count(*),
       coalesce(sum((SELECT sum(cardinality(l.positions)) FROM unnest(m.lexemes) l)), 0)
FROM memories m GROUP BY 1, 2;

DROP INDEX memories_lexemes;
ALTER TABLE memories DROP COLUMN lexemes;
