-- The consent ledger: append-only, one row per grant or revocation, per patient, channel and category.
create table consents (
    id bigint generated always as identity primary key,
    practice_id uuid not null references practices (id) on delete cascade,
    patient_id uuid not null references patients (id) on delete cascade,
    channel text not null check (channel in ('email', 'sms')),
    category text not null check (category in ('care', 'marketing')),
    granted boolean not null,
    source text not null
        check (source in ('web_form', 'paper_form', 'verbal', 'sms_keyword', 'email_link', 'import', 'api')),
    evidence text,
    recorded_by uuid references users (id) on delete set null,
    recorded_at timestamptz not null default now()
);
create index consents_patient on consents (patient_id, id desc);
