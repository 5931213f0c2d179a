-- 0011: nothing changes on PostgreSQL. SQLite drops the audit table's unique
-- index on `id` (one writer, one UUIDv7 context: it could never refuse a
-- row). Here several nodes append to one chain, each with ids of its own,
-- and PostgreSQL's B-tree takes inserts at its right edge cheaply (a small
-- WAL record each), so the database keeps enforcing that no two events
-- share an id.
SELECT 1;
