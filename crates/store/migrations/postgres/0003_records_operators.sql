-- Conversation records, subjects' wrapped data keys and operators (the PostgreSQL twin of the
-- SQLite records database). Text keys use the "C" collation so that listings, key rotation and
-- operator listings order by bytes, exactly as SQLite does, whatever the database's locale.
CREATE TABLE records (
    id         TEXT COLLATE "C" PRIMARY KEY,
    agent      TEXT   NOT NULL,
    call_id    TEXT COLLATE "C" NOT NULL,
    subject    TEXT COLLATE "C" NOT NULL,
    kind       TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    size       BIGINT NOT NULL,
    key_id     TEXT   NOT NULL,
    body       BYTEA  NOT NULL
);
CREATE INDEX records_subject ON records (subject);
CREATE INDEX records_call_id ON records (call_id);
CREATE INDEX records_expires_at ON records (expires_at);
CREATE INDEX records_created ON records (created_at, id);

CREATE TABLE subject_keys (
    subject TEXT COLLATE "C" PRIMARY KEY,
    kek_id  TEXT  NOT NULL,
    blob    BYTEA NOT NULL
);

CREATE TABLE operators (
    name          TEXT COLLATE "C" PRIMARY KEY,
    role          TEXT   NOT NULL,
    created_at    BIGINT NOT NULL,
    password_hash TEXT,
    token_hash    TEXT   UNIQUE
);
CREATE INDEX operators_role ON operators (role);
