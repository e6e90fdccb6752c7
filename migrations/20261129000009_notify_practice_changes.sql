-- Every instance caches each practice's row and the clients built from it. Any change to the row,
-- whoever writes it (the settings API, the background domain re-check, a test send, `dentite keys
-- rotate`, an operator's SQL), must reach every instance, so the database sends the notification
-- rather than each writer remembering to. pg_notify is delivered when the transaction commits,
-- and identical notifications in one transaction are delivered once, so a change written in
-- several statements still costs one message.
create function notify_practice_changed() returns trigger
language plpgsql as $$
begin
    if tg_op = 'UPDATE' and old is not distinct from new then
        return null;
    end if;
    perform pg_notify('dentite_practice_settings', old.id::text);
    return null;
end;
$$;

create trigger practices_notify_changed
    after update or delete on practices
    for each row execute function notify_practice_changed();
