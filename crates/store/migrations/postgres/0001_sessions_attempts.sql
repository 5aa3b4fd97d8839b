-- Call sessions and verification attempt counters (the PostgreSQL twin of the SQLite schema).
CREATE TABLE session_entries (
    scope      TEXT   NOT NULL,
    key        TEXT   NOT NULL,
    value      TEXT   NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX session_entries_expires_at ON session_entries (expires_at);
CREATE INDEX session_entries_scope_prefix ON session_entries (scope text_pattern_ops);

CREATE TABLE verification_attempts (
    subject         TEXT   PRIMARY KEY,
    failures        BIGINT NOT NULL,
    locked_until    BIGINT,
    lockouts        BIGINT NOT NULL,
    window_failures BIGINT NOT NULL,
    window_until    BIGINT NOT NULL
);
