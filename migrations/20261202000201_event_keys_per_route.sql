-- A provider event's key is unique per webhook route, not globally: a practice signs what it
-- posts to its own route, so an id it copies from another tenant's event must not make that
-- tenant's genuine event look like a duplicate. `route_practice_id` is the practice whose route
-- received the event; null is the platform's own route.

alter table provider_events
    add column route_practice_id uuid references practices (id) on delete cascade;

-- Rows stored before this migration do not record their route. Each account posts to one route:
-- a practice's own account to the practice's route, the platform's accounts to the system route.
-- So an event takes the route of the account that sent its message; an event tied to no message
-- takes that of the account its practice uses now; an inbound message was always stored with its
-- route's practice. Keys were unique before, so they stay unique per route whatever is guessed.
update provider_events e
set route_practice_id = e.practice_id
where e.practice_id is not null
  and (
      e.event_key like 'twilio-inbound:%'
      or coalesce(
          (select l.messaging_provider like 'custom\_%'
           from outreach_logs l where l.id = e.outreach_log_id),
          exists (
              select 1 from practices p
              where p.id = e.practice_id
                and case e.provider
                    when 'sendgrid' then p.email_provider = 'custom_sendgrid'
                    else p.sms_provider = 'custom_twilio' end)
      )
  );

alter table provider_events
    drop constraint provider_events_event_key,
    add constraint provider_events_route_event_key unique nulls not distinct (route_practice_id, event_key);
