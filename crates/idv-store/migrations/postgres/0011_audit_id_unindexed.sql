-- 0011: nothing changes on PostgreSQL. SQLite drops the audit table's unique
-- index on `id` (one writer, one UUIDv7 context: it could never refuse a
-- row). Here several nodes append to one chain, each with ids of its own,
-- and a B-tree that grows at its right edge costs one page per insert, so
-- the database keeps enforcing that no two events share an id.
SELECT 1;
