-- Webhook events from SendGrid and Twilio, appended once each (event_key is unique), with the
-- outreach log they concern when it could be found.

create table provider_events (
    id bigint generated always as identity primary key,
    event_key text not null,
    provider text not null check (provider in ('sendgrid', 'twilio')),
    practice_id uuid references practices (id) on delete cascade,
    outreach_log_id uuid references outreach_logs (id) on delete set null,
    event_type text not null,
    provider_message_id text,
    payload jsonb not null,
    occurred_at timestamptz,
    received_at timestamptz not null default now(),
    constraint provider_events_event_key unique (event_key)
);
create index provider_events_log on provider_events (outreach_log_id, id) where outreach_log_id is not null;
