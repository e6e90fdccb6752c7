-- Mailgun, Postmark and Telnyx as the platform's accounts: a log records whichever of them sent,
-- and their webhooks' events are kept in the same ledger as SendGrid's and Twilio's.

alter table outreach_logs drop constraint outreach_logs_messaging_provider_check;
alter table outreach_logs add constraint outreach_logs_messaging_provider_check
    check (messaging_provider in (
        'system_sendgrid', 'custom_sendgrid', 'system_mailgun', 'custom_mailgun',
        'system_postmark', 'custom_postmark', 'system_twilio', 'custom_twilio',
        'system_telnyx', 'custom_telnyx', 'outbox'));

alter table provider_events drop constraint provider_events_provider_check;
alter table provider_events add constraint provider_events_provider_check
    check (provider in ('sendgrid', 'twilio', 'mailgun', 'postmark', 'telnyx'));

-- Mailgun signs a timestamp and a one-time token, not the event: each token is accepted for the
-- one event it first came with. Rows older than MAILGUN_WEBHOOK_MAX_AGE_SECS are deleted as new
-- ones arrive.
create table webhook_tokens (
    vendor text not null check (vendor in ('mailgun')),
    token text not null,
    event_key text not null,
    seen_at timestamptz not null default now(),
    primary key (vendor, token)
);
create index webhook_tokens_by_age on webhook_tokens (vendor, seen_at);
