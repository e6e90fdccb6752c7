-- A SendGrid group unsubscribe is lifted by that group's resubscribe and by nothing else, so it
-- is kept as an entry of its own beside the address's other entries (a bounce, a spam report, a
-- global unsubscribe), which a resubscribe must not lift.
alter table suppressions add column unsubscribe_group bigint;

drop index suppressions_scope_address;
create unique index suppressions_scope_address
    on suppressions (practice_id, channel, address, unsubscribe_group) nulls not distinct;
