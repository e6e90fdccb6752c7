-- Every instance caches each user's current role and existence for a few seconds, so that a
-- demoted or deleted user's token stops working at once on every instance: any change to a row of
-- `users` (the API, the CLI, an operator's SQL) notifies the user's id on commit.
create function notify_user_changed() returns trigger
language plpgsql as $$
begin
    if tg_op = 'UPDATE' and old is not distinct from new then
        return null;
    end if;
    perform pg_notify('dentite_users', old.id::text);
    return null;
end;
$$;

create trigger users_notify_changed
    after update or delete on users
    for each row execute function notify_user_changed();
