-- A practice's logs of one status, newest first: the log page's status filter (a console's
-- "failed" or "bounced" view). Without it, a status the practice rarely has is found by reading
-- its whole history through `outreach_logs_practice_time`.
--
-- The price: `status` is now indexed, so a status change is no longer a HOT update; the capacity
-- figures in BENCHMARKS.md are measured with this index.
create index outreach_logs_practice_status_time on outreach_logs (practice_id, status, created_at desc, id desc);
