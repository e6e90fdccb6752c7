-- Compliance: each practice's sending rules, and what a log records about segments and category.
create table practice_compliance (
    practice_id uuid primary key references practices (id) on delete cascade,
    timezone text not null default 'America/New_York',
    window_start time not null default '08:00',
    window_end time not null default '21:00',
    sms_care_daily_cap int not null default 1 check (sms_care_daily_cap between 0 and 1),
    sms_care_weekly_cap int not null default 3 check (sms_care_weekly_cap between 0 and 3),
    postal_address text,
    contact_phone text,
    contact_email text,
    -- A decimal string (e.g. 0.0079), kept as text so no rounding ever happens in storage.
    sms_segment_price text,
    updated_at timestamptz not null default now(),
    constraint practice_compliance_window check (window_start < window_end)
);

alter table outreach_logs
    add column category text not null default 'care' check (category in ('care', 'marketing')),
    add column segments int;
