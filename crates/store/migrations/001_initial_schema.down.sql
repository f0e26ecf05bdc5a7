-- Undoes 001: drops the session registry and its indexes (the data goes with them).
DROP INDEX idx_sandbox_sessions_expires_at;
DROP INDEX idx_sandbox_sessions_status;
DROP INDEX idx_sandbox_sessions_project_id;
DROP INDEX idx_sandbox_sessions_user_id;
DROP TABLE sandbox_sessions;
