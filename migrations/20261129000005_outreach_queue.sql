-- Outreach: the durable send queue, idempotency keys, provider rate limits, sequences.

-- One row per message to hand to a provider. A claim is a lease: a worker that dies leaves a
-- row whose lease runs out, and another worker takes it up (at-least-once).
create table send_jobs (
    id bigint generated always as identity primary key,
    outreach_log_id uuid not null unique references outreach_logs (id) on delete cascade,
    practice_id uuid not null references practices (id) on delete cascade,
    run_at timestamptz not null default now(),
    attempts int not null default 0,
    leased_until timestamptz,
    last_error text,
    created_at timestamptz not null default now()
);
create index send_jobs_due on send_jobs (practice_id, run_at, id);

-- Round-robin fairness: the practice served longest ago goes first.
create table send_fairness (
    practice_id uuid primary key references practices (id) on delete cascade,
    last_served_at timestamptz not null default '-infinity'
);

-- Token buckets per provider account, shared by every worker of every instance.
create table rate_limit_buckets (
    account_key text primary key,
    tokens float8 not null,
    refilled_at timestamptz not null default now()
);

create table idempotency_keys (
    practice_id uuid not null references practices (id) on delete cascade,
    key text not null,
    request_hash text not null,
    response_status int,
    response_body jsonb,
    created_at timestamptz not null default now(),
    primary key (practice_id, key)
);

create table sequences (
    id uuid primary key,
    practice_id uuid not null references practices (id) on delete cascade,
    name text not null,
    status text not null default 'active' check (status in ('active', 'paused')),
    -- Ordered steps: [{channel, delayMinutes, subject?, body}].
    steps jsonb not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index sequences_practice on sequences (practice_id, created_at desc);

create table sequence_enrollments (
    id uuid primary key,
    sequence_id uuid not null references sequences (id) on delete cascade,
    practice_id uuid not null references practices (id) on delete cascade,
    patient_id uuid not null references patients (id) on delete cascade,
    -- Index of the next step to enqueue; equal to the step count when finished.
    next_step int not null default 0,
    next_run_at timestamptz,
    status text not null default 'active' check (status in ('active', 'completed', 'stopped')),
    stop_reason text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint sequence_enrollments_once unique (sequence_id, patient_id)
);
create index sequence_enrollments_due on sequence_enrollments (next_run_at) where status = 'active';

alter table outreach_logs
    add column sequence_enrollment_id uuid references sequence_enrollments (id) on delete set null,
    add column sequence_step int;
