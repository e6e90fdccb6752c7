-- The console's live activity, announced once per statement instead of once per row: the send
-- path inserts and updates messages in batches, and one trigger call per batch costs a fraction of
-- one per message. What is announced is unchanged: each practice whose messages were added, or
-- whose messages' status or sending account changed, once; other updates (the retention job
-- clearing bodies) announce nothing. Postgres allows no column list on a trigger with transition
-- tables, hence the comparison of old and new rows.
drop trigger outreach_logs_activity_inserted on outreach_logs;
drop trigger outreach_logs_activity_updated on outreach_logs;
drop function notify_outreach_activity();

create function notify_outreach_inserted() returns trigger
language plpgsql as $$
begin
    perform pg_notify('outreach_activity', practice_id::text)
    from (select distinct practice_id from inserted_rows) as changed;
    return null;
end;
$$;

create function notify_outreach_updated() returns trigger
language plpgsql as $$
begin
    perform pg_notify('outreach_activity', practice_id::text)
    from (select distinct new_rows.practice_id
          from new_rows join old_rows using (id)
          where old_rows.status is distinct from new_rows.status
             or old_rows.messaging_provider is distinct from new_rows.messaging_provider) as changed;
    return null;
end;
$$;

create trigger outreach_logs_activity_inserted
    after insert on outreach_logs
    referencing new table as inserted_rows
    for each statement execute function notify_outreach_inserted();

create trigger outreach_logs_activity_updated
    after update on outreach_logs
    referencing old table as old_rows new table as new_rows
    for each statement execute function notify_outreach_updated();
