-- Recipient search in the console: a prefix of the lower-cased address or number, compared byte
-- by byte (text_pattern_ops), so that a range over it is an index range whatever the collation.
create index outreach_logs_practice_recipient
    on outreach_logs (practice_id, lower(recipient) text_pattern_ops);

-- The console's live activity: a new message, or a change of its status or sending account,
-- tells its practice. Postgres folds identical notifications of one transaction into one, so a
-- batch costs one notification per practice. The payload is only the practice id: listeners
-- read what changed through the API. Other updates (the retention job clearing bodies) notify
-- no one.
create function notify_outreach_activity() returns trigger
language plpgsql as $$
begin
    perform pg_notify('outreach_activity', new.practice_id::text);
    return null;
end;
$$;

create trigger outreach_logs_activity_inserted
    after insert on outreach_logs
    for each row execute function notify_outreach_activity();

create trigger outreach_logs_activity_updated
    after update of status, messaging_provider on outreach_logs
    for each row
    when (old.status is distinct from new.status
          or old.messaging_provider is distinct from new.messaging_provider)
    execute function notify_outreach_activity();
