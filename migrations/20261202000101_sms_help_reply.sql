-- Whether our inbound webhook answers HELP/INFO on the practice's own Twilio number. Off by
-- default: Twilio answers those keywords itself on long codes, and a second reply is one the
-- patient did not need and the practice pays for.
alter table practices add column sms_help_reply_enabled boolean not null default false;
