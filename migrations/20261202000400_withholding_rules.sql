-- The rules that withhold a message, the price a provider reports, and inbound replies.

-- When a provider took the message: the frequency caps count these, in the recipient's local
-- day and the last 7 days. `created_at` will not do: a message queued on Monday evening and
-- held until Tuesday morning by the sending window counts on Tuesday.
alter table outreach_logs
    add column handed_over_at timestamptz,
    -- What the provider charged, as a positive amount in `price_unit` (an ISO 4217 code).
    add column price numeric,
    add column price_unit text;

-- The caps read one patient's care SMS of the last 7 days before every care SMS is queued and
-- again before it is handed over. Partial, so no other message pays for the entry.
create index outreach_logs_care_sms_by_patient
    on outreach_logs (patient_id, handed_over_at)
    where message_type = 'sms' and category = 'care';

-- SMS replies that are not keywords, one row per practice the reply belongs to.
create table inbound_messages (
    id uuid primary key,
    practice_id uuid not null references practices (id) on delete cascade,
    patient_id uuid references patients (id) on delete set null,
    from_number text not null,
    to_number text not null,
    body text not null,
    provider text not null,
    provider_message_id text not null,
    opt_out_matched boolean not null,
    received_at timestamptz not null default now()
);
create index inbound_messages_practice_time on inbound_messages (practice_id, received_at desc, id desc);
create index inbound_messages_patient_time on inbound_messages (patient_id, received_at desc, id desc)
    where patient_id is not null;

-- A reply to the shared system number is matched to every practice's patient with that phone
-- (as STOP is); without this each reply reads every patient of every practice.
create index patients_phone on patients (phone) where phone is not null;
