-- A practice's own Mailgun domain, Postmark server and Telnyx number.
--
-- A practice's own account of a vendor without columns on `practices` lives in
-- `practice_accounts`: one row per practice and vendor, its non-secret settings as JSON and each
-- secret as an encryption envelope bound to the practice and the field (the key of `secrets`).
-- The per-channel state the monitoring queries read (`email_provider`, `sms_provider`,
-- `email_domain_verified`, `email_last_tested_at`, `sms_last_tested_at`) stays on `practices`.

alter table practices drop constraint practices_email_provider_check;
alter table practices add constraint practices_email_provider_check
    check (email_provider in ('system_sendgrid', 'custom_sendgrid', 'custom_mailgun', 'custom_postmark'));

alter table practices drop constraint practices_sms_provider_check;
alter table practices add constraint practices_sms_provider_check
    check (sms_provider in ('system_twilio', 'custom_twilio', 'custom_telnyx'));

create table practice_accounts (
    practice_id uuid not null references practices (id) on delete cascade,
    vendor text not null check (vendor in ('mailgun', 'postmark', 'telnyx')),
    settings jsonb not null default '{}',
    -- field name -> encryption envelope
    secrets jsonb not null default '{}',
    -- When a test send through the account was first accepted since its credentials or sender
    -- last changed: what confirms a vendor whose credential check cannot prove the sender
    -- (Postmark's server token says nothing about the From address).
    sending_confirmed_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (practice_id, vendor)
);
