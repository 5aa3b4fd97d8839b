-- Shared GCRA rate-limit buckets and the emergency switch (issue 12, task C).
--
-- rate_limits: one row per bucket; tat_ms is governor's "theoretical arrival time" in unix
-- milliseconds. A row whose tat_ms is at or before now has fully refilled and means exactly
-- what a missing row means, so PgLimits::purge deletes those (bounded table size).
CREATE TABLE rate_limits (
    key    TEXT   PRIMARY KEY,
    tat_ms BIGINT NOT NULL
);
CREATE INDEX rate_limits_tat_ms ON rate_limits (tat_ms);

-- emergency_state: at most one row (id = 1). tools NULL blocks every sensitive tool; an array
-- blocks exactly those tools.
CREATE TABLE emergency_state (
    id      SMALLINT PRIMARY KEY CHECK (id = 1),
    enabled BOOLEAN  NOT NULL,
    tools   TEXT[]
);
