-- Undoes 002: `stopped` sessions become `paused` (kept, not running), and the table goes back to
-- the CHECK of 001.
CREATE TABLE sandbox_sessions_001 (
    id                TEXT PRIMARY KEY NOT NULL CHECK (id <> ''),
    user_id           TEXT,
    project_id        TEXT,
    provider          TEXT NOT NULL CHECK (provider IN ('dagger', 'docker', 'local')),
    container_id      TEXT,
    status            TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'terminated')),
    host_url          TEXT,
    working_directory TEXT NOT NULL DEFAULT '/app' CHECK (working_directory <> ''),
    metadata          TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
    created_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    last_active_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    expires_at        TEXT NOT NULL,
    ended_reason      TEXT
);
INSERT INTO sandbox_sessions_001
    SELECT id, user_id, project_id, provider, container_id,
           CASE status WHEN 'stopped' THEN 'paused' ELSE status END,
           host_url, working_directory, metadata, created_at, last_active_at, expires_at, ended_reason
    FROM sandbox_sessions;
DROP TABLE sandbox_sessions;
ALTER TABLE sandbox_sessions_001 RENAME TO sandbox_sessions;
CREATE INDEX idx_sandbox_sessions_user_id ON sandbox_sessions (user_id);
CREATE INDEX idx_sandbox_sessions_project_id ON sandbox_sessions (project_id);
CREATE INDEX idx_sandbox_sessions_status ON sandbox_sessions (status);
CREATE INDEX idx_sandbox_sessions_expires_at ON sandbox_sessions (expires_at);
