-- memex PostgreSQL schema 2: threads found by an index that row-level security lets in.
--
-- A thread is the memories sharing a whole scope (tenant, project, user, agent,
-- session) and kind, in creation order. Under row-level security the planner uses a
-- query's condition in an index scan only if its functions are leakproof; coalesce()
-- over the scope columns is not, so the thread index of schema 1 was never used and
-- each seed's neighbours were found by filtering the tenant's rows in creation order.
-- `thread` names a memory's thread in one column (each part ends with a unit separator,
-- NULL spelled apart from ''), compared with text equality, which is leakproof: each
-- side of a seed is then one short range scan of memories_thread.
DROP INDEX memories_thread;
ALTER TABLE memories ADD COLUMN thread text GENERATED ALWAYS AS (
    coalesce('=' || project, '-') || E'\x1f' || coalesce('=' || user_id, '-') || E'\x1f'
    || coalesce('=' || agent, '-') || E'\x1f' || coalesce('=' || session, '-') || E'\x1f'
    || kind
) STORED;
CREATE INDEX memories_thread ON memories (tenant, thread, created_at, seq);
