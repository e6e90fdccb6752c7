-- Webhooks: the rank that makes outreach status a forward-only state machine.
--
-- Provider callbacks arrive late, twice and out of order; an update applies only when the new
-- status ranks strictly higher than the stored one. Email climbs queued < sending < sent <
-- delivered < opened < clicked, SMS the same ladder up to delivered. The final statuses share the
-- top rank, so whichever final arrives first sticks. Unknown statuses rank null and never apply.

create function outreach_status_rank(status text) returns integer
    language sql immutable strict parallel safe
as $$
    select case status
        when 'queued' then 0
        when 'sending' then 1
        when 'sent' then 2
        when 'delivered' then 3
        when 'opened' then 4
        when 'clicked' then 5
        when 'failed' then 10
        when 'undelivered' then 10
        when 'bounced' then 10
        when 'dropped' then 10
        when 'spam_reported' then 10
        when 'suppressed' then 10
    end
$$;
