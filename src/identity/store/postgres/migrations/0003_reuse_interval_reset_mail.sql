-- The refresh token the last rotation replaced: presented again within
-- refresh_token.reuse_interval it gets the current pair, not a revocation.
ALTER TABLE gateway_sessions ADD COLUMN previous_jti text;

-- When a reset token was last made for the webhook to deliver
-- (password_reset.resend_interval counts from it).
ALTER TABLE gateway_users ADD COLUMN reset_sent_at bigint;
