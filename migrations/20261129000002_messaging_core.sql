-- Messaging core: the outbox provider and the suppression ledger.

-- Messages the outbox "sent": the provider used when a system account is not configured.
create table outbox_messages (
    id uuid primary key,
    practice_id uuid not null references practices (id) on delete cascade,
    outreach_log_id uuid references outreach_logs (id) on delete set null,
    channel text not null check (channel in ('email', 'sms')),
    recipient text not null,
    sender text not null,
    subject text,
    body text not null,
    headers jsonb not null default '{}',
    created_at timestamptz not null default now()
);
create index outbox_messages_practice_time on outbox_messages (practice_id, created_at desc);

-- Addresses and numbers that must not be messaged. practice_id null = an opt-out received on the
-- shared system number, binding every practice that sends from it.
create table suppressions (
    id bigint generated always as identity primary key,
    practice_id uuid references practices (id) on delete cascade,
    channel text not null check (channel in ('email', 'sms')),
    address text not null,
    reason text not null check (reason in ('unsubscribed', 'bounced', 'spam_reported', 'invalid', 'opted_out')),
    created_at timestamptz not null default now()
);
create unique index suppressions_scope_address on suppressions (practice_id, channel, address) nulls not distinct;
create index suppressions_address on suppressions (channel, address);
