-- 0010: signing key rotation (PostgreSQL). A key is published from
-- `created_at`, signs from `activates_at` until a newer key activates
-- (`retired_at`), stays published until `publish_until` and is then removed
-- from the JWKS (`removed_at`, its sealed private half erased; the row is
-- kept for audit). Keys made before rotation existed signed from their
-- creation.
ALTER TABLE signing_keys ADD COLUMN activates_at BIGINT NOT NULL DEFAULT 0;
UPDATE signing_keys SET activates_at = created_at;
ALTER TABLE signing_keys ADD COLUMN removed_at BIGINT;
