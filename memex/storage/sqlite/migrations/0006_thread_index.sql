-- memex schema 6: an index on threads (scope and kind, creation order). Recall gives a
-- share of a hit's score to the memories next to it in its thread; with the kind in
-- the index, each side of a hit is a range scan that reads only its thread's rows
-- instead of skipping every memory of other kinds in between.

CREATE INDEX memories_thread ON memories (tenant, project, kind, created_at);
