-- Recipient-local sending windows: a patient's own time zone (the practice's when null), and why
-- a queued message waits and until when.
alter table patients add column timezone text;

alter table outreach_logs
    add column scheduled_for timestamptz,
    add column defer_reason text check (defer_reason in ('quiet_hours'));
