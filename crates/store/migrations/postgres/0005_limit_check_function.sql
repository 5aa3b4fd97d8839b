-- One call's rate-limit decision in one statement (issue 12's speed target).
--
-- PgLimits used to decide in a five-round-trip transaction (BEGIN, create missing buckets, lock
-- them, update, COMMIT) while holding the row lock of the agent's global bucket, so every call
-- of every replica queued on that row for the whole exchange. This function does the same work
-- inside the server, with the same GCRA arithmetic as before and as the Redis script:
--   with emission interval t and tolerance tau = t * (burst - 1), a call at now passes when
--   now >= tat - tau and moves tat to max(tat, now) + t (saturating at the BIGINT maximum);
--   a refused call changes nothing and must wait tat - tau - now.
-- Checks are taken in order: each passing check counts one call, the first refusing one stops
-- (the ones before it keep their count, as the in-process limiter does). Missing buckets are
-- created, and all of the call's buckets are locked in key order first, so concurrent calls on
-- the same buckets take turns and cannot deadlock.
--
-- The call's transaction commits without waiting for the WAL flush (synchronous_commit off for
-- this transaction only): the buckets' row locks are released at commit, and waiting for the
-- disk there made every call queue behind the previous one's flush. A PostgreSQL crash can
-- therefore forget the bucket updates of its last fraction of a second (a few calls too many
-- let through afterwards), as a restarted Redis forgets all of them.
--
-- Returns {-1, 0} when every check passed, else {index of the refusing check (0-based),
-- milliseconds until it would pass}.
CREATE FUNCTION rate_limit_check(keys TEXT[], ts BIGINT[], taus BIGINT[], now_ms BIGINT)
RETURNS BIGINT[]
LANGUAGE plpgsql
AS $$
DECLARE
    tat BIGINT;
    base BIGINT;
BEGIN
    IF cardinality(keys) IS DISTINCT FROM cardinality(ts)
       OR cardinality(keys) IS DISTINCT FROM cardinality(taus) THEN
        RAISE EXCEPTION 'rate_limit_check: arrays of different lengths';
    END IF;
    PERFORM set_config('synchronous_commit', 'off', true);
    INSERT INTO rate_limits (key, tat_ms)
        SELECT DISTINCT k, 0::BIGINT FROM unnest(keys) AS k ORDER BY k
        ON CONFLICT (key) DO NOTHING;
    PERFORM 1 FROM rate_limits WHERE key = ANY(keys) ORDER BY key FOR UPDATE;
    FOR i IN 1 .. coalesce(cardinality(keys), 0) LOOP
        SELECT tat_ms INTO tat FROM rate_limits WHERE key = keys[i];
        -- A concurrent purge may have deleted a refilled bucket between its creation above and
        -- the lock: a missing bucket means tat 0, and the upsert below stores it again.
        IF NOT FOUND THEN
            tat := 0;
        END IF;
        IF now_ms < tat - taus[i] THEN
            RETURN ARRAY[(i - 1)::BIGINT, tat - taus[i] - now_ms];
        END IF;
        base := GREATEST(tat, now_ms);
        INSERT INTO rate_limits (key, tat_ms)
             VALUES (keys[i], CASE WHEN base > 9223372036854775807 - ts[i]
                                   THEN 9223372036854775807 ELSE base + ts[i] END)
             ON CONFLICT (key) DO UPDATE SET tat_ms = EXCLUDED.tat_ms;
    END LOOP;
    RETURN ARRAY[-1::BIGINT, 0::BIGINT];
END;
$$;
