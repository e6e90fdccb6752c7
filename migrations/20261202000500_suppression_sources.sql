-- Where each suppression came from, for the practice's suppression list. Rows written before this
-- column existed have no recorded source and keep null.
alter table suppressions add column source text
    check (source in ('provider_event', 'provider_refusal', 'sms_keyword', 'sms_reply', 'unsubscribe_link'));

-- The practice's list, newest first.
create index suppressions_practice_newest on suppressions (practice_id, created_at desc, id desc);
