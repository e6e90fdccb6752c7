-- SendGrid and Twilio accounts join the other vendors' in `practice_accounts`.
--
-- A practice's SendGrid key, sender, event webhook and domain authentication, and its Twilio
-- credentials, number and HELP reply choice, move from columns on `practices` into one
-- `practice_accounts` row per vendor, shaped as the vendor's own module reads it. Every envelope
-- moves byte for byte under the key that was its column's name: that name is the field it is
-- bound to, so it decrypts as before. What the monitoring queries read stays on `practices`
-- (`email_provider`, `sms_provider`, `email_domain_verified`, the last-tested times), with
-- `email_domain_last_checked_at`, the re-check schedule's claim.

alter table practice_accounts drop constraint practice_accounts_vendor_check;
alter table practice_accounts add constraint practice_accounts_vendor_check
    check (vendor in ('sendgrid', 'mailgun', 'postmark', 'twilio', 'telnyx'));

-- jsonb_strip_nulls would also strip the nulls inside the records SendGrid gave, which are shown
-- verbatim, so they are added after it.
insert into practice_accounts (practice_id, vendor, settings, secrets)
select id, 'sendgrid',
       jsonb_strip_nulls(jsonb_build_object(
           'fromEmail', sendgrid_from_email,
           'fromName', sendgrid_from_name,
           'webhookVerifyKey', sendgrid_webhook_verify_key,
           'webhookId', sendgrid_webhook_id,
           'domain', sendgrid_domain,
           'domainSubdomain', sendgrid_domain_subdomain,
           'domainId', sendgrid_domain_id,
           'domainCreatedAt', sendgrid_domain_created_at))
       || jsonb_build_object('domainRecords', sendgrid_domain_records),
       jsonb_strip_nulls(jsonb_build_object('sendgrid_api_key', sendgrid_api_key))
from practices
where sendgrid_api_key is not null or sendgrid_from_email is not null or sendgrid_from_name is not null
   or sendgrid_webhook_verify_key is not null or sendgrid_webhook_id is not null
   or sendgrid_domain is not null or sendgrid_domain_subdomain is not null or sendgrid_domain_id is not null
   or sendgrid_domain_created_at is not null or sendgrid_domain_records <> '[]';

insert into practice_accounts (practice_id, vendor, settings, secrets)
select id, 'twilio',
       jsonb_strip_nulls(jsonb_build_object('phoneNumber', twilio_phone_number))
       || jsonb_build_object('helpReplyEnabled', sms_help_reply_enabled),
       jsonb_strip_nulls(jsonb_build_object(
           'twilio_account_sid', twilio_account_sid,
           'twilio_auth_token', twilio_auth_token))
from practices
where twilio_account_sid is not null or twilio_auth_token is not null or twilio_phone_number is not null
   or sms_help_reply_enabled;

drop index practices_unverified_domains;

alter table practices
    drop column sendgrid_api_key,
    drop column sendgrid_from_email,
    drop column sendgrid_from_name,
    drop column sendgrid_domain,
    drop column sendgrid_domain_subdomain,
    drop column sendgrid_domain_id,
    drop column sendgrid_domain_records,
    drop column sendgrid_domain_created_at,
    drop column sendgrid_webhook_verify_key,
    drop column sendgrid_webhook_id,
    drop column twilio_account_sid,
    drop column twilio_auth_token,
    drop column twilio_phone_number,
    drop column sms_help_reply_enabled;

-- A change to an account is a change to the practice's configuration, whoever makes it: every
-- instance drops what it cached, as for a change to the practice's row.
create function notify_practice_account_changed() returns trigger
language plpgsql as $$
begin
    if tg_op = 'UPDATE' and old is not distinct from new then
        return null;
    end if;
    perform pg_notify('dentite_practice_settings', coalesce(new.practice_id, old.practice_id)::text);
    return null;
end;
$$;

create trigger practice_accounts_notify_changed
    after insert or update or delete on practice_accounts
    for each row execute function notify_practice_account_changed();
