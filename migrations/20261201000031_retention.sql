-- Retention: message bodies and subjects are set to null after RETENTION_BODY_DAYS (the log is
-- kept, so its status, provider and counts stay), and old rows are deleted in batches by age.

alter table outreach_logs alter column body drop not null;

-- The logs whose body is still kept, oldest first: each purge batch starts where the last one
-- ended instead of stepping over every purged row.
create index outreach_logs_body_kept on outreach_logs (created_at) where body is not null;
create index provider_events_received on provider_events (received_at);
create index outbox_messages_time on outbox_messages (created_at);
-- Deleting a log sets its outbox messages' reference to null; this finds them.
create index outbox_messages_log on outbox_messages (outreach_log_id) where outreach_log_id is not null;
create index idempotency_keys_time on idempotency_keys (created_at);
