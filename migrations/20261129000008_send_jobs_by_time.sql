-- Lets a worker find the oldest due job of any practice when the fair pick is busy.
create index send_jobs_run_at on send_jobs (run_at);
