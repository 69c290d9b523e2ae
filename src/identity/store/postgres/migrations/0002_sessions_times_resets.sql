-- Sessions record when they started and when they were last rotated.
-- Deleting a user leaves its sessions behind, revoked, until the purge
-- deletes them, so their access tokens stay refused after any restart:
-- hence no cascade from users any more.
ALTER TABLE gateway_sessions
    ADD COLUMN created_at bigint NOT NULL DEFAULT 0,
    ADD COLUMN refreshed_at bigint,
    DROP CONSTRAINT gateway_sessions_user_id_fkey;

-- At most one outstanding password-reset token per user, kept as its
-- SHA-256 (hex) only.
ALTER TABLE gateway_users
    ADD COLUMN reset_hash text,
    ADD COLUMN reset_expires_at bigint;
CREATE UNIQUE INDEX gateway_users_reset ON gateway_users (reset_hash);

-- Paging in creation order.
CREATE INDEX gateway_users_created ON gateway_users (created_at, id);
