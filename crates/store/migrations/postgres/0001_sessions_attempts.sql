-- Call sessions and verification attempt counters (the PostgreSQL twin of the SQLite schema).
--
-- Scopes, keys and subjects are opaque caller strings stored as their UTF-8 bytes (BYTEA):
-- PostgreSQL TEXT cannot hold a NUL character, which the other backends accept, and byte
-- order is code-point order, so prefix ranges on the primary key work as they do in SQLite.
-- Values are JSON text (serde_json escapes NUL, so TEXT is safe for them).
CREATE TABLE session_entries (
    scope      BYTEA  NOT NULL,
    key        BYTEA  NOT NULL,
    value      TEXT   NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX session_entries_expires_at ON session_entries (expires_at);

CREATE TABLE verification_attempts (
    subject         BYTEA  PRIMARY KEY,
    failures        BIGINT NOT NULL,
    locked_until    BIGINT,
    lockouts        BIGINT NOT NULL,
    window_failures BIGINT NOT NULL,
    window_until    BIGINT NOT NULL
);
CREATE INDEX verification_attempts_window_until ON verification_attempts (window_until);
