-- Test sends per practice and clock hour. One row per practice and hour, counted up by an
-- upsert that refuses past the quota, so concurrent requests on any instance cannot overshoot.

create table test_send_quota (
    practice_id uuid not null references practices (id) on delete cascade,
    window_start timestamptz not null,
    used integer not null check (used > 0),
    primary key (practice_id, window_start)
);
