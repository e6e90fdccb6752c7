-- Outreach counts: per practice, channel and provider, how many messages there are and how many
-- of them are sent, delivered and failed, by the UTC day they were created, kept exact by
-- triggers on `outreach_logs`. The status card, the analytics and the platform usage read these
-- instead of scanning the logs, so they cost the same however long the history.
--
-- Why triggers: every writer of `outreach_logs` (the API, the workers, webhooks, test sends, the
-- sequence scheduler, an operator's SQL, code not written yet) moves the counts in its own
-- transaction, so they are exact at every commit, whichever instance wrote.
--
-- A message counts once, on the day it was created, in the bucket of its current status:
--   total      every message;
--   sent       accepted by a provider: sent, delivered, opened, clicked;
--   delivered  known to have arrived: delivered, opened, clicked;
--   failed     failed, undelivered, bounced, dropped.
-- queued, sending, spam_reported and suppressed count in `total` only. A status change moves the
-- message from its old bucket to its new one (and from its old provider's row to the new one's).
-- Deleting a log (retention) leaves the counts alone: history keeps counting purged messages.
--
-- Shape: running totals. For each key (practice, channel, provider), `outreach_count_totals`
-- holds the all-time counts and the first and last creation day, and `outreach_daily_counts` one
-- row per day from the first to the last, each the counts of messages created up to and
-- including that day. The counts of any window of days are then two rows, whatever its length:
-- the platform usage of 1,000 practices reads about 2 rows per key instead of 30 or 365.
-- Before `first_day` the running total is 0; from `last_day` on it is the all-time total.

create function outreach_outcome(status text) returns text
    language sql immutable strict parallel safe
as $$
    select case
        when status in ('delivered', 'opened', 'clicked') then 'delivered'
        when status = 'sent' then 'sent'
        when status in ('failed', 'undelivered', 'bounced', 'dropped') then 'failed'
        else 'other'
    end
$$;

create table outreach_count_totals (
    practice_id uuid not null references practices (id) on delete cascade,
    message_type text not null,
    -- Null for messages no account has taken: still queued, or suppressed.
    messaging_provider text,
    first_day date,
    last_day date,
    total bigint not null default 0,
    sent bigint not null default 0,
    delivered bigint not null default 0,
    failed bigint not null default 0
);
create unique index outreach_count_totals_key
    on outreach_count_totals (practice_id, message_type, messaging_provider) nulls not distinct;

create table outreach_daily_counts (
    practice_id uuid not null,
    message_type text not null,
    messaging_provider text,
    day date not null,
    total bigint not null,
    sent bigint not null,
    delivered bigint not null,
    failed bigint not null,
    foreign key (practice_id, message_type, messaging_provider)
        references outreach_count_totals (practice_id, message_type, messaging_provider) on delete cascade
) with (fillfactor = 80); -- room for HOT updates: the current day's rows change with every message
create unique index outreach_daily_counts_key
    on outreach_daily_counts (practice_id, message_type, messaging_provider, day) nulls not distinct;
-- The platform usage reads every key's row of one day.
create index outreach_daily_counts_day on outreach_daily_counts (day);

-- Adds one change to a key's counts for messages created on `change_day`. The key's totals row is
-- its lock: whoever holds it may extend and update the key's daily rows, so concurrent writers
-- of one key take turns, and (read committed) each sees the previous one's committed rows.
create function outreach_counts_add(
    key_practice uuid, key_type text, key_provider text, change_day date,
    d_total bigint, d_sent bigint, d_delivered bigint, d_failed bigint
) returns void
    language plpgsql as $$
declare
    head outreach_count_totals;
begin
    insert into outreach_count_totals (practice_id, message_type, messaging_provider)
    values (key_practice, key_type, key_provider)
    on conflict do nothing;
    select * into strict head from outreach_count_totals
    where practice_id = key_practice and message_type = key_type
      and messaging_provider is not distinct from key_provider
    for update;

    if head.first_day is null then
        insert into outreach_daily_counts
        values (key_practice, key_type, key_provider, change_day, 0, 0, 0, 0);
        head.first_day := change_day;
        head.last_day := change_day;
    elsif change_day > head.last_day then
        -- Days without messages carry the running total forward.
        insert into outreach_daily_counts
        select key_practice, key_type, key_provider, day::date,
               head.total, head.sent, head.delivered, head.failed
        from generate_series(head.last_day + 1, change_day, interval '1 day') day;
        head.last_day := change_day;
    elsif change_day < head.first_day then
        insert into outreach_daily_counts
        select key_practice, key_type, key_provider, day::date, 0, 0, 0, 0
        from generate_series(change_day, head.first_day - 1, interval '1 day') day;
        head.first_day := change_day;
    end if;

    update outreach_daily_counts set
        total = total + d_total, sent = sent + d_sent,
        delivered = delivered + d_delivered, failed = failed + d_failed
    where practice_id = key_practice and message_type = key_type
      and messaging_provider is not distinct from key_provider and day >= change_day;
    update outreach_count_totals set
        first_day = head.first_day, last_day = head.last_day,
        total = total + d_total, sent = sent + d_sent,
        delivered = delivered + d_delivered, failed = failed + d_failed
    where practice_id = key_practice and message_type = key_type
      and messaging_provider is not distinct from key_provider;
end;
$$;

-- One statement's changes, summed per key and day and applied in key order: two statements
-- touching the same keys lock them in the same order, so they cannot deadlock.
create function outreach_counts_apply() returns trigger
    language plpgsql as $$
declare
    change record;
begin
    for change in
        select practice_id, message_type, messaging_provider, day,
               sum(total) as total, sum(sent) as sent, sum(delivered) as delivered, sum(failed) as failed
        from (
            select practice_id, message_type, messaging_provider,
                   (created_at at time zone 'UTC')::date as day,
                   1 as total,
                   (outreach_outcome(status) in ('sent', 'delivered'))::int as sent,
                   (outreach_outcome(status) = 'delivered')::int as delivered,
                   (outreach_outcome(status) = 'failed')::int as failed
            from new_logs
            union all
            select practice_id, message_type, messaging_provider,
                   (created_at at time zone 'UTC')::date,
                   -1,
                   -(outreach_outcome(status) in ('sent', 'delivered'))::int,
                   -(outreach_outcome(status) = 'delivered')::int,
                   -(outreach_outcome(status) = 'failed')::int
            from old_logs
        ) changes
        group by 1, 2, 3, 4
        having sum(total) <> 0 or sum(sent) <> 0 or sum(delivered) <> 0 or sum(failed) <> 0
        order by 1, 2, 3 nulls first, 4
    loop
        perform outreach_counts_add(change.practice_id, change.message_type, change.messaging_provider,
                                    change.day, change.total, change.sent, change.delivered, change.failed);
    end loop;
    return null;
end;
$$;

-- An insert has no old rows; the function reads an empty table of them.
create function outreach_counts_apply_insert() returns trigger
    language plpgsql as $$
declare
    change record;
begin
    for change in
        select practice_id, message_type, messaging_provider,
               (created_at at time zone 'UTC')::date as day,
               count(*) as total,
               count(*) filter (where outreach_outcome(status) in ('sent', 'delivered')) as sent,
               count(*) filter (where outreach_outcome(status) = 'delivered') as delivered,
               count(*) filter (where outreach_outcome(status) = 'failed') as failed
        from new_logs
        group by 1, 2, 3, 4
        order by 1, 2, 3 nulls first, 4
    loop
        perform outreach_counts_add(change.practice_id, change.message_type, change.messaging_provider,
                                    change.day, change.total, change.sent, change.delivered, change.failed);
    end loop;
    return null;
end;
$$;

-- No writer may slip between the backfill's snapshot and the triggers: writers wait for this
-- migration to commit (it takes about as long as one grouped scan of the logs).
lock table outreach_logs in share row exclusive mode;

create temporary table outreach_counts_backfill on commit drop as
select practice_id, message_type, messaging_provider,
       (created_at at time zone 'UTC')::date as day,
       count(*) as total,
       count(*) filter (where outreach_outcome(status) in ('sent', 'delivered')) as sent,
       count(*) filter (where outreach_outcome(status) = 'delivered') as delivered,
       count(*) filter (where outreach_outcome(status) = 'failed') as failed
from outreach_logs
group by 1, 2, 3, 4;

insert into outreach_count_totals
select practice_id, message_type, messaging_provider, min(day), max(day),
       sum(total), sum(sent), sum(delivered), sum(failed)
from outreach_counts_backfill
group by 1, 2, 3;

insert into outreach_daily_counts
select t.practice_id, t.message_type, t.messaging_provider, day.day::date,
       sum(coalesce(b.total, 0)) over running, sum(coalesce(b.sent, 0)) over running,
       sum(coalesce(b.delivered, 0)) over running, sum(coalesce(b.failed, 0)) over running
from outreach_count_totals t
cross join lateral generate_series(t.first_day, t.last_day, interval '1 day') day
left join outreach_counts_backfill b
    on b.practice_id = t.practice_id and b.message_type = t.message_type
   and b.messaging_provider is not distinct from t.messaging_provider and b.day = day.day::date
window running as (partition by t.practice_id, t.message_type, t.messaging_provider order by day.day)
-- One day's rows together, as they are when written day by day: the platform usage reads one day.
order by day.day;

create trigger outreach_logs_count_inserts
    after insert on outreach_logs
    referencing new table as new_logs
    for each statement execute function outreach_counts_apply_insert();

create trigger outreach_logs_count_updates
    after update on outreach_logs
    referencing old table as old_logs new table as new_logs
    for each statement execute function outreach_counts_apply();
