-- Practice settings: what SendGrid domain authentication and the event webhook need to remember.

alter table practices
    add column sendgrid_domain_subdomain text,
    -- The DNS records as SendGrid gave them ({name, type, host, data, valid, reason}), shown verbatim.
    add column sendgrid_domain_records jsonb not null default '[]',
    add column sendgrid_domain_created_at timestamptz,
    add column sendgrid_webhook_id text;

-- Unverified domains are re-checked in the background; this finds the due ones cheaply.
create index practices_unverified_domains on practices (email_domain_last_checked_at)
    where sendgrid_domain_id is not null and not email_domain_verified;
