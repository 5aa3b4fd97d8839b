-- The audit trail shared by every replica (the PostgreSQL twin of the SQLite audit database).
-- `event` holds exactly the canonical bytes that are hashed (`canonical_event(seq, event)`), so a
-- record can be re-hashed with standard tools; `time_ms` and `kind` are copies for querying.
-- Appenders serialize on a transaction-scoped advisory lock and chain onto the stored head, so
-- `seq` is contiguous from 1 whichever replica wrote a row.
CREATE TABLE audit_log (
    seq       BIGINT PRIMARY KEY,
    time_ms   BIGINT NOT NULL,
    kind      TEXT   NOT NULL,
    event     TEXT   NOT NULL,
    prev_hash TEXT   NOT NULL,
    hash      TEXT   NOT NULL
);

-- Signed checkpoints (HMAC with the audit key) of the record at `seq`, written in the same
-- transaction as that record, or of the head at a flush.
CREATE TABLE audit_checkpoints (
    seq     BIGINT PRIMARY KEY,
    hash    TEXT   NOT NULL,
    time_ms BIGINT NOT NULL,
    mac     TEXT   NOT NULL
);
