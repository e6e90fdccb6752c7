-- The login throttle, reworked: one counter row per subject ("pair:<email>|<address>" or
-- "ip:<address>"), updated by a single upsert that reserves the attempt *before* the password is
-- checked. The row lock serialises concurrent attempts, so a burst of parallel logins cannot all
-- pass a count read before any of them was recorded (the row-per-failure table allowed that).
--
-- attempts    attempts counted since the subject was last forgiven
-- not_before  the next attempt is refused until then (the back-off grows with attempts)
-- last_attempt_at  a subject quiet for a day starts over
create table login_throttle (
    subject text primary key,
    attempts integer not null check (attempts >= 0),
    not_before timestamptz not null,
    last_attempt_at timestamptz not null
);
create index login_throttle_last_attempt on login_throttle (last_attempt_at);

-- Counted failures expire within fifteen minutes; nothing in the old table needs carrying over.
drop table login_failures;
