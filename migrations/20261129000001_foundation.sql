-- Foundation: practices with their messaging configuration, logins, outreach logs and the audit log.
--
-- Secrets (sendgrid_api_key, twilio_account_sid, twilio_auth_token) hold encryption envelopes made
-- by src/crypto, never plaintext: "v1:<key id>:<base64(nonce || ciphertext || tag)>", bound to the
-- practice id and the column name.

create table practices (
    id uuid primary key,
    name text not null check (length(btrim(name)) between 1 and 200),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),

    email_provider text not null default 'system_sendgrid'
        check (email_provider in ('system_sendgrid', 'custom_sendgrid')),
    sendgrid_api_key text,
    sendgrid_from_email text,
    sendgrid_from_name text,
    sendgrid_domain text,
    sendgrid_domain_id bigint,
    email_domain_verified boolean not null default false,
    email_domain_last_checked_at timestamptz,
    sendgrid_webhook_verify_key text,
    email_fallback_enabled boolean not null default true,
    email_last_tested_at timestamptz,

    sms_provider text not null default 'system_twilio'
        check (sms_provider in ('system_twilio', 'custom_twilio')),
    twilio_account_sid text,
    twilio_auth_token text,
    twilio_phone_number text,
    sms_fallback_enabled boolean not null default true,
    sms_last_tested_at timestamptz,

    -- Bumped by every settings change; cached provider clients remember the version they were built from.
    settings_version bigint not null default 1
);

create table users (
    id uuid primary key,
    email text not null,
    password_hash text not null,
    role text not null check (role in ('owner', 'admin', 'staff', 'platform_admin')),
    practice_id uuid references practices (id) on delete cascade,
    created_at timestamptz not null default now(),
    -- Operators belong to no practice; everybody else belongs to exactly one.
    constraint users_practice_matches_role check ((role = 'platform_admin') = (practice_id is null))
);
create unique index users_email_key on users (lower(email));

-- One row per failed login, per subject ("email:<address>" or "ip:<address>"); the throttle counts
-- recent rows, so every instance of the service sees the same count.
create table login_failures (
    subject text not null,
    failed_at timestamptz not null default now()
);
create index login_failures_subject_time on login_failures (subject, failed_at);

create table patients (
    id uuid primary key,
    practice_id uuid not null references practices (id) on delete cascade,
    first_name text not null,
    last_name text not null,
    email text,
    phone text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index patients_practice_name on patients (practice_id, lower(last_name), lower(first_name), id);

create table outreach_logs (
    id uuid primary key,
    practice_id uuid not null references practices (id) on delete cascade,
    -- Deleting a patient keeps the history: the recipient address is kept on the log itself.
    patient_id uuid references patients (id) on delete set null,
    message_type text not null check (message_type in ('email', 'sms')),
    messaging_provider text
        check (messaging_provider in ('system_sendgrid', 'custom_sendgrid', 'system_twilio', 'custom_twilio', 'outbox')),
    status text not null default 'queued'
        check (status in ('queued', 'sending', 'sent', 'delivered', 'opened', 'clicked',
                          'failed', 'undelivered', 'bounced', 'dropped', 'spam_reported', 'suppressed')),
    recipient text not null,
    subject text,
    body text not null,
    provider_message_id text,
    fallback_reason text,
    error text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index outreach_logs_practice_time on outreach_logs (practice_id, created_at desc, id desc);
create index outreach_logs_time on outreach_logs (created_at);
create index outreach_logs_provider_message on outreach_logs (provider_message_id)
    where provider_message_id is not null;

create table audit_log (
    id bigint generated always as identity primary key,
    practice_id uuid not null references practices (id) on delete cascade,
    user_id uuid references users (id) on delete set null,
    action text not null,
    -- Names of the settings that changed, never their values.
    changed_fields text[] not null default '{}',
    created_at timestamptz not null default now()
);
create index audit_log_practice_time on audit_log (practice_id, id desc);
